"""Fixed-size slices of a list: request-sized batches of ids for Braze, statement-sized
batches of parameters for the state store (``itertools.batched`` needs Python 3.12)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


__all__ = ["chunks"]
