"""The Currents receiver's background work in ``serve``: one landing worker (committed
batches into Parquet files) and a forward worker per receiver that relays its events.
Started with the app like the delivery workers and stopped within the same bound."""

from __future__ import annotations

from headwater.exports.currents_forward import ForwardWorker
from headwater.exports.currents_landing import LandingWorker
from headwater.exports.currents_routes import forward_destination


def start_currents_workers(hub) -> list:
    """Nothing when no receiver is configured; else the workers, started."""
    receivers = hub.settings.currents
    if not receivers:
        return []
    workers: list = [LandingWorker(hub, hub.settings.landing_dir)]
    for name, receiver in receivers.items():
        if receiver.forward is not None:
            workers.append(ForwardWorker(hub, name, receiver.forward, forward_destination(name)))
    for worker in workers:
        worker.start()
    return workers
