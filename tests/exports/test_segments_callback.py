"""Braze's export callback, hosted by ``serve``: it wakes the waiting export at once (the
next poll would be minutes away), over real sockets between the sandbox, serve and the
export; and a token serve never issued is refused."""

from __future__ import annotations

import secrets
import time

import httpx
from currents_harness import running_hub

from headwater.config import parse_project
from headwater.exports import segments_files
from headwater.exports.segments import run_segments_export
from headwater.exports.segments_callback import PATH
from headwater.sandbox.testing import run_sandbox

POLL_NEVER = 3600.0  # the first poll after "not ready": the test ends long before


def test_the_callback_wakes_the_waiting_export(tmp_path, monkeypatch):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    real_fetch = segments_files._fetch
    fetches: list[float] = []

    async def first_not_ready(http, url, dest, on_bytes):
        fetches.append(time.monotonic())
        if len(fetches) == 1:
            return None  # as if Braze were still preparing the files
        return await real_fetch(http, url, dest, on_bytes)

    monkeypatch.setattr(segments_files, "_fetch", first_not_ready)
    monkeypatch.setattr(segments_files, "FIRST_POLL_SECONDS", POLL_NEVER)
    with run_sandbox() as sandbox, running_hub(state_url, tmp_path / "landing") as hub:
        monkeypatch.setenv("HW_TEST_KEY", sandbox.key)
        sandbox.seed(attributes=[{"external_id": f"u{i}"} for i in range(50)])
        sandbox.define_segment("Everyone")
        project = parse_project(
            f"""\
state: {state_url}
destinations:
  braze: {{url: "{sandbox.url}", api_key: "${{HW_TEST_KEY}}"}}
exports:
  segments:
    destination: braze
    callback_base_url: {hub.url}
    poll_timeout_minutes: 120
""",
            root=tmp_path,
        )
        report = run_segments_export(project)
    assert report.status == "succeeded", report.error
    assert [s.members for s in report.segments] == [50]
    assert len(fetches) == 2 and fetches[1] - fetches[0] < POLL_NEVER / 10


def test_a_token_serve_never_issued_is_refused(tmp_path):
    with running_hub(f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "landing") as hub:
        for token in (secrets.token_urlsafe(32), "short"):
            answer = httpx.post(hub.url + PATH + token, json={"success": True})
            assert answer.status_code == 404
