"""The snapshot records only what Braze accepted, from what was sent, and survives restarts."""

from __future__ import annotations

import psycopg
import pyarrow as pa
import pytest

from headwater.engines import Engine, open_engine
from headwater.syncs.diff import compute_diff, diff_records, iter_diff
from headwater.syncs.snapshot import commit_accepted, drop_snapshot, snapshot_table

COLUMNS = ["email", "points"]


def load_model(engine: Engine, rows: dict[str, tuple[str | None, int | None]]) -> None:
    engine.load_arrow(
        "contacts",
        pa.table(
            {
                "id": list(rows),
                "email": pa.array([v[0] for v in rows.values()], pa.string()),
                "points": pa.array([v[1] for v in rows.values()], pa.int64()),
            }
        ),
    )


def diff(engine: Engine) -> dict[str, dict]:
    result = compute_diff(engine, "contacts", "contacts", "id", COLUMNS)
    return {r.key: r.fields for b in iter_diff(engine, result) for r in diff_records(b, COLUMNS)}


def snapshot(engine: Engine) -> dict[str, tuple]:
    rows = engine.fetch_all(f"SELECT hw_key, email, points FROM {snapshot_table('contacts')}")
    return {key: (email, points) for key, email, points in rows}


def test_a_key_braze_rejected_is_sent_again_next_run(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2)})
    assert set(diff(engine)) == {"u1", "u2"}
    commit_accepted(engine, "contacts", ["u1"])  # u2 failed
    assert snapshot(engine) == {"u1": ("a@x.io", 1)}
    assert diff(engine) == {"u2": {"email": "b@x.io", "points": 2}}


def test_a_failed_change_keeps_the_old_value_so_the_change_is_resent(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2)})
    diff(engine)
    commit_accepted(engine, "contacts", ["u1", "u2"])
    load_model(engine, {"u1": ("a@x.io", 10), "u2": ("b@x.io", 20)})
    assert diff(engine) == {"u1": {"points": 10}, "u2": {"points": 20}}
    commit_accepted(engine, "contacts", ["u2"])
    assert snapshot(engine)["u1"] == ("a@x.io", 1)
    assert diff(engine) == {"u1": {"points": 10}}


def test_committing_the_same_keys_twice_is_harmless(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2)})
    diff(engine)
    assert commit_accepted(engine, "contacts", ["u1", "u2"]) == 2
    assert commit_accepted(engine, "contacts", ["u1", "u2"]) == 2
    assert commit_accepted(engine, "contacts", pa.array(["u1"])) == 1
    assert commit_accepted(engine, "contacts", ["u2", "u1", "u2"]) == 2  # a key repeated
    assert snapshot(engine) == {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2)}
    assert diff(engine) == {}


def test_one_commit_adds_changes_and_removes(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2), "u3": ("c@x.io", 3)})
    diff(engine)
    commit_accepted(engine, "contacts", ["u1", "u2", "u3"])
    load_model(engine, {"u1": ("a@x.io", 1), "u2": (None, 20), "u4": ("d@x.io", None)})
    assert diff(engine) == {
        "u2": {"email": None, "points": 20},
        "u3": {"email": None, "points": None},
        "u4": {"email": "d@x.io", "points": None},
    }
    assert commit_accepted(engine, "contacts", ["u4", "u3", "u2", "u1"]) == 3
    assert snapshot(engine) == {"u1": ("a@x.io", 1), "u2": (None, 20), "u4": ("d@x.io", None)}
    assert diff(engine) == {}


def test_a_full_resend_commits_unchanged_rows_without_changing_them(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", None)})
    diff(engine)
    commit_accepted(engine, "contacts", ["u1", "u2"])
    result = compute_diff(engine, "contacts", "contacts", "id", COLUMNS, full=True)
    assert result.rows == 2
    assert commit_accepted(engine, "contacts", ["u1", "u2"]) == 2
    assert snapshot(engine) == {"u1": ("a@x.io", 1), "u2": ("b@x.io", None)}


def test_the_values_sent_are_committed_even_if_the_model_changed_since(engine):
    load_model(engine, {"u1": ("a@x.io", 1)})
    diff(engine)
    load_model(engine, {"u1": ("new@x.io", 99)})  # model rebuilt while the run was sending
    commit_accepted(engine, "contacts", ["u1"])
    assert snapshot(engine) == {"u1": ("a@x.io", 1)}
    assert diff(engine) == {"u1": {"email": "new@x.io", "points": 99}}


def test_accepted_removals_leave_the_snapshot_and_rejected_ones_stay(engine):
    load_model(engine, {"u1": ("a@x.io", 1), "u2": ("b@x.io", 2), "u3": ("c@x.io", 3)})
    diff(engine)
    commit_accepted(engine, "contacts", ["u1", "u2", "u3"])
    load_model(engine, {"u1": ("a@x.io", 1)})
    assert set(diff(engine)) == {"u2", "u3"}
    commit_accepted(engine, "contacts", ["u2"])
    assert set(snapshot(engine)) == {"u1", "u3"}
    assert set(diff(engine)) == {"u3"}


def test_keys_outside_this_runs_diff_are_ignored(engine):
    load_model(engine, {"u1": ("a@x.io", 1)})
    diff(engine)
    assert commit_accepted(engine, "contacts", ["u1", "nobody"]) == 1
    assert commit_accepted(engine, "contacts", []) == 0
    assert set(snapshot(engine)) == {"u1"}


def test_batches_committed_before_a_crash_survive_a_new_process(tmp_path):
    url = f"duckdb:///{tmp_path}/warehouse.duckdb"
    first = open_engine(url)
    load_model(first, {f"u{i}": (f"{i}@x.io", i) for i in range(10)})
    diff(first)
    commit_accepted(first, "contacts", ["u0", "u1", "u2"])
    commit_accepted(first, "contacts", ["u3", "u4"])
    first.close()  # the process dies before the remaining batches
    second = open_engine(url)
    assert set(snapshot(second)) == {"u0", "u1", "u2", "u3", "u4"}
    assert set(diff(second)) == {"u5", "u6", "u7", "u8", "u9"}
    second.close()


def test_drop_snapshot_makes_the_next_run_send_everything(engine):
    load_model(engine, {"u1": ("a@x.io", 1)})
    diff(engine)
    commit_accepted(engine, "contacts", ["u1"])
    drop_snapshot(engine, "contacts")
    assert diff(engine) == {"u1": {"email": "a@x.io", "points": 1}}


def test_a_commit_cut_off_by_a_crash_leaves_the_snapshot_as_the_last_commit_left_it(pg_url):
    """PostgreSQL: the connection dies in the middle of a commit (after the accepted keys
    reached the server, before the snapshot was written): a new process finds the earlier
    commits whole, none of the cut-off one, and sends exactly the rest again."""
    first = open_engine(pg_url)
    load_model(first, {f"u{i}": (f"{i}@x.io", i) for i in range(10)})
    diff(first)
    commit_accepted(first, "contacts", ["u0", "u1", "u2"])
    commit_accepted(first, "contacts", ["u3", "u4"])
    copy_arrow = first.copy_arrow  # type: ignore[attr-defined]

    def copy_then_die(table_name, data):
        copy_arrow(table_name, data)
        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
            pid = first.fetch_all("SELECT pg_backend_pid()")[0][0]
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    first.copy_arrow = copy_then_die  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="terminat|closed|connection"):
        commit_accepted(first, "contacts", ["u5", "u6"])
    first.sa_engine.dispose()  # type: ignore[attr-defined]
    second = open_engine(pg_url)
    assert snapshot(second) == {f"u{i}": (f"{i}@x.io", i) for i in range(5)}
    assert set(diff(second)) == {"u5", "u6", "u7", "u8", "u9"}
    second.close()
