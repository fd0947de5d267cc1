"""Packing /users/track bodies and mapping Braze's per-object errors back to rows."""

from __future__ import annotations

from headwater.braze.batching import (
    BatchPacker,
    TrackBatch,
    TrackItem,
    map_object_errors,
    pack_batches,
    split_batch,
)
from headwater.braze.limits import BatchPolicy


def attrs(n: int, start: int = 0) -> list[TrackItem]:
    return [
        TrackItem("attributes", {"external_id": f"u{i}"}, f"row-{i}")
        for i in range(start, start + n)
    ]


def events(n: int) -> list[TrackItem]:
    return [
        TrackItem("events", {"external_id": f"e{i}", "name": "x", "time": "2024-01-01"}, f"ev-{i}")
        for i in range(n)
    ]


def test_combined_policy_sends_full_batches_of_75_objects_across_all_arrays():
    items = []
    for i in range(200):  # interleaved kinds
        items += [attrs(1, i)[0], events(1)[0]] if i % 2 else [attrs(1, i)[0]]
    batches = list(pack_batches(items, BatchPolicy.COMBINED))
    sizes = [len(b) for b in batches]
    assert sizes[:-1] == [75] * (len(sizes) - 1)
    assert sum(sizes) == len(items)
    assert all(len(b) <= 75 for b in batches)
    assert {"attributes", "events"} <= set(batches[0].body())


def test_per_kind_policy_sends_a_batch_as_soon_as_one_kind_has_75_waiting():
    items = attrs(150) + events(100)
    batches = list(pack_batches(items, BatchPolicy.PER_KIND))
    assert [(len(b.attributes), len(b.events)) for b in batches] == [
        (75, 0), (75, 0), (0, 75), (0, 25)
    ]  # fmt: skip


def test_per_kind_policy_fills_other_kinds_waiting_when_one_kind_is_full():
    items = events(40) + attrs(75) + events(60)
    batches = list(pack_batches(items, BatchPolicy.PER_KIND))
    assert [(len(b.attributes), len(b.events)) for b in batches] == [(75, 40), (0, 60)]


def test_every_item_lands_in_exactly_one_batch_in_its_original_order():
    items = attrs(160) + events(10)
    for policy in BatchPolicy:
        refs = [i.ref for b in pack_batches(items, policy) for i in b.items()]
        assert sorted(refs) == sorted(i.ref for i in items)
        attr_refs = [r for r in refs if r.startswith("row-")]
        assert attr_refs == [f"row-{i}" for i in range(160)]


def test_packer_hands_out_a_batch_the_moment_it_is_full():
    packer = BatchPacker(BatchPolicy.COMBINED, max_objects=3)
    assert packer.add(attrs(1, 0)[0]) is None
    assert packer.add(attrs(1, 1)[0]) is None
    full = packer.add(attrs(1, 2)[0])
    assert full is not None and len(full) == 3
    assert packer.flush() == []


def test_object_errors_map_back_to_the_callers_refs():
    batch = TrackBatch(attributes=attrs(3), events=events(2))
    errors = [
        {"type": "EMAIL_BAD_FORMAT", "input_array": "attributes", "index": 1},
        {"type": "'time' is required", "input_array": "events", "index": 0},
        {"type": "nonsense", "input_array": "purchases", "index": 0},  # names nothing
        {"type": "out of range", "input_array": "attributes", "index": 9},
    ]
    found = map_object_errors(batch, errors)
    assert {item.ref: text for item, text in found.values()} == {
        "row-1": "EMAIL_BAD_FORMAT",
        "ev-0": "'time' is required",
    }


def test_batch_without_the_bad_objects_keeps_the_rest_in_order():
    batch = TrackBatch(attributes=attrs(4))
    bad = map_object_errors(batch, [{"type": "bad", "input_array": "attributes", "index": 2}])
    rest = batch.without(set(bad))
    assert [i.ref for i in rest.items()] == ["row-0", "row-1", "row-3"]
    assert rest.body() == {"attributes": [{"external_id": f"u{i}"} for i in (0, 1, 3)]}


def test_split_batch_halves_a_batch_without_losing_objects():
    batch = TrackBatch(attributes=attrs(5), events=events(2))
    first, second = split_batch(batch)
    assert len(first) + len(second) == 7
    assert abs(len(first) - len(second)) <= 1
    assert {i.ref for i in first.items()} | {i.ref for i in second.items()} == {
        i.ref for i in batch.items()
    }
