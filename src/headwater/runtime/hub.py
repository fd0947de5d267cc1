"""What one running hub shares, built once per app: state store, outbox, keys, streams,
inspector, content store and counters. Routes (``request.app``) and workers (the ``Hub``
they are handed) read it; it imports no route or worker, so none of them needs the HTTP
layer that wires them (``headwater.server``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.requests import Request

from headwater.braze.client import BrazeClient
from headwater.errors import ConfigError
from headwater.runtime.inspector import Inspector
from headwater.runtime.settings import ServeSettings
from headwater.state import currents as _currents_tables  # noqa: F401
from headwater.state import dead_letters as _dead_letter_tables  # noqa: F401
from headwater.state import delivered as _delivered_tables  # noqa: F401  (declares tables)
from headwater.state import triggers as _trigger_tables  # noqa: F401  (declares tables)
from headwater.state.budgets import budget_options
from headwater.state.content import ContentStore
from headwater.state.counters import Counters
from headwater.state.db import WalCheckpointer, open_state
from headwater.state.keys import KeyRing, keys_without_destination
from headwater.state.outbox import Outbox
from headwater.state.serve_lock import ServeLock
from headwater.state.signatures import SignatureLog

GATEWAY_STREAM = "gateway"


class Hub:
    def __init__(self, settings: ServeSettings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or open_state(settings.state_url, background_checkpoints=True)
        try:
            _check_key_destinations(self.engine, settings)
        except ConfigError:
            if engine is None:
                self.engine.dispose()
            raise
        lock = ServeLock.for_engine(self.engine)
        self.lock = lock.acquire() if lock else None
        self.outbox = Outbox(
            self.engine,
            lease_seconds=settings.delivery.lease_seconds,
            seen_window_seconds=settings.seen_window_seconds,
        )
        self.checkpointer = (
            WalCheckpointer(self.engine, run_with_writers=self.outbox.run_with_writers).start()
            if self.engine.dialect.name == "sqlite"
            else None
        )
        self.keys = KeyRing(self.engine)
        self.signatures = SignatureLog(self.engine)
        self.clock: Callable[[], float] = time.time  # wall time for signed timestamps
        self.inspector = Inspector(
            max_bytes=settings.inspector.max_bytes,
            payload_bytes=settings.inspector.payload_bytes,
            redact=settings.inspector.redact,
            engine=self.engine,
            writer=self.outbox.run_with_writers,
        ).start()
        for name, stream in settings.streams.items():
            self.inspector.configure(name, stream.inspector_size)
        self.content = ContentStore(self.engine)
        self.counters = Counters(self.engine)
        self.clients: dict[str, BrazeClient] = {}
        self.workers: list = []
        self.scheduler = None  # a headwater.schedules.scheduler.Scheduler, set by serve
        self.project = None  # the loaded headwater.config.Project, set by serve (console syncs)

    def braze_client(self, name: str) -> BrazeClient:
        """The client the gateway's passthrough reads use for destination ``name``: under
        the destination's shared rate budget, like delivery and the syncs."""
        client = self.clients.get(name)
        if client is None:
            dest = self.settings.destinations[name]
            key = dest.api_key.get_secret_value()
            client = self.clients[name] = BrazeClient(
                dest.url,
                dest.api_key,
                timeout=dest.timeout_seconds,
                max_concurrency=dest.max_concurrency,
                **budget_options(dest.url, key, dest.rate_limits, self.engine),
            )
        return client

    async def aclose(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.inspector.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.outbox.close()
        if self.lock is not None:
            self.lock.release()


def _check_key_destinations(engine: Engine, settings: ServeSettings) -> None:
    """Refuse to start while an active key sends to a destination headwater.yml lacks: its
    partner's posts would be answered 201 and never delivered. Refused, not skipped with a
    warning, as a stream naming an unknown destination is: the person who changed the file
    hears of it now, not from the partner."""
    problems = keys_without_destination(engine, settings.destinations)
    if problems:
        raise ConfigError(
            [
                *problems,
                "add the destination back to headwater.yml, or revoke the key "
                "(headwater keys revoke NAME) and issue a new one with --destination",
            ]
        )


def hub_of(request: Request) -> Hub:
    return request.app.state.hub
