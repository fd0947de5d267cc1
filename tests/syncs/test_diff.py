"""The in-engine diff finds exactly what to send, attribute by attribute, on DuckDB and PostgreSQL."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.engines import Engine
from headwater.errors import ConfigError
from headwater.syncs.diff import (
    BITS_PER_MASK,
    DiffRecord,
    compute_diff,
    diff_records,
    iter_diff,
)
from headwater.syncs.snapshot import commit_accepted

COLUMNS = ["email", "points", "tags"]


def load_model(engine: Engine, rows: list[dict]) -> None:
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("email", pa.string()),
            ("points", pa.int64()),
            ("tags", pa.list_(pa.string())),
        ]
    )
    engine.load_arrow("contacts", pa.Table.from_pylist(rows, schema=schema))


def records(engine: Engine, result) -> dict[str, DiffRecord]:
    found = [r for b in iter_diff(engine, result, batch_size=2) for r in diff_records(b, COLUMNS)]
    return {r.key: r for r in found}


def sync_once(engine: Engine, rows: list[dict], **options):
    """Diff, then report every listed key as accepted, as a run with no failures would."""
    load_model(engine, rows)
    result = compute_diff(engine, "contacts", "contacts", "id", COLUMNS, **options)
    found = records(engine, result)
    commit_accepted(engine, "contacts", list(found))
    return result, found


BASE = [
    {"id": "u1", "email": "a@x.io", "points": 1, "tags": ["gold", "eu"]},
    {"id": "u2", "email": "b@x.io", "points": None, "tags": None},
    {"id": "u3", "email": "c@x.io", "points": 3, "tags": []},
]


def test_first_run_sends_every_mapped_field_of_every_row(engine):
    result, found = sync_once(engine, BASE)
    assert (result.added, result.changed, result.removed, result.unchanged) == (3, 0, 0, 0)
    assert found["u1"] == DiffRecord("u1", "added", {k: BASE[0][k] for k in COLUMNS})
    assert found["u2"].fields == {"email": "b@x.io", "points": None, "tags": None}


def test_unchanged_rows_send_nothing(engine):
    sync_once(engine, BASE)
    result, found = sync_once(engine, BASE)
    assert (result.added, result.changed, result.removed, result.unchanged) == (0, 0, 0, 3)
    assert found == {}


def test_changed_rows_carry_only_the_changed_fields(engine):
    sync_once(engine, BASE)
    changed = [dict(r) for r in BASE]
    changed[0]["points"] = 2
    result, found = sync_once(engine, changed)
    assert (result.added, result.changed, result.unchanged) == (0, 1, 2)
    assert found == {"u1": DiffRecord("u1", "changed", {"points": 2})}


def test_a_value_changed_to_null_is_sent_as_null_and_not_confused_with_unchanged(engine):
    sync_once(engine, BASE)
    changed = [dict(r) for r in BASE]
    changed[0]["email"] = None  # set to null: Braze must unset it
    changed[1]["points"] = 5  # from null to a value
    result, found = sync_once(engine, changed)
    assert result.changed == 2
    assert found["u1"].fields == {"email": None}
    assert found["u2"].fields == {"points": 5}


def test_arrays_compare_by_content_and_order(engine):
    sync_once(engine, BASE)
    changed = [dict(r) for r in BASE]
    changed[0]["tags"] = ["eu", "gold"]  # same items, new order: a different array
    changed[1]["tags"] = []  # null -> empty array
    changed[2]["tags"] = []  # empty stays empty
    result, found = sync_once(engine, changed)
    assert set(found) == {"u1", "u2"}
    assert found["u1"].fields == {"tags": ["eu", "gold"]}
    assert found["u2"].fields == {"tags": []}
    assert result.unchanged == 1


def test_removed_rows_carry_their_key_and_the_fields_braze_holds(engine):
    sync_once(engine, BASE)
    result, found = sync_once(engine, BASE[:1])
    assert (result.removed, result.unchanged) == (2, 1)
    assert found["u2"] == DiffRecord("u2", "removed", {"email": None})
    assert found["u3"].kind == "removed"
    assert found["u3"].fields == {"email": None, "points": None, "tags": None}
    # committed removals leave the snapshot: the next run reports nothing removed
    result, _ = sync_once(engine, BASE[:1])
    assert result.removed == 0


def test_added_changed_removed_and_unchanged_in_one_run(engine):
    sync_once(engine, BASE)
    rows = [
        dict(BASE[0], points=9),
        BASE[1],
        {"id": "u4", "email": None, "points": 4, "tags": ["x"]},
    ]
    result, found = sync_once(engine, rows)
    assert (result.added, result.changed, result.removed, result.unchanged) == (1, 1, 1, 1)
    assert {k: r.kind for k, r in found.items()} == {
        "u1": "changed",
        "u3": "removed",
        "u4": "added",
    }


def test_full_resend_lists_every_row_with_every_field_but_counts_honestly(engine):
    sync_once(engine, BASE)
    changed = [dict(BASE[0], points=7), BASE[1], BASE[2]]
    result, found = sync_once(engine, changed, full=True)
    assert (result.added, result.changed, result.removed, result.unchanged) == (0, 1, 0, 2)
    assert {k: r.kind for k, r in found.items()} == {
        "u1": "changed",
        "u2": "unchanged",
        "u3": "unchanged",
    }
    assert all(set(r.fields) == set(COLUMNS) for r in found.values())
    assert found["u1"].fields["points"] == 7


def test_rows_without_a_key_are_skipped_and_counted(engine):
    rows = [*BASE, {"id": None, "email": "nokey@x.io", "points": 0, "tags": None}]
    result, found = sync_once(engine, rows)
    assert result.null_keys == 1
    assert set(found) == {"u1", "u2", "u3"}


def test_a_new_mapped_column_is_sent_for_rows_that_have_a_value(engine):
    load_model(engine, BASE)
    result = compute_diff(engine, "contacts", "contacts", "id", ["email", "points"])
    commit_accepted(
        engine,
        "contacts",
        [r.key for b in iter_diff(engine, result) for r in diff_records(b, ["email", "points"])],
    )
    result = compute_diff(engine, "contacts", "contacts", "id", COLUMNS)
    found = records(engine, result)
    assert {k: r.fields for k, r in found.items()} == {
        "u1": {"tags": ["gold", "eu"]},
        "u3": {"tags": []},
    }


def test_more_columns_than_one_mask_word_holds(engine):
    count = BITS_PER_MASK + 3
    columns = [f"c{i}" for i in range(count)]
    base = pa.table({"id": [1, 2], **{c: [0, 0] for c in columns}})
    engine.load_arrow("wide", base)
    first = compute_diff(engine, "wide", "wide", "id", columns)
    commit_accepted(engine, "wide", [1, 2])
    assert first.added == 2 and len(first.masks) == 2
    last = columns[-1]
    engine.load_arrow("wide", base.set_column(count, last, pa.array([0, 1])))
    result = compute_diff(engine, "wide", "wide", "id", columns)
    found = [r for b in iter_diff(engine, result) for r in diff_records(b, columns)]
    assert found == [DiffRecord(2, "changed", {last: 1})]


def test_reserved_column_names_are_refused(engine):
    load_model(engine, BASE)
    with pytest.raises(ConfigError, match="hw_"):
        compute_diff(engine, "contacts", "contacts", "id", ["hw_mask0"])


def _changes(engine: Engine) -> tuple[tuple, dict]:
    result = compute_diff(engine, "contacts", "contacts", "id", COLUMNS)
    counts = (result.added, result.changed, result.removed, result.unchanged, result.null_keys)
    return counts, {r.key: (r.kind, r.fields) for r in records(engine, result).values()}


def _many(n: int) -> list[dict]:
    return [
        {"id": f"u{i:03d}", "email": f"{i}@x.io", "points": i, "tags": [str(i)]} for i in range(n)
    ]


def _next_day(rows: list[dict]) -> list[dict]:
    """Changes, removals and new keys in both halves of the key range, and a NULL key."""
    rows = [dict(r) for r in rows if r["id"] not in ("u010", "u150")]
    for r in rows:
        if r["id"] in ("u005", "u100", "u180"):
            r["points"] = None
        if r["id"] in ("u050", "u199"):
            r["tags"] = []
    rows += [
        {"id": "u0505", "email": "new@x.io", "points": 1, "tags": None},
        {"id": "u9999", "email": None, "points": None, "tags": None},
        {"id": None, "email": "nokey@x.io", "points": 0, "tags": None},
    ]
    return rows


@pytest.fixture
def pg_engine(pg_url):
    from headwater.engines import open_engine

    opened = open_engine(pg_url)
    yield opened
    opened.close()


def test_a_postgresql_diff_split_in_two_halves_finds_what_one_statement_finds(
    pg_engine, monkeypatch
):
    """A big diff runs as two halves on two connections (split at the snapshot's middle
    key); forced here on 200 rows, it must list exactly the rows one statement lists."""
    from headwater.syncs import diff as diff_module

    sync_once(pg_engine, _many(200))
    load_model(pg_engine, _next_day(_many(200)))
    halves = []
    copy_beside = pg_engine.copy_beside
    monkeypatch.setattr(pg_engine, "copy_beside", lambda *a: halves.append(a) or copy_beside(*a))
    monkeypatch.setattr(diff_module, "SPLIT_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 1)
    split = _changes(pg_engine)
    assert len(halves) == 1
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 10**9)
    whole = _changes(pg_engine)
    assert len(halves) == 1
    assert split == whole
    assert split[0] == (2, 5, 2, 193, 1)
    assert split[1]["u150"] == ("removed", {"email": None, "points": None, "tags": None})
    assert split[1]["u180"] == ("changed", {"points": None})


def test_a_diff_half_whose_connection_fails_runs_on_the_first_after_all(pg_engine, monkeypatch):
    from headwater.syncs import diff as diff_module

    sync_once(pg_engine, _many(200))
    load_model(pg_engine, _next_day(_many(200)))
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 10**9)
    whole = _changes(pg_engine)

    def broken(*_args):
        def rows():
            raise RuntimeError("the second connection died")

        return rows

    monkeypatch.setattr(pg_engine, "copy_beside", broken)
    monkeypatch.setattr(diff_module, "SPLIT_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 1)
    assert _changes(pg_engine) == whole
