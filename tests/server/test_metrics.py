"""``GET /metrics`` through prometheus-client: sync runs and rows by outcome, durations,
data points, each job's last success, delivery requests by endpoint and status with their
latency, outbox and dead letters; names follow Prometheus conventions."""

from __future__ import annotations

import re

import httpx
from gateway_harness import make_settings, running_gateway, wait_until
from prometheus_client.parser import text_string_to_metric_families

from headwater.state import runs
from headwater.state.pauses import pause_stream


def scrape(gw) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(gw.metrics())}


def value(samples, **labels) -> float:
    return next(s.value for s in samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_cover_syncs_delivery_and_streams(sqlite_state, receiver):
    _fake, url = receiver
    with running_gateway(make_settings(sqlite_state, {"braze": url})) as gw:
        engine = gw.hub.engine
        for added, rejected in ((10, 0), (5, 2)):
            run_id = runs.start_run(engine, "crm_users")
            runs.finish_run(engine, run_id, added=added, rejected=rejected, data_points=added * 3,
                            data_points_saved=added)  # fmt: skip
        failed = runs.start_run(engine, "crm_users")
        runs.finish_run(engine, failed, error="warehouse unreachable")
        key = gw.key("partner")
        answer = httpx.post(f"{gw.url}/users/track", headers={"Authorization": f"Bearer {key}"},
                            json={"attributes": [{"external_id": "u1", "city": "York"}]})  # fmt: skip
        assert answer.status_code == 201
        wait_until(lambda: gw.hub.outbox.depth() == 0)
        pause_stream(engine, "gateway")
        gw.hub.outbox.forget_pauses()  # this process sees the pause at its next write
        answer = httpx.post(f"{gw.url}/users/track", headers={"Authorization": f"Bearer {key}"},
                            json={"attributes": [{"external_id": "u2", "city": "Leeds"}]})  # fmt: skip
        assert answer.status_code == 201
        metrics = scrape(gw)
    assert value(metrics["headwater_sync_runs"], sync="crm_users", status="partial") == 1
    assert value(metrics["headwater_sync_runs"], sync="crm_users", status="failed") == 1
    assert value(metrics["headwater_sync_rows"], sync="crm_users", outcome="added") == 15
    assert value(metrics["headwater_sync_rows"], sync="crm_users", outcome="rejected") == 2
    assert value(metrics["headwater_sync_data_points"], sync="crm_users") == 45
    assert value(metrics["headwater_sync_data_points_saved"], sync="crm_users") == 15
    assert value(metrics["headwater_stream_paused"], stream="gateway") == 1
    assert value(metrics["headwater_sync_duration_seconds"], sync="crm_users", le="+Inf") == 3
    assert value(metrics["headwater_schedule_last_success_timestamp_seconds"], job="crm_users") > 0
    requests = metrics["headwater_braze_requests"]
    assert value(requests, endpoint="/users/track") >= 1
    latency = metrics["headwater_braze_request_duration_seconds"]
    assert value(latency, endpoint="/users/track", le="+Inf") >= 1
    assert value(metrics["headwater_outbox_depth"]) == 1  # accepted while paused: held
    assert value(metrics["headwater_outbox_held"]) == 1
    assert value(metrics["headwater_stream_objects"], stream="gateway:partner", counter="delivered")
    for name in metrics:  # Prometheus naming: the app prefix, snake case
        assert re.fullmatch(r"headwater_[a-z_]+", name), name
