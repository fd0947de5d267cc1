"""``make screenshots``: a PNG of each console page under docs/screenshots/, taken in Debian's
headless Chromium from a hub delivering to a sandbox, with a month of runs, row errors, a
dead letter, a paused stream and live stream traffic seeded so every page has something
to show; then the audiences and exports pages from a project that ran an audience twice,
landed a segment export and received Currents events (tests/console/outputs_fixture.py).

    python tests/console/screenshots.py [docs/screenshots]
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from headwater.config import load_project
from headwater.runtime.hub import Hub
from headwater.runtime.settings import ServeSettings
from headwater.sandbox.testing import run_sandbox
from headwater.schedules.jobs import job_runner, jobs_of
from headwater.schedules.scheduler import Scheduler
from headwater.server.app import create_app
from headwater.state import runs, users
from headwater.state.dead_letters import dead_letters
from headwater.state.keys import create_key
from headwater.testing import serve_in_thread

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "gateway"), str(HERE.parents[1])]
from outputs_fixture import PASSWORD as OUTPUTS_PASSWORD  # noqa: E402
from outputs_fixture import served_outputs  # noqa: E402

from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from headwater.state.pauses import pause_stream  # noqa: E402

PASSWORD = "screenshot password"
PROJECT = """
state: sqlite:///state.db
destinations:
  braze: {{url: "{url}", api_key: "{key}"}}
sources:
  crm: {{type: csv, path: contacts.csv}}
models:
  contacts:
    sql: select * from crm
    primary_key: customer_id
    columns:
      customer_id: {{type: string, required: true}}
      email: {{type: string}}
syncs:
  contacts:
    model: contacts
    destination: braze
    identifier: {{external_id: customer_id}}
    mapping: {{email: email}}
    schedule: {{cron: "0 2 * * *", timezone: Europe/London}}
streams:
  shop:
    preset: generic
    auth: {{type: bearer, token: shop-token}}
    mapping:
      attributes: [{{external_id: "{{{{ user }}}}", city: "{{{{ city }}}}"}}]
"""


def seed(engine) -> int:
    start = datetime.now(UTC) - timedelta(days=30)
    last = 0
    for day in range(30):
        run_id = runs.start_run(engine, "contacts")
        rejected = 3 if day % 6 == 0 else 0
        runs.finish_run(
            engine, run_id, added=40 + day * 3, changed=120 - day * 2, removed=day % 5,
            rejected=rejected, sent=160, requests=3, data_points=900 + day * 20,
            data_points_saved=2600 - day * 15,
        )  # fmt: skip
        began = start + timedelta(days=day)
        with engine.begin() as conn:
            conn.execute(
                update(runs.runs).where(runs.runs.c.id == run_id).values(
                    started_at=began, finished_at=began + timedelta(seconds=20 + day),
                    duration_seconds=20.0 + day,
                )
            )  # fmt: skip
        if rejected:
            runs.add_row_errors(engine, run_id, [
                ("user-104", "email", "invalid email", "ada@@example"),
                ("user-221", "phone", "not a phone number", "+44 12"),
                ("user-307", "dob", "not a date", "31/02/1990"),
            ])  # fmt: skip
            last = run_id
    with engine.begin() as conn:
        conn.execute(
            dead_letters.insert().values(
                stream="shop", destination="braze", kind="attributes",
                payload=b'{"external_id":"user-9","loyalty_tier":{"$bad":1}}', options=0,
                reason="400: custom attribute value is an object Braze cannot store",
                attempts=1, parked_at=time.time(),
            )
        )  # fmt: skip
    create_key(engine, "extole", ["users.track"])
    create_key(engine, "reporting", ["streams.read", "schedules.read"])
    users.create_user(engine, "ada", PASSWORD)
    pause_stream(engine, "gateway", "ada")  # partners' posts held while a key is checked
    return last


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with run_sandbox() as sandbox:
        tmp = Path(tempfile.mkdtemp())
        (tmp / "headwater.yml").write_text(PROJECT.format(url=sandbox.url, key=sandbox.key))
        (tmp / "contacts.csv").write_text("customer_id,email\nC1,ada@example.com\n")
        project = load_project(tmp)
        settings = ServeSettings.from_project(project)
        hub = Hub(settings)
        with serve_in_thread(create_app(settings, hub)) as server:
            hub.project = project
            hub.scheduler = Scheduler(hub.engine, jobs_of(project), job_runner(project))
            run_id = seed(hub.engine)
            for n, city in enumerate(("York", "Leeds", "Bath")):
                httpx.post(f"{server.url}/hooks/shop", json={"user": f"u{n}", "city": city,
                           "api_token": "never shown"},
                           headers={"Authorization": "Bearer shop-token"})  # fmt: skip
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 860})
                page.goto(f"{server.url}/console/login")
                page.screenshot(path=str(out / "login.png"))
                page.fill("input[name=name]", "ada")
                page.fill("input[name=password]", PASSWORD)
                page.click("#login")
                page.wait_for_selector("#health")
                shots = {
                    "overview": ("/console/", "#destinations"),
                    "sync": ("/console/syncs/contacts", "#chart-rows canvas"),
                    "run": (f"/console/runs/{run_id}", "#row-errors"),
                    "stream": ("/console/streams/shop", "#inspector >> text=accepted"),
                    "dead-letters": ("/console/dead-letters", "#dead-letters"),
                    "keys": ("/console/keys", "#keys"),
                }
                for name, (path, ready) in shots.items():
                    page.goto(server.url + path)
                    page.wait_for_selector(ready)
                    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                    print(f"wrote {out / (name + '.png')}")
                browser.close()
        hub.engine.dispose()
    _outputs(out)


def _outputs(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with served_outputs(Path(tempfile.mkdtemp())) as served, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.goto(f"{served.url}/console/login")
        page.fill("input[name=name]", "ada")
        page.fill("input[name=password]", OUTPUTS_PASSWORD)
        page.click("#login")
        page.wait_for_selector("#health")
        shots = {
            "audiences": ("/console/audiences", "#audiences"),
            "audience": ("/console/audiences/vip", "#stays-table"),
            "exports": ("/console/exports", "#receivers"),
        }
        for name, (path, ready) in shots.items():
            page.goto(served.url + path)
            page.wait_for_selector(ready)
            page.screenshot(path=str(out / f"{name}.png"), full_page=True)
            print(f"wrote {out / (name + '.png')}")
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
