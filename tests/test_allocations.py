"""A bulk job raises the young-collection threshold only while it runs, even when several
jobs of one process overlap."""

from __future__ import annotations

import gc

from headwater.allocations import BULK_THRESHOLD, fewer_collections


def test_the_threshold_is_raised_in_the_block_and_restored_after():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= BULK_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before


def test_overlapping_jobs_keep_it_raised_until_the_last_ends():
    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first job ends while the second runs
    assert gc.get_threshold()[0] >= BULK_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


def test_a_failing_job_restores_the_threshold():
    before = gc.get_threshold()
    try:
        with fewer_collections():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
