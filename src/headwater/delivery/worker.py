"""The delivery worker: drains the outbox into full ``/users/track`` batches.

One worker per destination per ``serve`` process. A round leases up to ``claim_size``
rows, resolves email-only identities, drops unchanged attributes, and hands the objects to
``BrazeClient.track`` (75 per request, under the shared rate-limit governor). As each
request completes, its objects are settled in one transaction:

* accepted -> deleted from the outbox, their attribute values remembered for dedupe;
* rejected by Braze for that object (a bad value) -> parked in the dead-letter queue;
* not delivered (429/5xx after the client's retries, timeouts, 401/403) -> released with
  backoff; after ``max_attempts`` rounds they are parked too, with the last error.

Rows stay leased (and the lease is extended) while their request is in flight, so a
crash leaves them to be picked up again after the lease: delivery is at-least-once, and a
duplicate can only come from the batch that was in flight when the process died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter

import orjson

from headwater.braze.batching import ItemResult, TrackItem
from headwater.braze.client import BrazeClient
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.limits import MAX_OBJECTS_PER_REQUEST
from headwater.delivery.dedupe import AttributeDeduper, user_key
from headwater.errors import HeadwaterError
from headwater.server.hub import GATEWAY_STREAM
from headwater.server.settings import DeliverySettings, DestinationSettings
from headwater.state.dead_letters import park_rows
from headwater.state.outbox import OPT_DEDUPE_ATTRIBUTES, OPT_RESOLVE_EMAIL, OutboxRow
from headwater.streams.identity import IdentityResolver, attach, needs_resolution

log = logging.getLogger("headwater.delivery")

CLIENT_ATTEMPTS = 3  # retries inside one round; the outbox's backoff takes over after
ROUNDS_IN_FLIGHT = 2
SETTLE_OBJECTS = 300  # delivered objects acknowledged per outbox commit
GAVE_UP_PREFIX = "gave up after"


def _transient(error: str | None) -> bool:
    return bool(error) and error.startswith(GAVE_UP_PREFIX)


class DeliveryWorker:
    def __init__(self, hub, destination: DestinationSettings, client: BrazeClient | None = None):
        self.hub = hub
        self.destination = destination
        self.settings: DeliverySettings = hub.settings.delivery
        self.client = client or BrazeClient(
            destination.url,
            destination.api_key,
            batch_policy=destination.batch_policy,
            max_concurrency=destination.max_concurrency,
            timeout=destination.timeout_seconds,
            max_attempts=CLIENT_ATTEMPTS,
        )
        self.dedupe = AttributeDeduper(hub.engine, destination.name)
        self.identity = IdentityResolver(self.client, self.settings.identity_cache_size)
        self._task: asyncio.Task | None = None
        self._rounds: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(ROUNDS_IN_FLIGHT)
        self._stopping = False
        self.delivered = 0
        self.parked = 0

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._wake = self.hub.outbox.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rounds:
            await asyncio.wait(self._rounds, timeout=10)
        await self.client.aclose()

    async def _run(self) -> None:
        outbox = self.hub.outbox
        while not self._stopping:
            await self._slots.acquire()
            try:
                rows = await asyncio.to_thread(
                    outbox.claim, self.destination.name, self.settings.claim_size
                )
            except Exception as exc:
                self._slots.release()
                log.error("claiming from the outbox failed: %s", type(exc).__name__)
                await asyncio.sleep(self.settings.poll_seconds)
                continue
            if not rows:
                self._slots.release()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
                if self.settings.linger_seconds:
                    await asyncio.sleep(self.settings.linger_seconds)
                continue
            task = asyncio.get_running_loop().create_task(self._round(rows))
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)
            if len(rows) < MAX_OBJECTS_PER_REQUEST and self.settings.linger_seconds:
                await asyncio.sleep(self.settings.linger_seconds)

    async def _round(self, rows: list[OutboxRow]) -> None:
        try:
            await self.deliver(rows)
        except Exception as exc:  # the rows go back; nothing is lost
            log.error("delivery round failed: %s: %s", type(exc).__name__, exc)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self.hub.outbox.release,
                    {r.id: (f"{type(exc).__name__}", self._backoff(r.attempts)) for r in rows},
                )
        finally:
            self._slots.release()

    def _backoff(self, attempts: int) -> float:
        ceiling = min(
            self.settings.retry_max_seconds,
            self.settings.retry_base_seconds * 2 ** min(attempts, 30),
        )
        return ceiling / 2 + random.random() * ceiling / 2

    # ---- one round ---------------------------------------------------------------------

    async def deliver(self, rows: list[OutboxRow]) -> None:
        """Send ``rows`` and settle every one of them (delivered, parked or released)."""
        by_id = {row.id: row for row in rows}
        unsettled = set(by_id)
        counters: Counter = Counter()
        objects: dict[int, dict] = {}
        failures: dict[int, tuple[str, float]] = {}
        poison: list[tuple[OutboxRow, str]] = []
        skipped: list[int] = []

        for row in rows:
            objects[row.id] = orjson.loads(row.payload)

        await self._resolve_identities(rows, objects, failures)
        self._drop_unchanged(rows, objects, counters, skipped, failures)

        items = [
            TrackItem(row.kind, objects[row.id], row.id)
            for row in rows
            if row.id not in failures and row.id not in skipped
        ]
        if skipped or counters:
            await asyncio.to_thread(self._settle, skipped, [], [], counters)
            unsettled.difference_update(skipped)
            counters = Counter()

        settled_later: dict = {"delivered": [], "parked": [], "counters": Counter()}

        async def flush() -> None:
            delivered, parked = settled_later["delivered"], settled_later["parked"]
            local = settled_later["counters"]
            if not delivered and not parked:
                return
            settled_later.update(delivered=[], parked=[], counters=Counter())
            sent = [objects[i] for i in delivered if by_id[i].kind == "attributes"
                    and by_id[i].options & OPT_DEDUPE_ATTRIBUTES]  # fmt: skip
            await asyncio.to_thread(self._settle, delivered, parked, sent, local)
            unsettled.difference_update(delivered)
            unsettled.difference_update(row.id for row, _ in parked)

        async def on_results(results: list[ItemResult]) -> None:
            for result in results:
                row = by_id[result.ref]
                if result.ok:
                    settled_later["delivered"].append(row.id)
                    settled_later["counters"][(row.stream, "delivered")] += 1
                elif _transient(result.error):
                    failures[row.id] = (result.error or "", self._backoff(row.attempts))
                else:
                    settled_later["parked"].append((row, result.error or "rejected by Braze"))
                    settled_later["counters"][(row.stream, "dead_lettered")] += 1
            # Shown in the inspector: the first object of each request, as sent.
            first = next((r for r in results if r.ok), None)
            if first is not None:
                row = by_id[first.ref]
                gateway = row.stream.startswith(GATEWAY_STREAM + ":")
                self.hub.inspector.record(
                    GATEWAY_STREAM if gateway else row.stream,
                    "out",
                    {row.kind: [objects[row.id]]},
                    destination=self.destination.name,
                )
            # Settled in groups: one commit per SETTLE_OBJECTS objects, not per request.
            if len(settled_later["delivered"]) + len(settled_later["parked"]) >= SETTLE_OBJECTS:
                await flush()

        renew = asyncio.get_running_loop().create_task(self._keep_leases(unsettled))
        try:
            if items:
                await self.client.track(items, on_results=on_results)
        except BrazeRejectedError as exc:
            log.error("destination %s refused the key: %s", self.destination.name, exc)
            for row_id in unsettled:
                failures.setdefault(row_id, (str(exc), self._backoff(by_id[row_id].attempts)))
        except HeadwaterError as exc:
            for row_id in unsettled:
                failures.setdefault(row_id, (str(exc), self._backoff(by_id[row_id].attempts)))
        finally:
            renew.cancel()
            await flush()
        for row_id in list(unsettled):
            if row_id not in failures:
                failures[row_id] = ("no result from Braze", self._backoff(by_id[row_id].attempts))
        pending = {i: f for i, f in failures.items() if i in unsettled}
        for row_id, (reason, _delay) in list(pending.items()):
            row = by_id[row_id]
            if row.attempts + 1 >= self.settings.max_attempts:
                poison.append((row, f"failed {row.attempts + 1} times; last error: {reason}"))
                del pending[row_id]
        if poison:
            local = Counter((row.stream, "dead_lettered") for row, _ in poison)
            await asyncio.to_thread(self._settle, [], poison, [], local)
        if pending:
            await asyncio.to_thread(self.hub.outbox.release, pending)

    async def _resolve_identities(self, rows, objects, failures) -> None:
        wanted: dict[int, str] = {}
        for row in rows:
            if row.options & OPT_RESOLVE_EMAIL:
                email = needs_resolution(objects[row.id])
                if email:
                    wanted[row.id] = email
        if not wanted:
            return
        labels = {}
        for row_id, _email in wanted.items():
            stream = self.hub.settings.streams.get(next(r.stream for r in rows if r.id == row_id))
            labels[row_id] = stream.alias_label if stream else "email"

        async def one(row_id: int, email: str) -> None:
            row_kind = next(r.kind for r in rows if r.id == row_id)
            try:
                identity = await self.identity.resolve(email, labels[row_id])
            except HeadwaterError as exc:
                attempts = next(r.attempts for r in rows if r.id == row_id)
                failures[row_id] = (f"identity lookup failed: {exc}", self._backoff(attempts))
                return
            objects[row_id] = attach(objects[row_id], row_kind, identity)

        await asyncio.gather(*(one(i, e) for i, e in wanted.items()))

    def _drop_unchanged(self, rows, objects, counters, skipped, failures) -> None:
        candidates = [
            row for row in rows
            if row.kind == "attributes" and row.options & OPT_DEDUPE_ATTRIBUTES
            and row.id not in failures
        ]  # fmt: skip
        if not candidates:
            return
        self.dedupe.load(u for u in (user_key(objects[r.id]) for r in candidates) if u)
        for row in candidates:
            kept, saved = self.dedupe.filter(objects[row.id])
            if saved:
                counters[(row.stream, "data_points_saved")] += saved
            if kept is None:
                skipped.append(row.id)
                counters[(row.stream, "objects_skipped_unchanged")] += 1
            else:
                objects[row.id] = kept

    def _settle(self, delivered, parked, sent_attributes, counters) -> None:
        """One transaction: delivered rows leave, poison rows move to the dead-letter
        queue, accepted attribute values are remembered, counters move."""
        with self.hub.engine.begin() as conn:
            self.hub.outbox.ack([*delivered, *(row.id for row, _ in parked)], conn)
            park_rows(conn, parked)
            self.dedupe.record(conn, sent_attributes)
            self.hub.counters.add(counters, conn)
        self.delivered += len(delivered)
        self.parked += len(parked)

    async def _keep_leases(self, unsettled: set[int]) -> None:
        interval = max(0.2, self.hub.outbox.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.hub.outbox.extend_lease, list(unsettled))


async def start_workers(hub) -> list[DeliveryWorker]:
    workers = []
    for destination in hub.settings.destinations.values():
        worker = DeliveryWorker(hub, destination)
        worker.start()
        workers.append(worker)
    return workers


__all__ = ["DeliveryWorker", "start_workers"]
