"""Batch commits: spaced by their own cost, or back to back when their cost follows their rows."""

from __future__ import annotations

from headwater.runtime import committer as committer_module
from headwater.runtime.committer import BatchCommitter


def _slow_commits(monkeypatch, clock, seconds: float):
    monkeypatch.setattr(committer_module.time, "monotonic", clock)
    done: list[list] = []

    def commit(keys: list) -> int:
        clock.advance(seconds)  # the commit takes this long
        done.append(keys)
        return len(keys)

    return done, commit


def test_commits_are_spaced_ten_times_their_cost_by_default(monkeypatch, clock):
    done, commit = _slow_commits(monkeypatch, clock, 3.0)
    batches = BatchCommitter(commit, every_rows=1_000)
    clock.advance(2.0)
    batches.add([1])  # due by time: committed, and took 3 s
    clock.advance(10.0)
    batches.add([2])  # 10 s later: not yet (30 s)
    assert done == [[1]] and batches.every == 30.0
    batches.flush()
    assert done == [[1], [2]] and batches.committed == 2


def test_commits_costing_what_their_rows_cost_follow_each_other(monkeypatch, clock):
    done, commit = _slow_commits(monkeypatch, clock, 3.0)
    batches = BatchCommitter(commit, every_rows=1_000, spacing=1)
    clock.advance(2.0)
    batches.add([1])
    clock.advance(3.0)
    batches.add([2])  # due again once as long as the last commit took
    assert done == [[1], [2]] and batches.every == 3.0
