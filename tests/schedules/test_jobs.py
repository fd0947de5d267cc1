"""The job table: every section's scheduled entries are jobs addressed by name alone."""

from __future__ import annotations

from headwater.schedules.checks import check_job_names, check_schedules


def _problems(check, raw: dict) -> list[tuple[tuple, str]]:
    found: list[tuple[tuple, str]] = []
    check(raw, lambda loc, message: found.append((tuple(loc), message)))
    return found


def test_two_jobs_with_one_name_are_refused_at_the_second():
    raw = {"syncs": {"vip": {}}, "audiences": {"vip": {}}}
    [(loc, message)] = _problems(check_job_names, raw)
    assert loc == ("audiences", "vip")
    assert "syncs.vip" in message


def test_a_plain_model_may_share_its_syncs_name_but_an_identity_model_may_not():
    plain = {"models": {"contacts": {"sql": "select 1"}}, "syncs": {"contacts": {}}}
    assert _problems(check_job_names, plain) == []
    identity = {"models": {"contacts": {"identity": {}}}, "syncs": {"contacts": {}}}
    [(loc, _message)] = _problems(check_job_names, identity)
    assert loc == ("models", "contacts")


def test_after_may_name_an_identity_model_and_is_checked_where_it_is_written():
    raw = {
        "models": {"people": {"identity": {"schedule": {"after": "nightly"}}}},
        "syncs": {"people_sync": {"schedule": {"after": "people"}}},
    }
    [(loc, message)] = _problems(check_schedules, raw)
    assert loc == ("models", "people", "identity", "schedule", "after")
    assert "'nightly'" in message
    raw["models"]["people"]["identity"]["schedule"] = {"every": "1h"}
    assert _problems(check_schedules, raw) == []
    raw["models"]["plain"] = {"sql": "select 1"}
    raw["syncs"]["people_sync"]["schedule"]["after"] = "plain"
    [(loc, message)] = _problems(check_schedules, raw)
    assert "no job named 'plain'" in message


def test_a_project_without_segment_exports_has_no_segments_job():
    """``exports:`` holds its jobs as optional fields: one left out is no job (the console
    listed a "segments" job, never run, for every project)."""
    from headwater.config.exports import ExportsConfig
    from headwater.console.jobs import project_jobs

    class Project:
        syncs = {"contacts": object()}
        exports = ExportsConfig()

    assert list(project_jobs(Project())) == ["contacts"]
    Project.exports = ExportsConfig(segments={"destination": "braze"})
    assert list(project_jobs(Project())) == ["contacts", "segments"]
