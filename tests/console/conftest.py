"""A serve app on a real port, delivering to a real sandbox, with console users and a
store holding runs, row errors and a dead letter."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from gateway_harness import RunningGateway, make_settings, running_gateway, sqlite_url

from headwater.sandbox.testing import run_sandbox
from headwater.state import runs, users
from headwater.state.dead_letters import dead_letters

PASSWORD = "correct horse battery"
READER_PASSWORD = "only looking here"


@dataclass
class Console:
    gw: RunningGateway
    sandbox: object
    run_id: int
    letter_id: int

    @property
    def url(self) -> str:
        return self.gw.url


def seed(engine) -> tuple[int, int]:
    run_id = runs.start_run(engine, "crm_users")
    runs.add_row_errors(
        engine,
        run_id,
        [(f"user-{n}", "email", f"not an email: 'bad-{n}@'", f"bad-{n}@") for n in range(150)]
        + [("=cmd|calc", "city", "a formula-looking key", "=HYPERLINK(1)")]
        + [("user-pw", "db_password", "too short", "hunter2-secret")]
        + [("user-long", "bio", "longer than 200 characters", "x" * 400 + "END")],
    )
    runs.finish_run(engine, run_id, added=10, changed=2, rejected=153, sent=12, data_points=40,
                    data_points_saved=25)  # fmt: skip
    with engine.begin() as conn:
        letter_id = conn.execute(
            dead_letters.insert().values(
                stream="gateway:partner", destination="braze", kind="attributes",
                payload=b'{"external_id":"dl-user-1","city":"York","api_token":"tok-123"}',
                options=0, reason="400: invalid attribute", attempts=3, parked_at=time.time(),
            )
        ).inserted_primary_key[0]  # fmt: skip
    users.create_user(engine, "ada", PASSWORD)
    users.create_user(engine, "reader", READER_PASSWORD, read_only=True)
    return run_id, int(letter_id)


@pytest.fixture
def console(tmp_path):
    with run_sandbox() as sandbox:
        settings = make_settings(
            sqlite_url(tmp_path), {"braze": sandbox.url}, key=sandbox.key,
            streams={"shop": {"preset": "generic",
                              "auth": {"type": "bearer", "token": "shop-token-5"},
                              "mapping": {"attributes": [{"external_id": "{{ user }}",
                                                          "city": "{{ city }}"}]}}},
        )  # fmt: skip
        with running_gateway(settings) as gw:
            run_id, letter_id = seed(gw.hub.engine)
            yield Console(gw, sandbox, run_id, letter_id)


CHROMIUM = "/usr/bin/chromium"  # Debian's, installed by `make browser`
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def chromium():
    """A real headless Chromium; missing, the tests fail (never skip): `make browser`.

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while
    it is open, and a later test's ``asyncio.run`` would find it there."""
    import os

    from playwright.sync_api import sync_playwright

    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (Debian's chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)  # bounds a failure only; a loaded machine is slow
    yield context.new_page()
    context.close()


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path) -> str:
    """The console's queries on both kinds of store (as tests/state does)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")
