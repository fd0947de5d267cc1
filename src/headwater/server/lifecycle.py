"""How ``headwater serve`` stops: within a bound, with nothing accepted left behind.

On SIGTERM or SIGINT the server stops accepting connections at once and answers the
requests it is in the middle of (a 2xx still means committed). Delivery keeps going
meanwhile; once the HTTP side is done, the workers get until ``grace - HANDBACK_SECONDS``
after the signal to finish their rounds, then hand back what is still unsent, and every
lease this process holds is released so another process or the next start picks the rows
up at once. The process then exits 0. A second signal hurries it: hand back now. If
anything is still stuck when the bound runs out, a watchdog ends the process with exit
code 1 (leases then expire as after a crash; nothing committed is lost).

uvicorn re-raises a caught signal after shutting down, which would end the process with
the signal (143 for SIGTERM) however cleanly it stopped; ``GracefulServer`` does not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Generator

import uvicorn

log = logging.getLogger("headwater.server")

DEFAULT_SHUTDOWN_SECONDS = 25.0  # under Kubernetes' default 30 s grace period
HANDBACK_SECONDS = 3.0  # kept at the end of the bound for handing back and closing
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_OVERRUN = 1


class Shutdown:
    """When this process was asked to stop, and by when its work must be handed back."""

    def __init__(
        self,
        grace_seconds: float = DEFAULT_SHUTDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace_seconds = grace_seconds
        self.clock = clock
        self.began_at: float | None = None
        self.hurried = False

    @property
    def stopping(self) -> bool:
        return self.began_at is not None

    def begin(self) -> None:
        if self.began_at is None:
            self.began_at = self.clock()

    def hurry(self) -> None:
        """A second signal: hand back now rather than at the deadline."""
        self.begin()
        self.hurried = True

    @property
    def http_drain_seconds(self) -> float:
        """How long requests in progress may take to be answered after the signal."""
        return self.grace_seconds / 2

    def work_deadline(self) -> float:
        """The ``clock()`` time by which running work must stop and hand back."""
        self.begin()
        assert self.began_at is not None
        if self.hurried:
            return self.clock()
        reserve = min(HANDBACK_SECONDS, self.grace_seconds / 4)
        return self.began_at + self.grace_seconds - reserve


class GracefulServer(uvicorn.Server):
    """uvicorn's server with Headwater's stop: a bound, a hurry on the second signal, a
    watchdog, and exit code 0 after a clean stop."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.shutdown_plan = shutdown
        self._watchdog: threading.Timer | None = None

    def handle_exit(self, sig: int, frame) -> None:
        if self.should_exit:
            log.warning("stopping now: handing back unsent work")
            self.shutdown_plan.hurry()
            return
        self.shutdown_plan.begin()
        self.should_exit = True
        self._watchdog = threading.Timer(self.shutdown_plan.grace_seconds, self._overrun)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _overrun(self) -> None:
        print(
            f"headwater serve: not stopped within {self.shutdown_plan.grace_seconds:g} s; "
            "exiting (leases left will expire and be taken over)",
            file=sys.stderr,
            flush=True,
        )
        os._exit(EXIT_OVERRUN)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
            if self._watchdog is not None:
                self._watchdog.cancel()


def run_server(app, host: str, port: int, shutdown: Shutdown) -> bool:
    """Serve ``app`` until a signal stops it; False if it never started (a port in use,
    an app that failed to start)."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False,
        loop="uvloop", http="httptools", timeout_graceful_shutdown=shutdown.http_drain_seconds,
    )  # fmt: skip
    server = GracefulServer(config, shutdown)
    server.run()
    return server.started
