"""What one delivery claim costs as the outbox's backlog grows (a Braze outage leaves one).

    python -m bench.outbox_claim [--backlogs 1000,10000,100000]

A claim runs on serve's writer thread holding SQLite's write lock, so its time is time
every intake commit waits. Rows of 75 events, as the gateway writes them; each claim
leases 1,000 objects (the delivery round's size). Printed per backlog: the claim as it
is (oldest ready first, in the claim index's order) beside the same claim ordered by row
id (what it was: every ready row read and sorted first), measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from headwater.state import outbox as outbox_module
from headwater.state.db import open_state
from headwater.state.outbox import Outbox, OutboxEntry

EVENT = b'{"external_id":"u-1","name":"purchase_viewed","time":"2026-01-01T00:00:00Z"}'
CLAIMS = 20


def fill(path: Path, rows: int) -> None:
    box = Outbox(open_state(f"sqlite:///{path}"))

    async def main() -> None:
        for start in range(0, rows, 200):
            await asyncio.gather(
                *(
                    box.enqueue([OutboxEntry("gateway", "braze", "events", EVENT)] * 75)
                    for _ in range(min(200, rows - start))
                )
            )

    asyncio.run(main())
    box.close()


def claim_ms(path: Path, order: str) -> float:
    """Median milliseconds of ``CLAIMS`` claims, with the claim SQL ordered by ``order``."""
    saved = outbox_module._ORDER
    outbox_module._ORDER = order
    try:
        box = Outbox(open_state(f"sqlite:///{path}"))
    finally:
        outbox_module._ORDER = saved
    times = []
    for _ in range(CLAIMS):
        started = time.perf_counter()
        assert box.claim("braze", 1000)
        times.append((time.perf_counter() - started) * 1000)
    box.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlogs", default="1000,10000,100000")
    args = parser.parse_args()
    print("$ python -m bench.outbox_claim --backlogs " + args.backlogs)
    print(f"{'backlog rows':>12}  {'claim now':>10}  {'ordered by id':>13}")
    for rows in (int(n) for n in args.backlogs.split(",")):
        with tempfile.TemporaryDirectory() as work:
            now, by_id = Path(work) / "now.db", Path(work) / "by_id.db"
            fill(now, rows)
            fill(by_id, rows)
            print(f"{rows:>12,}  {claim_ms(now, outbox_module._ORDER):>8.1f} ms  "
                  f"{claim_ms(by_id, 'id'):>10.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
