"""The first batch after an assignment takes a range that may have landed uncommitted
whole, whatever the polls return, so its rows repeat their deduplication token."""

from __future__ import annotations

from dataclasses import dataclass

from deltaomega.streams.replay import ReplayShaper


@dataclass
class FakeMessage:
    """The three things the shaper reads of a confluent-kafka message."""

    p: int
    o: int

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o

    def error(self) -> None:
        return None


def positions(messages: list[FakeMessage] | None) -> list[tuple[int, int]] | None:
    return None if messages is None else [(m.p, m.o) for m in messages]


def test_a_range_is_taken_whole_and_what_came_with_it_follows_in_order() -> None:
    shaper = ReplayShaper()
    shaper.expect(0, 12)  # partition 0: offsets 10..12 landed, commit at 10
    first = [FakeMessage(0, 10), FakeMessage(1, 5), FakeMessage(0, 11)]
    assert shaper.shape(first) is None  # 12 has not come yet
    second = [FakeMessage(0, 12), FakeMessage(0, 13), FakeMessage(1, 6)]
    assert positions(shaper.shape(second)) == [(0, 10), (0, 11), (0, 12)]
    # Held back, then released before the next poll's messages, each partition in order.
    assert positions(shaper.shape([FakeMessage(0, 14)])) == [
        (1, 5),
        (0, 13),
        (1, 6),
        (0, 14),
    ]
    assert positions(shaper.shape([FakeMessage(1, 7)])) == [(1, 7)]


def test_a_revoked_partition_is_neither_taken_nor_held() -> None:
    shaper = ReplayShaper()
    shaper.expect(0, 3)
    shaper.expect(2, 8)
    assert shaper.shape([FakeMessage(0, 3), FakeMessage(2, 7), FakeMessage(1, 0)]) is None
    shaper.forget([2])
    assert positions(shaper.shape([])) == [(0, 3)]
    assert positions(shaper.shape([])) == [(1, 0)]
