"""A Braze client for a batch job's destination, under the destination's shared rate
budget (shared with other processes through the state store when it is PostgreSQL).

Batch jobs (syncs, audiences) open one per run: everything the destination says about batching, concurrency, timeouts
and tries is applied in this one place."""

from __future__ import annotations

from sqlalchemy import Engine

from headwater.braze.client import BrazeClient
from headwater.braze.retry import Backoff
from headwater.config import Project
from headwater.errors import ConfigError
from headwater.state.budgets import budget_options


def destination_client(
    project: Project,
    destination: str,
    state: Engine | None = None,
    *,
    where: str = "",
    max_concurrency: int | None = None,
) -> BrazeClient:
    """The client for ``destination``; ``where`` names the entry that asked, for the error;
    ``max_concurrency`` caps the destination's own (trigger sends keep a few in flight)."""
    dest = project.destinations.get(destination)
    if dest is None:
        raise ConfigError(f"{where or 'destination'}: no destination named {destination!r}")
    key = dest.api_key.get_secret_value()
    return BrazeClient(
        dest.url,
        dest.api_key,
        batch_policy=dest.batch_policy,
        max_concurrency=min(dest.max_concurrency, max_concurrency or dest.max_concurrency),
        timeout=dest.timeout_seconds,
        max_attempts=dest.max_attempts,
        backoff=Backoff(base_seconds=dest.retry_base_seconds),
        bulk=True,
        **budget_options(dest.url, key, dest.rate_limits, state),
    )
