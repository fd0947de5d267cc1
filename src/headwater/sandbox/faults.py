"""Fault injection: decide, per request, whether this one is slow, refused or dropped."""

from __future__ import annotations

import random

from headwater.sandbox.settings import Faults

SERVER_ERRORS = (500, 502, 503, 504)


class FaultPlan:
    def __init__(self, faults: Faults, seed: int | None = None) -> None:
        self.faults = faults
        self.random = random.Random(seed)

    def pick(self) -> tuple[str | None, int | None]:
        """``("drop", None)``, ``("status", 429|5xx)`` or ``(None, None)``."""
        f = self.faults
        roll = self.random.random()
        if roll < f.drop_rate:
            return "drop", None
        roll -= f.drop_rate
        if roll < f.rate_429:
            return "status", 429
        roll -= f.rate_429
        if roll < f.rate_5xx:
            return "status", self.random.choice(SERVER_ERRORS)
        return None, None

    @property
    def latency_seconds(self) -> float:
        return self.faults.latency_ms / 1000.0
