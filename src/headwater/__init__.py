"""Headwater: a self-hosted customer data activation hub for Braze.

The names in ``__all__`` are the public Python API: they keep their meaning between minor
versions, and ``tests/test_package.py`` pins the list so that adding or dropping one is a
deliberate change. Everything else (the sync engine, the gateway, the state store) is
reached through the ``headwater`` command and may move.

They are imported on first use, so ``import headwater`` (and every CLI start) stays cheap,
and the package's root imports nothing at all (the sandbox, which imports it for the
version, must not stand on the hub's layers).
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "BrazeClient": "headwater.braze.client",
    "TrackItem": "headwater.braze.client",
    "ItemResult": "headwater.braze.client",
    "TrackSummary": "headwater.braze.client",
    "BrazeRejectedError": "headwater.braze.errors",
    "BrazeUnavailableError": "headwater.braze.errors",
    "HeadwaterError": "headwater.errors",
    "ConfigError": "headwater.errors",
    "FatalError": "headwater.errors",
    "RetriableError": "headwater.errors",
    "RowError": "headwater.errors",
    "Project": "headwater.config",
    "load_project": "headwater.config",
    "run_sandbox": "headwater.sandbox.testing",
}

__all__ = [
    "__version__",
    "BrazeClient",
    "TrackItem",
    "ItemResult",
    "TrackSummary",
    "BrazeRejectedError",
    "BrazeUnavailableError",
    "HeadwaterError",
    "ConfigError",
    "FatalError",
    "RetriableError",
    "RowError",
    "Project",
    "load_project",
    "run_sandbox",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
