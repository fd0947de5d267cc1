"""``GET /metrics``: Prometheus text (prometheus-client) for syncs, delivery, streams and
schedules, so an operator can alert on a failing sync, a growing outbox or dead-letter
queue, a slow or rate-limited Braze.

Two sources, both on every scrape:

* the state store (``StateCollector``): what every process did, summed: sync runs and
  rows by outcome, data points, durations, the last success of each job, outbox depth,
  dead letters, per-stream delivery counters;
* this process (``PROCESS``): requests to Braze by endpoint and status, their latency and
  the time waited for the rate budget, outbox group commits, held duplicate-window keys.

The figures name partner keys and their volumes, so they are shown only to a bearer token
(``serve --metrics-token``, ``HEADWATER_METRICS_TOKEN`` or ``metrics.token``), compared in
constant time; without a token configured the endpoint is off and says how to turn it on."""

from __future__ import annotations

import asyncio
import hmac

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import case, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.bearer import bearer_token
from headwater.braze import client as braze_client
from headwater.braze.errors import BrazeError
from headwater.runtime.hub import GATEWAY_STREAM, hub_of
from headwater.state import runs
from headwater.state.dead_letters import dead_letters
from headwater.state.pauses import list_pauses
from headwater.state.schedules import job_states

CONTENT_TYPE = CONTENT_TYPE_LATEST
METRICS_OFF = (
    "/metrics is off until it has a token: start serve with --metrics-token, set "
    "HEADWATER_METRICS_TOKEN, or set metrics.token in headwater.yml; then scrape with "
    "Authorization: Bearer <token>"
)
DURATION_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
ROW_OUTCOMES = ("added", "changed", "removed", "unchanged", "rejected", "failed")

# This process's figures, fed by every BrazeClient it runs (delivery, syncs, passthrough).
PROCESS = CollectorRegistry(auto_describe=True)
BRAZE_REQUESTS = Counter(
    "headwater_braze_requests",
    "Requests to Braze by endpoint and HTTP status (status 'error': no answer).",
    ["endpoint", "status"],
    registry=PROCESS,
)
BRAZE_LATENCY = Histogram(
    "headwater_braze_request_duration_seconds",
    "Time Braze took to answer, by endpoint.",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=PROCESS,
)
BRAZE_WAITS = Counter(
    "headwater_braze_rate_limit_wait_seconds",
    "Time requests waited for the rate budget before being sent, by endpoint.",
    ["endpoint"],
    registry=PROCESS,
)


def _observe_request(path: str, status: int | None, latency: float, waited: float) -> None:
    BRAZE_REQUESTS.labels(path, "error" if status is None else str(status)).inc()
    if status is not None:
        BRAZE_LATENCY.labels(path).observe(latency)
    if waited > 0:
        BRAZE_WAITS.labels(path).inc(waited)


def install_request_metrics() -> None:
    """Count every Braze request of this process (once, however many apps it builds)."""
    if _observe_request not in braze_client.REQUEST_OBSERVERS:
        braze_client.REQUEST_OBSERVERS.append(_observe_request)


class StateCollector:
    """Reads the figures of all processes from the state store at each scrape."""

    def __init__(self, hub) -> None:
        self.hub = hub

    def collect(self):
        hub = self.hub
        engine = hub.engine
        r = runs.runs
        with engine.connect() as conn:
            by_status = conn.execute(
                select(r.c.sync, r.c.status, func.count()).group_by(r.c.sync, r.c.status)
            ).all()
            sums = conn.execute(
                select(
                    r.c.sync,
                    *(
                        func.sum(r.c[name])
                        for name in (*ROW_OUTCOMES, "data_points", "requests", "data_points_saved")
                    ),
                    func.sum(r.c.duration_seconds),
                    func.count(r.c.duration_seconds),
                    *(
                        func.sum(case((r.c.duration_seconds <= bound, 1), else_=0))
                        for bound in DURATION_BUCKETS
                    ),
                )
                .where(r.c.status != runs.SKIPPED, r.c.status != runs.RUNNING)
                .group_by(r.c.sync)
            ).all()
            last_success = conn.execute(
                select(r.c.sync, func.max(r.c.finished_at))
                .where(r.c.status.in_((runs.SUCCEEDED, runs.PARTIAL)))
                .group_by(r.c.sync)
            ).all()
            letters = conn.execute(
                select(dead_letters.c.stream, func.count())
                .where(dead_letters.c.replayed_at.is_(None))
                .group_by(dead_letters.c.stream)
            ).all()
        running = runs.running_runs(engine)

        runs_total = CounterMetricFamily(
            "headwater_sync_runs", "Runs of each sync or job, by final status.",
            labels=["sync", "status"],
        )  # fmt: skip
        for sync, status, count in by_status:
            if status != runs.RUNNING:
                runs_total.add_metric([sync, status], count)
        yield runs_total

        rows = CounterMetricFamily(
            "headwater_sync_rows", "Rows of each sync's finished runs, by outcome.",
            labels=["sync", "outcome"],
        )  # fmt: skip
        points = CounterMetricFamily(
            "headwater_sync_data_points", "Braze data points the sync's runs spent.",
            labels=["sync"],
        )  # fmt: skip
        requests = CounterMetricFamily(
            "headwater_sync_requests", "Requests to Braze the sync's runs made.", labels=["sync"]
        )
        saved = CounterMetricFamily(
            "headwater_sync_data_points_saved",
            "Braze data points the sync's diff saved (a full resend's cost less what was spent).",
            labels=["sync"],
        )
        durations = HistogramMetricFamily(
            "headwater_sync_duration_seconds", "How long the sync's runs took.", labels=["sync"]
        )
        for row in sums:
            sync = row[0]
            for i, outcome in enumerate(ROW_OUTCOMES):
                rows.add_metric([sync, outcome], row[1 + i] or 0)
            base = 1 + len(ROW_OUTCOMES)
            points.add_metric([sync], row[base] or 0)
            requests.add_metric([sync], row[base + 1] or 0)
            saved.add_metric([sync], row[base + 2] or 0)
            total, count = row[base + 3] or 0.0, row[base + 4] or 0
            buckets = [(str(b), row[base + 5 + i] or 0) for i, b in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", count))
            durations.add_metric([sync], buckets, total)
        yield from (rows, points, saved, requests, durations)

        in_progress = GaugeMetricFamily(
            "headwater_sync_running", "1 while a run of the sync is in progress.", labels=["sync"]
        )
        for sync in sorted({row[0] for row in by_status} | set(running)):
            in_progress.add_metric([sync], 1 if sync in running else 0)
        yield in_progress

        success = GaugeMetricFamily(
            "headwater_schedule_last_success_timestamp_seconds",
            "When each job's latest succeeded (or partial) run finished, Unix time.",
            labels=["job"],
        )
        for sync, finished in last_success:
            if finished is not None:
                success.add_metric([sync], runs._aware(finished).timestamp())
        yield success

        if hub.scheduler is not None:
            states = job_states(engine)
            paused = GaugeMetricFamily(
                "headwater_schedule_paused", "1 while the scheduled job is paused.",
                labels=["job"],
            )  # fmt: skip
            for job in hub.scheduler.jobs:
                paused.add_metric([job], 1 if job in states and states[job].paused else 0)
            yield paused

        yield GaugeMetricFamily(
            "headwater_outbox_depth", "Objects committed and not yet delivered.",
            value=hub.outbox.depth(),
        )  # fmt: skip
        yield GaugeMetricFamily(
            "headwater_outbox_held",
            "Objects of paused streams held in the outbox until a resume (part of the depth).",
            value=hub.outbox.held(),
        )
        yield GaugeMetricFamily(
            "headwater_dead_letters", "Parked objects not yet replayed.",
            value=sum(count for _, count in letters),
        )  # fmt: skip
        per_stream = GaugeMetricFamily(
            "headwater_stream_dead_letters", "Parked objects not yet replayed, by stream.",
            labels=["stream"],
        )  # fmt: skip
        for stream, count in letters:
            per_stream.add_metric([stream], count)
        yield per_stream

        pauses = list_pauses(engine)
        paused_streams = GaugeMetricFamily(
            "headwater_stream_paused",
            "1 while the stream is paused (its events accepted and held in the outbox).",
            labels=["stream"],
        )
        for stream in [GATEWAY_STREAM, *hub.settings.streams]:
            paused_streams.add_metric([stream], 1 if stream in pauses else 0)
        yield paused_streams

        objects = CounterMetricFamily(
            "headwater_stream_objects",
            "Per-stream delivery counters (all processes).",
            labels=["stream", "counter"],
        )
        for stream, values in sorted(hub.counters.read().items()):
            for name, value in sorted(values.items()):
                objects.add_metric([stream, name], value)
        yield objects

        yield CounterMetricFamily(
            "headwater_outbox_commits", "Group commits run by this process.",
            value=hub.outbox.commits,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "headwater_seen_event_keys",
            "Event keys of the duplicate window this process holds in memory (SQLite state; "
            "0 on PostgreSQL, which keeps them in a table).",
            value=len(hub.outbox.seen.known),
        )


def render_metrics(hub) -> str:
    registry = getattr(hub, "_metrics_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(StateCollector(hub))
        hub._metrics_registry = registry
    return (generate_latest(registry) + generate_latest(PROCESS)).decode()


def check_metrics_token(request: Request) -> None:
    """403 while no token is configured, 401 unless the request presents it."""
    token = hub_of(request).settings.metrics_token
    expected = token.get_secret_value() if token is not None else ""
    if not expected:  # an empty token would let in a request without one
        raise BrazeError(403, METRICS_OFF)
    presented = bearer_token(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise BrazeError(401, "Unauthorized: /metrics needs Authorization: Bearer <token>")


async def metrics(request: Request) -> Response:
    check_metrics_token(request)
    text = await asyncio.to_thread(render_metrics, hub_of(request))
    return Response(text, media_type=CONTENT_TYPE)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
