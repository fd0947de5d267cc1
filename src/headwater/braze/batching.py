"""Packing ``/users/track`` objects into request bodies, and mapping Braze's answer back.

Pure functions and small value classes, no I/O, so the packing rules can be tested on their
own and reused by the sync engine and the gateway's delivery worker.

Why it exists: Braze bills and rate limits per *request*, so every request should carry as
many objects as the contract allows (75 in total on current contracts, 75 per array on
legacy ones), and an error Braze reports by ``(input_array, index)`` must find its way back
to the caller's row (``TrackItem.ref``), so one bad object is reported and never sinks the
other 74.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from headwater.braze.limits import MAX_OBJECTS_PER_REQUEST, TRACK_ARRAYS, BatchPolicy

Kind = Literal["attributes", "events", "purchases"]

__all__ = [
    "BatchPacker",
    "ItemResult",
    "TrackBatch",
    "TrackItem",
    "map_object_errors",
    "pack_batches",
    "split_batch",
]


@dataclass(slots=True)
class TrackItem:
    """One object for ``/users/track``; ``ref`` is the caller's handle (e.g. a row key)."""

    kind: Kind
    payload: dict
    ref: Any = None


@dataclass(slots=True)
class ItemResult:
    """What happened to one item: accepted by Braze, or failed with a readable reason."""

    ref: Any
    ok: bool
    error: str | None = None
    retriable: bool = False  # not delivered for now (rate limits, outages): worth another try


@dataclass(slots=True)
class TrackBatch:
    """The items of one request, kept per array so ``(input_array, index)`` finds its item."""

    attributes: list[TrackItem] = field(default_factory=list)
    events: list[TrackItem] = field(default_factory=list)
    purchases: list[TrackItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attributes) + len(self.events) + len(self.purchases)

    def add(self, item: TrackItem) -> None:
        getattr(self, item.kind).append(item)

    def arrays(self) -> Iterator[tuple[str, list[TrackItem]]]:
        for name in TRACK_ARRAYS:
            items = getattr(self, name)
            if items:
                yield name, items

    def items(self) -> Iterator[TrackItem]:
        for _, items in self.arrays():
            yield from items

    def body(self) -> dict:
        """The JSON body Braze expects; only non-empty arrays are sent."""
        return {name: [item.payload for item in items] for name, items in self.arrays()}

    def item_at(self, input_array: object, index: object) -> TrackItem | None:
        """The item Braze means by ``(input_array, index)``, or None if that names nothing."""
        if input_array not in TRACK_ARRAYS or not isinstance(index, int):
            return None
        items = getattr(self, input_array)
        return items[index] if 0 <= index < len(items) else None

    def without(self, dropped: set[int]) -> TrackBatch:
        """A copy without the items whose ``id()`` is in ``dropped`` (order kept)."""
        return TrackBatch(
            *[[i for i in getattr(self, name) if id(i) not in dropped] for name in TRACK_ARRAYS]
        )


def split_batch(batch: TrackBatch) -> tuple[TrackBatch, TrackBatch]:
    """Halve a batch (by position across all arrays) to isolate whatever Braze refused."""
    items = list(batch.items())
    half = len(items) // 2
    first, second = TrackBatch(), TrackBatch()
    for item in items[:half]:
        first.add(item)
    for item in items[half:]:
        second.add(item)
    return first, second


def map_object_errors(batch: TrackBatch, errors: object) -> dict[int, tuple[TrackItem, str]]:
    """Braze's ``errors`` list -> ``{id(item): (item, error text)}`` for this batch.

    Entries that name no object of the batch (missing index, wrong array) are ignored here;
    the caller decides what a request-level error means. Several errors on one object are
    joined so the user sees all of them.
    """
    found: dict[int, tuple[TrackItem, str]] = {}
    if not isinstance(errors, list):
        return found
    for entry in errors:
        if not isinstance(entry, dict):
            continue
        item = batch.item_at(entry.get("input_array"), entry.get("index"))
        if item is None:
            continue
        text = str(entry.get("type") or entry.get("message") or "rejected by Braze")
        key = id(item)
        if key in found:
            text = f"{found[key][1]}; {text}"
        found[key] = (item, text)
    return found


class BatchPacker:
    """Streams items in, hands out full batches as soon as one is ready.

    COMBINED: a batch is full at ``max_objects`` items of any kinds, in arrival order.
    PER_KIND: items wait in one queue per array; as soon as one queue holds
    ``max_objects`` items a batch leaves with those plus up to ``max_objects`` of each other
    kind that is waiting, so a legacy request carries up to three times as many objects.
    """

    def __init__(
        self,
        policy: BatchPolicy = BatchPolicy.COMBINED,
        max_objects: int = MAX_OBJECTS_PER_REQUEST,
    ) -> None:
        if max_objects < 1:
            raise ValueError("max_objects must be at least 1")
        self.policy = BatchPolicy(policy)
        self.max_objects = max_objects
        self._current = TrackBatch()
        self._count = 0
        self._queues: dict[str, list[TrackItem]] = {name: [] for name in TRACK_ARRAYS}

    def add(self, item: TrackItem) -> TrackBatch | None:
        """Queue one item; returns a full batch when this item completed one."""
        if item.kind not in self._queues:
            raise ValueError(f"unknown track array {item.kind!r}")
        if self.policy is BatchPolicy.COMBINED:
            getattr(self._current, item.kind).append(item)
            self._count += 1
            if self._count >= self.max_objects:
                batch, self._current, self._count = self._current, TrackBatch(), 0
                return batch
            return None
        queue = self._queues[item.kind]
        queue.append(item)
        if len(queue) >= self.max_objects:
            return self._take_per_kind()
        return None

    def flush(self) -> list[TrackBatch]:
        """Whatever is still waiting, as few (possibly partial) batches as the cap allows."""
        if self.policy is BatchPolicy.COMBINED:
            batch, self._current, self._count = self._current, TrackBatch(), 0
            return [batch] if len(batch) else []
        batches = []
        while any(self._queues.values()):
            batches.append(self._take_per_kind())
        return batches

    def _take_per_kind(self) -> TrackBatch:
        batch = TrackBatch()
        for name, queue in self._queues.items():
            setattr(batch, name, queue[: self.max_objects])
            del queue[: self.max_objects]
        return batch


def pack_batches(
    items: Iterable[TrackItem],
    policy: BatchPolicy = BatchPolicy.COMBINED,
    max_objects: int = MAX_OBJECTS_PER_REQUEST,
) -> Iterator[TrackBatch]:
    """All items as request batches: full ones while enough items wait, the rest at the end."""
    packer = BatchPacker(policy, max_objects)
    for item in items:
        batch = packer.add(item)
        if batch is not None:
            yield batch
    yield from packer.flush()
