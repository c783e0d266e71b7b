"""Write the dashboards (``make dashboards``), or with ``--check`` say which are stale."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from deltaomega.dashboards import pipeline, voices

DIRECTORY = Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards"
BOARDS: dict[str, Callable[[], Dashboard]] = {
    "voices.json": voices.build,
    "pipeline.json": pipeline.build,
}


def rendered() -> dict[str, str]:
    """File name → the JSON the code makes of it."""
    return {
        name: json.dumps(build(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"
        for name, build in BOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deltaomega.dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a file is not up to date")
    parser.add_argument("--out", type=Path, default=DIRECTORY)
    args = parser.parse_args(argv)
    stale = []
    for name, text in rendered().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(f"not up to date (run `make dashboards`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
