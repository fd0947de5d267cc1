"""The console's sync buttons against a real project and sandbox: a dry run previews the
payload (nothing sent), "Run now" runs the sync in a thread and its run lands in the
history, pause and resume reach the schedule's state."""

from __future__ import annotations

import re

import httpx
import pytest
from gateway_harness import wait_until
from tests.syncs.test_engine import contact, make_project, write_contacts

from headwater.config import load_project
from headwater.runtime.hub import Hub
from headwater.runtime.settings import ServeSettings
from headwater.sandbox.testing import run_sandbox
from headwater.schedules.jobs import job_runner, jobs_of
from headwater.schedules.scheduler import Scheduler
from headwater.server.app import create_app
from headwater.state import runs, users
from headwater.state.schedules import job_states
from headwater.testing import serve_in_thread

PASSWORD = "a long enough password"


@pytest.fixture
def hub_with_project(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        project_file = root / "headwater.yml"
        project_file.write_text(project_file.read_text().replace(
            "    on_removed: keep", "    on_removed: keep\n    schedule: {every: 1d}"))  # fmt: skip
        write_contacts(root / "data" / "contacts.csv", [contact(i) for i in range(3)])
        project = load_project(root)
        settings = ServeSettings.from_project(project)
        settings.run_workers = False
        hub = Hub(settings)
        with serve_in_thread(create_app(settings, hub)) as server:
            hub.project = project  # as serve sets them; the scheduler is not started here
            hub.scheduler = Scheduler(hub.engine, jobs_of(project), job_runner(project))
            users.create_user(hub.engine, "ada", PASSWORD)
            yield server.url, hub, sandbox


def login(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, headers={"Accept": "text/html"}, timeout=120)
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    client.post("/console/login", data={"csrf": csrf, "name": "ada", "password": PASSWORD})
    page = client.get("/console/syncs/contacts")
    return client, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_dry_run_run_now_pause_and_resume(hub_with_project):
    url, hub, sandbox = hub_with_project
    client, csrf = login(url)
    preview = client.post("/console/syncs/contacts/dry-run", data={"csrf": csrf})
    assert preview.status_code == 200
    assert "Would add 3" in preview.text and "C0001" in preview.text
    assert sandbox.key not in preview.text
    assert sandbox.users() == [] and runs.list_runs(hub.engine) == []  # nothing sent
    started = client.post("/console/syncs/contacts/run", data={"csrf": csrf})
    assert started.status_code == 303
    wait_until(lambda: [r.status for r in runs.list_runs(hub.engine)] == ["succeeded"])
    assert len(sandbox.users()) == 3
    history = client.get("/console/syncs/contacts")
    assert "succeeded" in history.text and "Pause schedule" in history.text
    client.post("/console/schedules/contacts/pause", data={"csrf": csrf})
    assert job_states(hub.engine)["contacts"].paused
    assert "Resume schedule" in client.get("/console/syncs/contacts").text
    client.post("/console/schedules/contacts/resume", data={"csrf": csrf})
    assert not job_states(hub.engine)["contacts"].paused
    overview = client.get("/console/")
    assert "every 1d" in overview.text or "contacts" in overview.text
    unknown = client.post("/console/syncs/nope/run", data={"csrf": csrf})
    assert unknown.status_code == 404
