"""Audiences end to end: a CSV model -> DuckDB -> membership diff -> the sandbox."""

from __future__ import annotations

import contextlib

from tests.audiences.people import person, write_people, write_project

from headwater.audiences import run_audience
from headwater.config import load_project

VIP = """
vip:
  model: people
  where: "ltv >= 1000"
  destination: braze
  splits: {a: 45, b: 45}
  holdout: 10
"""


def flags(sandbox) -> dict[str, dict]:
    return {
        u["external_id"]: {
            k: v for k, v in u.get("custom_attributes", {}).items() if k.startswith("AIQ_")
        }
        for u in sandbox.users()
        if u.get("external_id")
    }


def test_entries_land_as_booleans_and_only_changes_are_sent(tmp_path, sandbox):
    rows = [person(i) for i in range(300)]
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, rows)
    first = run_audience(load_project(root), "vip")
    assert first.error is None, first.error
    members = {r["person_id"] for r in rows if int(r["ltv"]) >= 1000}
    assert first.added == len(members)
    users = flags(sandbox)
    assert set(users) <= members
    held = members - set(users)
    assert first.sizes.get("holdout", 0) == len(held)
    assert all(list(v.values()) == [True] for v in users.values())
    assert set().union(*(v.keys() for v in users.values())) == {"AIQ_vip_a", "AIQ_vip_b"}
    again = run_audience(load_project(root), "vip")
    assert (again.added, again.removed, again.sent, again.requests) == (0, 0, 0, 0)
    print(first, again)


def history(root) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(root / ".headwater/warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(
            "SELECT person_id, split, left_at IS NULL FROM hw_audience_history "
            "WHERE audience = 'vip' ORDER BY person_id, entered_at"
        ).fetchall()


def test_exits_send_false_once_and_close_the_history(tmp_path, sandbox):
    rows = [person(i) for i in range(150)]
    root = write_project(
        tmp_path,
        sandbox.url,
        sandbox.key,
        VIP.replace("holdout: 10", "holdout: 0").replace("45}", "55}"),
    )
    write_people(root, rows)
    run_audience(load_project(root), "vip")
    before = flags(sandbox)
    rows[120] = person(120, ltv="5")  # falls out of the condition
    del rows[130]  # leaves every source
    write_people(root, rows)
    second = run_audience(load_project(root), "vip")
    assert (second.added, second.removed, second.sent) == (0, 2, 2)
    after = flags(sandbox)
    for pid in ("P0120", "P0130"):
        (attribute,) = before[pid]
        assert after[pid] == {attribute: False}
    third = run_audience(load_project(root), "vip")
    assert (third.removed, third.sent, third.requests) == (0, 0, 0)
    closed = {pid for pid, _split, open_ in history(root) if not open_}
    assert closed == {"P0120", "P0130"}


def test_on_exit_unset_removes_the_attribute(tmp_path, sandbox):
    rows = [person(i) for i in range(110)]
    spec = VIP.replace("holdout: 10", "on_exit: unset").replace("45}", "55}")
    root = write_project(tmp_path, sandbox.url, sandbox.key, spec)
    write_people(root, rows)
    run_audience(load_project(root), "vip")
    assert flags(sandbox)["P0105"]
    rows[105] = person(105, ltv="0")
    write_people(root, rows)
    report = run_audience(load_project(root), "vip")
    assert (report.removed, report.sent) == (1, 1)
    assert flags(sandbox)["P0105"] == {}


def test_dry_run_sends_and_commits_nothing(tmp_path, sandbox):
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, [person(i) for i in range(120)])
    dry = run_audience(load_project(root), "vip", dry_run=True)
    assert (dry.status, dry.added, dry.sent, dry.run_id) == ("dry run", 20, 0, None)
    assert dry.preview and all(
        v is True for p in dry.preview for k, v in p.items() if k.startswith("AIQ_")
    )
    assert sandbox.users() == []
    real = run_audience(load_project(root), "vip")
    assert real.added == 20


def test_a_crash_between_send_and_commit_resends_only_what_was_not_committed(
    tmp_path, sandbox, monkeypatch
):
    from headwater.audiences import engine, membership

    rows = [person(i) for i in range(400)]
    root = write_project(
        tmp_path,
        sandbox.url,
        sandbox.key,
        VIP.replace("holdout: 10", "holdout: 0").replace("45}", "55}"),
    )
    write_people(root, rows)
    real_commit = membership.commit
    calls = {"n": 0, "committed": 0}

    def crashing_commit(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:  # the process dies: this commit and any later never happen
            raise KeyboardInterrupt("killed between send and commit")
        applied = real_commit(*args, **kwargs)
        calls["committed"] += applied
        return applied

    monkeypatch.setattr(engine, "COMMIT_EVERY_ROWS", 75)
    monkeypatch.setattr(membership, "commit", crashing_commit)
    with contextlib.suppress(KeyboardInterrupt):
        run_audience(load_project(root), "vip")
    monkeypatch.setattr(membership, "commit", real_commit)
    committed = calls["committed"]
    assert 0 < committed < 300
    again = run_audience(load_project(root), "vip")
    assert again.error is None
    assert (again.added, again.sent) == (300 - committed, 300 - committed)
    users = flags(sandbox)
    assert len(users) == 300 and all(list(v.values()) == [True] for v in users.values())
    assert run_audience(load_project(root), "vip").sent == 0


def assignments(sandbox) -> dict[str, str]:
    return {
        pid: next(iter(v)) for pid, v in flags(sandbox).items() if v and list(v.values()) == [True]
    }


def test_growing_the_audience_or_one_share_moves_nobody_else(tmp_path, sandbox):
    rows = [person(i) for i in range(600)]
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, rows)
    run_audience(load_project(root), "vip")
    first = assignments(sandbox)
    rows += [person(i) for i in range(600, 900)]  # the audience grows
    write_people(root, rows)
    grown = run_audience(load_project(root), "vip")
    assert (grown.added, grown.removed, grown.changed) == (300, 0, 0)
    second = assignments(sandbox)
    assert {p: s for p, s in second.items() if p in first} == first
    # a gives 10 points to the holdout; b is left alone
    write_project(
        tmp_path,
        sandbox.url,
        sandbox.key,
        VIP.replace("a: 45", "a: 35").replace("holdout: 10", "holdout: 20"),
    )
    shifted = run_audience(load_project(root), "vip")
    third = assignments(sandbox)
    in_b = {p for p, s in second.items() if s == "AIQ_vip_b"}
    assert {p for p, s in third.items() if s == "AIQ_vip_b"} == in_b
    left_a = {p for p, s in second.items() if s == "AIQ_vip_a"} - {
        p for p, s in third.items() if s == "AIQ_vip_a"
    }
    assert shifted.changed == len(left_a) > 0  # a -> holdout, sent false
    now = flags(sandbox)
    assert all(now[p] == {"AIQ_vip_a": False} for p in left_a)


def test_a_condition_that_fails_at_run_time_fails_its_audience_only(tmp_path, sandbox):
    from headwater.audiences import run_audiences

    spec = (
        VIP
        + """
broken:
  model: people
  where: "CAST(email AS INTEGER) > 3"
  destination: braze
  salt: "o'brien"
"""
    )
    root = write_project(tmp_path, sandbox.url, sandbox.key, spec)
    write_people(root, [person(i) for i in range(120)])
    vip, broken = run_audiences(load_project(root))
    assert (vip.status, vip.added) == ("succeeded", 20)
    assert broken.status == "failed" and "broken" in broken.error
    assert "Conversion Error" in broken.error or "convert" in broken.error.lower()


def test_state_on_postgresql_and_the_scheduler_entry_point(tmp_path, sandbox, pg_url):
    from headwater.audiences import run_job
    from headwater.state.audiences import load_allocation
    from headwater.state.db import open_state

    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP, state=f"state: {pg_url}")
    write_people(root, [person(i) for i in range(140)])
    result = run_job(load_project(root), "vip", stop=None)
    assert (result.status, result.error) == ("succeeded", None)
    state = open_state(pg_url)
    try:
        saved = load_allocation(state, "vip")
    finally:
        state.dispose()
    assert saved.salt == "vip"
    assert saved.ranges == {"a": [(0, 4499)], "b": [(4500, 8999)], "holdout": [(9000, 9999)]}


def test_a_stopping_server_interrupts_the_run_and_the_next_run_sends_the_rest(tmp_path, sandbox):
    import threading

    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, [person(i) for i in range(120)])
    stop = threading.Event()
    stop.set()
    stopped = run_audience(load_project(root), "vip", stop=stop)
    assert (stopped.status, stopped.sent) == ("interrupted", 0)
    rest = run_audience(load_project(root), "vip")
    assert (rest.status, rest.added) == ("succeeded", 20)
