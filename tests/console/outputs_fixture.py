"""A served project with real audiences and exports data: an audience run twice against
the sandbox (entries, then exits), a segment export landed, Currents events landed and a
batch refused, and a console user. Shared by the HTTP and browser tests and screenshots."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from gateway_harness import wait_until
from tests.audiences.people import person, write_people, write_project

from headwater.audiences import run_audience
from headwater.config import load_project
from headwater.exports.segments import run_segments_export
from headwater.runtime.hub import Hub
from headwater.runtime.settings import ServeSettings
from headwater.sandbox.testing import run_sandbox
from headwater.server.app import create_app
from headwater.state import users
from headwater.state.currents import landed_stream
from headwater.testing import serve_in_thread

PASSWORD = "a long enough password"
CURRENTS_TOKEN = "currents-token-0123456789"
AUDIENCE = """
vip:
  model: people
  where: "ltv >= 1000"
  destination: braze
  splits: {a: 45, b: 45}
  holdout: 10
"""
EXTRA = f"""
exports:
  segments: {{destination: braze, poll_timeout_minutes: 2}}
currents:
  braze: {{token: "{CURRENTS_TOKEN}"}}
"""


@dataclass
class Served:
    url: str
    hub: Hub
    sandbox: object
    audience_runs: list[int]
    export_run: int


def _currents(url: str, body: bytes) -> int:
    headers = {"Authorization": f"Bearer {CURRENTS_TOKEN}", "Content-Type": "application/json",
               "Braze-Currents-Version": "1"}  # fmt: skip
    return httpx.post(f"{url}/currents/braze", content=body, headers=headers).status_code


def _event(n: int, kind: str) -> dict:
    return {"event_type": kind, "id": f"ev-{n}", "time": 1_700_000_000 + n,
            "user": {"external_user_id": f"u{n}"}, "properties": {"name": "opened_app"}}  # fmt: skip


def _prepare(root, sandbox) -> tuple[list[int], int]:
    """Run the audience twice and the segment export (in a thread of its own: a browser
    test's Playwright keeps an event loop in the test's thread)."""
    rows = [person(i) for i in range(300)]
    write_people(root, rows)
    first = run_audience(load_project(root), "vip")
    rows = [person(i, ltv="5") if i % 4 == 0 else r for i, r in enumerate(rows)]
    write_people(root, rows)
    second = run_audience(load_project(root), "vip")
    assert first.error is None and second.error is None, (first.error, second.error)
    assert second.removed > 0
    sandbox.define_segment("Everyone")
    export = run_segments_export(load_project(root))
    assert export.status == "succeeded", export.error
    return [first.run_id, second.run_id], export.run_id


@contextlib.contextmanager
def served_outputs(tmp_path):
    import orjson

    with run_sandbox() as sandbox:
        root = write_project(tmp_path, sandbox.url, sandbox.key, AUDIENCE)
        (root / "headwater.yml").write_text((root / "headwater.yml").read_text() + EXTRA)
        with ThreadPoolExecutor(1) as pool:
            audience_runs, export_run = pool.submit(_prepare, root, sandbox).result()
        project = load_project(root)
        settings = ServeSettings.from_project(project)
        hub = Hub(settings)
        with serve_in_thread(create_app(settings, hub)) as server:
            hub.project = project
            users.create_user(hub.engine, "ada", PASSWORD)
            events = [_event(n, "users.behaviors.CustomEvent") for n in range(5)]
            events += [_event(10 + n, "users.messages.email.Open") for n in range(2)]
            assert _currents(server.url, orjson.dumps({"events": events})) == 200
            assert _currents(server.url, b'{"events": [{"no": "id"}]}') == 400
            stream = landed_stream("braze")
            wait_until(lambda: sum(hub.counters.read(stream).get(stream, {}).values()) == 7)
            yield Served(server.url, hub, sandbox, audience_runs, export_run)
