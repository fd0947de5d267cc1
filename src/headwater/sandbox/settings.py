"""How one sandbox behaves: where it keeps data, which batch rule it applies, its rate
budgets and its faults. Everything a test may want to change is here, in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from headwater.braze.limits import DEFAULT_MAX_ARRAY_ITEMS, BatchPolicy


@dataclass
class Faults:
    """Misbehaviour on demand, so clients can be tested against a Braze having a bad day."""

    rate_429: float = 0.0  # share of Braze-API requests answered 429
    rate_5xx: float = 0.0  # share answered 500/502/503/504
    latency_ms: float = 0.0  # added before answering
    drop_rate: float = 0.0  # share whose connection is closed without an answer
    export_lag_seconds: float = 0.0  # new users stay invisible to /users/export/ids this long
    export_duplicate_share: float = 0.0  # share of users a segment export writes twice
    export_truncated_share: float = 0.0  # share of segment exports whose file is cut short

    def update(self, values: dict) -> None:
        for name, value in values.items():
            if not hasattr(self, name):
                raise ValueError(f"unknown fault {name!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
            if name.startswith("rate") or name == "drop_rate" or name.endswith("_share"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} is a share between 0 and 1")
            elif value < 0:
                raise ValueError(f"{name} cannot be negative")
            setattr(self, name, value)


@dataclass
class RateBudget:
    limit: int
    window_seconds: float


@dataclass
class SandboxSettings:
    db: str = ".headwater/sandbox.db"  # or ":memory:"
    batch_policy: BatchPolicy = BatchPolicy.COMBINED
    max_array_items: int = DEFAULT_MAX_ARRAY_ITEMS
    key: str | None = None  # one key holding every permission, for scripts and CI
    keys_file: str | None = None  # YAML: [{name, key, permissions: [...]}]
    control_token: str | None = None  # when set, /_sandbox/* needs it as a Bearer token
    rate_limits: dict[str, RateBudget] = field(default_factory=dict)  # by bucket
    faults: Faults = field(default_factory=Faults)
    seed: int | None = None  # random seed for fault injection (repeatable tests)
    currents_url: str | None = None  # where the Currents emitter posts (None: it does not)
    currents_token: str | None = None  # the bearer token it presents there
    # What trigger sends may target: [{id, name, tags?, api?, status?}] (sandbox/messaging)
    campaigns: list[dict] = field(default_factory=list)
    canvases: list[dict] = field(default_factory=list)
