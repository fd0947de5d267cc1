"""``GET /metrics`` names partner keys and their volumes: it answers only a bearer token,
and says how to set one while none is configured."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from gateway_harness import METRICS_TOKEN, make_settings, running_gateway, wait_for_start

from headwater.config import load_project
from headwater.runtime.settings import ServeSettings
from headwater.testing import free_port


@pytest.fixture
def gateway(sqlite_state):
    with running_gateway(
        make_settings(sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    ) as gw:
        gw.key("extole-partner")  # a key name the figures would show
        yield gw


def test_metrics_without_a_configured_token_are_403_saying_how_to_turn_them_on(sqlite_state):
    settings = make_settings(
        sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False, metrics_token=None
    )
    with running_gateway(settings) as gw:
        answer = httpx.get(f"{gw.url}/metrics", headers={"Authorization": "Bearer anything"})
    assert answer.status_code == 403
    message = answer.json()["message"]
    for way in ("--metrics-token", "HEADWATER_METRICS_TOKEN", "metrics.token"):
        assert way in message
    assert "headwater_" not in answer.text


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {METRICS_TOKEN}", METRICS_TOKEN,
     f"Bearer {METRICS_TOKEN}x", f"Bearer {METRICS_TOKEN[:-1]}"],
)  # fmt: skip
def test_metrics_refuse_a_missing_or_wrong_token(gateway, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = httpx.get(f"{gateway.url}/metrics", headers=headers)
    assert answer.status_code == 401
    assert "headwater_" not in answer.text and "extole-partner" not in answer.text


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_metrics_answer_the_token_in_any_scheme_case(gateway, scheme):
    answer = httpx.get(
        f"{gateway.url}/metrics", headers={"Authorization": f"{scheme} {METRICS_TOKEN}"}
    )
    assert answer.status_code == 200
    assert "headwater_outbox_depth 0" in answer.text


PROJECT = """
state: sqlite:///.headwater/state.db
destinations:
  braze: {url: "http://127.0.0.1:9", api_key: "${METRICS_TEST_BRAZE_KEY}"}
metrics:
  token: ${METRICS_TEST_FILE_TOKEN}
"""


def test_the_project_files_token_comes_from_the_environment(tmp_path, monkeypatch):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    monkeypatch.setenv("METRICS_TEST_BRAZE_KEY", "k")
    monkeypatch.setenv("METRICS_TEST_FILE_TOKEN", "from-the-file-9876")
    settings = ServeSettings.from_project(load_project(tmp_path))
    assert settings.metrics_token.get_secret_value() == "from-the-file-9876"
    assert "from-the-file-9876" not in repr(settings)


def test_serve_takes_the_token_from_its_option_or_environment_over_the_file(tmp_path):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    env = {**os.environ, "METRICS_TEST_BRAZE_KEY": "k",
           "METRICS_TEST_FILE_TOKEN": "from-the-file-9876",
           "HEADWATER_METRICS_TOKEN": "from-the-env-5432"}  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(tmp_path),
         "--port", str(port), "--no-workers"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_start(process, f"{base}/healthz")

        def scrape(token: str) -> httpx.Response:
            return httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})

        assert scrape("from-the-env-5432").status_code == 200
        assert scrape("from-the-file-9876").status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
