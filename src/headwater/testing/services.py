"""Checks, before the suite runs, that the services the tests need are up.

``make test`` runs this first so a missing PostgreSQL is reported in one clear line
instead of as a hundred connection errors.
"""

from __future__ import annotations

import os
import socket
import sys

REQUIRED = {"PostgreSQL": ("127.0.0.1", 5432)}
HOW_TO_START = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
}


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_url() -> str:
    return os.environ.get("HEADWATER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def main() -> int:
    missing = [name for name, (host, port) in REQUIRED.items() if not reachable(host, port)]
    for name in missing:
        host, port = REQUIRED[name]
        print(f"error: {name} is not reachable on {host}:{port}; tests that need it would fail.")
        print(f"       start it with: {HOW_TO_START[name]}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
