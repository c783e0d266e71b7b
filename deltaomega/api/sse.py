"""Feed cursors: where a client is in an output topic, to resume from.

An event id lists, for every partition of the topic, the offset of the last record the
client has been sent — ``partition:offset`` pairs joined by commas (``0:41,1:17``; a
single-partition topic gives just ``0:41``). A client that reconnects with that id as
``Last-Event-ID`` resumes right after each of those offsets, so it misses nothing and
gets nothing twice, whichever partitions the records it missed were on.
"""

from __future__ import annotations

import re

from deltaomega.errors import ValidationError

_CURSOR = re.compile(r"^\d{1,9}:(-1|\d{1,19})(,\d{1,9}:(-1|\d{1,19}))*$")
#: A cursor names each partition once; no topic here has more partitions than this.
MAX_CURSOR_PARTITIONS = 1024
MAX_CURSOR_LENGTH = MAX_CURSOR_PARTITIONS * 30


def parse_cursor(text: str | None, field: str = "Last-Event-ID") -> dict[int, int] | None:
    """``partition:offset`` pairs; an offset is the last one sent, or -1 for none yet."""
    if text is None or text == "":
        return None
    text = text.strip()
    if len(text) > MAX_CURSOR_LENGTH:
        raise ValidationError(field, f"is {len(text)} characters long, more than a cursor can be")
    if not _CURSOR.match(text):
        raise ValidationError(
            field,
            f"must be 'partition:offset' pairs joined by ',' (offset -1 or more), got {text!r}"
            if len(text) <= 100
            else "must be 'partition:offset' pairs joined by ',' (offset -1 or more)",
        )
    cursor: dict[int, int] = {}
    for pair in text.split(","):
        partition, offset = (int(part) for part in pair.split(":"))
        if partition in cursor:
            raise ValidationError(field, f"names partition {partition} twice")
        cursor[partition] = offset
    return cursor


def format_cursor(cursor: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(cursor.items()))
