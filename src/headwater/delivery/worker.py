"""The delivery worker: drains the outbox into full ``/users/track`` batches.

One worker per destination per ``serve`` process. A round leases up to ``claim_size``
rows, resolves email-only identities, drops unchanged attributes, and hands the objects to
``BrazeClient.track`` (75 per request, under the shared rate-limit governor). Each object
gets its own outcome, committed in groups as requests complete:

* accepted -> gone from the outbox, its attribute values remembered for dedupe;
* rejected by Braze for that object (a bad value) -> parked in the dead-letter queue;
* not delivered (429/5xx after the client's retries -- the destination's ``max_attempts``
  tries, ``retry_base_seconds`` apart and doubling -- timeouts, 401/403) -> given back
  with the outbox's backoff; after ``max_attempts`` rounds it is parked too, with the last error;
* never sendable (a row of an unknown kind, a stored line that is not a JSON object) ->
  parked at once; rows for a destination no worker serves are parked by the sweeper
  (``headwater.delivery.unrouted``). Nothing stays in the outbox for ever.

A row (up to 75 objects) leaves the outbox when all its objects are settled, or comes back
holding only the objects still to send. Rows stay leased (and the lease is extended) while
their objects are in flight, so a crash leaves them to be picked up again after the lease:
delivery is at-least-once, and a duplicate can only come from rows that were in flight when
the process died.

Stopping is not a crash: ``stop`` lets the rounds in flight finish until a deadline, then
cancels the rest, which settle what Braze already answered and hand their other objects
back unsent (no attempt counted, ready at once), so nothing waits for a lease to expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter

import orjson

from headwater.braze.batching import ItemResult, TrackItem
from headwater.braze.client import BrazeClient
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.limits import TRACK_ARRAYS
from headwater.braze.retry import Backoff, backoff_seconds
from headwater.delivery.dedupe import AttributeDeduper, user_key
from headwater.delivery.identity import IdentityResolver, attach, needs_resolution
from headwater.delivery.unrouted import UnroutedSweeper
from headwater.errors import HeadwaterError
from headwater.runtime.hub import GATEWAY_STREAM
from headwater.runtime.settings import DeliverySettings, DestinationSettings
from headwater.state.budgets import budget_options
from headwater.state.dead_letters import park_objects
from headwater.state.outbox import OPT_DEDUPE_ATTRIBUTES, OPT_RESOLVE_EMAIL, OutboxRow, Retry
from headwater.state.triggers import enqueue_events
from headwater.triggers.events import event_entry, matches

log = logging.getLogger("headwater.delivery")

ROUNDS_IN_FLIGHT = 2
SETTLE_OBJECTS = 300  # delivered objects acknowledged per outbox commit
STOP_WAIT_SECONDS = 10.0  # how long ``stop`` lets rounds finish when given no deadline
HANDED_BACK = "handed back unsent at shutdown"


class DeliveryWorker:
    def __init__(self, hub, destination: DestinationSettings, client: BrazeClient | None = None):
        self.hub = hub
        self.destination = destination
        self.settings: DeliverySettings = hub.settings.delivery
        self.backoff = Backoff(
            base_seconds=self.settings.retry_base_seconds,
            cap_seconds=self.settings.retry_max_seconds,
        )
        self.rng = random.random  # the jitter's draw; tests pin it
        self.client = client or BrazeClient(
            destination.url,
            destination.api_key,
            batch_policy=destination.batch_policy,
            max_concurrency=destination.max_concurrency,
            timeout=destination.timeout_seconds,
            # Tries inside one round are the destination's, as for a sync; across rounds
            # the outbox's own backoff (``gateway.delivery``) takes over.
            max_attempts=destination.max_attempts,
            backoff=Backoff(base_seconds=destination.retry_base_seconds),
            **budget_options(
                destination.url,
                destination.api_key.get_secret_value(),
                destination.rate_limits,
                hub.engine,
            ),
        )
        self.dedupe = AttributeDeduper(hub.engine, destination.name)
        self.identity = IdentityResolver(self.client, self.settings.identity_cache_size)
        self._task: asyncio.Task | None = None
        self._rounds: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(ROUNDS_IN_FLIGHT)
        self._attribute_rounds: list[tuple[set[str], asyncio.Event]] = []
        self.sweeper: UnroutedSweeper | None = None  # started and stopped with this worker
        self._stopping = False
        self.delivered = 0
        self.parked = 0

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._wake = self.hub.outbox.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())
        if self.sweeper is not None:
            self.sweeper.start()

    async def stop(self, deadline: float | None = None) -> None:
        """Claim nothing more; let the rounds in flight finish until ``deadline`` (a
        ``time.monotonic()`` value; default: ``STOP_WAIT_SECONDS`` from now), then cancel
        the rest, which hand their unsent objects back. Should a hand-back fail to commit,
        the caller still frees what is left with ``Outbox.release_owned`` once every worker
        sharing the outbox has stopped."""
        self._stopping = True
        if deadline is None:
            deadline = time.monotonic() + STOP_WAIT_SECONDS
        if self.sweeper is not None:
            await self.sweeper.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._rounds:
            _done, late = await asyncio.wait(
                set(self._rounds), timeout=max(0.0, deadline - time.monotonic())
            )
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)  # each settles what it knows, then hands back
        await self.client.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            try:
                rows = await self._claim()
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
            # A claim that did not fill up means the outbox is drained: let objects gather
            # for a moment before the next one, rather than a claim (and a round, and a
            # settle) for every intake commit when the gateway is busy but not saturated.
            if sum(r.objects for r in rows) < self.settings.claim_size:
                await asyncio.sleep(self.settings.linger_seconds)

    async def _claim(self) -> list[OutboxRow]:
        """Lease the next rows. Stopped meanwhile, the claim still commits on the writer
        thread: its rows go straight back rather than wait for their lease to expire."""
        outbox = self.hub.outbox
        claim = asyncio.ensure_future(
            outbox.write(outbox.claim, self.destination.name, self.settings.claim_size)
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                rows = await claim
                back = {row.id: Retry(HANDED_BACK, 0.0, None, False) for row in rows}
                await outbox.write(outbox.release, back)
            raise

    async def _round(self, rows: list[OutboxRow]) -> None:
        """Send the objects of ``rows`` and settle every one (delivered, parked or given
        back); a row leaves the outbox once all its objects are settled."""
        renew = None
        try:
            batch = _Round(rows)
            # Leases held for the whole round, waiting for earlier rounds included: an
            # expired lease lets the rows be claimed (and sent) a second time.
            renew = asyncio.get_running_loop().create_task(self._keep_leases(batch))
            try:
                async with self._after_earlier_rounds(batch.deduped_users()):
                    await self._deliver(batch)
            except asyncio.CancelledError:  # stopping past the deadline
                batch.hand_back()
                with contextlib.suppress(Exception):
                    await self._settle(batch)
                raise
            except Exception as exc:  # before sending, or while settling
                log.error("delivery round failed: %s: %s", type(exc).__name__, exc)
                # What is known stays known: rows already settled are left alone, objects
                # Braze answered keep their outcome, the rest go back (each row's attempt
                # counted once, and parked at max_attempts like any other failure).
                batch.fail_open(type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self._settle(batch)
        finally:
            if renew is not None:
                renew.cancel()
            self._slots.release()

    def _backoff(self, attempts: int) -> float:
        """When a row comes back after its ``attempts`` earlier failed rounds: the client's
        own schedule (``braze.retry``), stretched to the outbox's base and cap."""
        return backoff_seconds(attempts + 1, self.backoff, rng=self.rng)

    # ---- one round ---------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _after_earlier_rounds(self, users: set[str]):
        """Attribute values of the same users go out round after round, in claim order: a
        round waits for the earlier rounds still in flight that carry any of its users, so
        it compares with what they delivered and cannot overtake them. (Registered before
        the first await, so in the order the rounds were claimed.)"""
        if not users:
            yield
            return
        earlier = [done for others, done in self._attribute_rounds if others & users]
        mine = (users, asyncio.Event())
        self._attribute_rounds.append(mine)
        try:
            for done in earlier:
                await done.wait()
            yield
        finally:
            self._attribute_rounds.remove(mine)
            mine[1].set()

    async def _deliver(self, batch: _Round) -> None:
        await self._resolve_identities(batch)
        self._drop_unchanged(batch)
        items = [
            TrackItem(state.row.kind, state.sending[index], (state, index))
            for state in batch.states
            for index in sorted(state.sending)
        ]
        if batch.finished_rows():
            await self._settle(batch)

        async def on_results(results: list[ItemResult]) -> None:
            for result in results:
                state, index = result.ref
                if result.ok:
                    state.delivered(index)
                elif result.retriable:
                    state.failed(index, result.error or "not delivered")
                else:
                    state.park(index, result.error or "rejected by Braze")
            self._show_sent(results)
            # Settled in groups, not once per request: a commit per SETTLE_OBJECTS objects.
            if batch.outcomes >= SETTLE_OBJECTS:
                await self._settle(batch)

        try:
            if items:
                await self.client.track(items, on_results=on_results)
        except BrazeRejectedError as exc:
            log.error("destination %s refused the key: %s", self.destination.name, exc)
            batch.fail_open(str(exc))
        except HeadwaterError as exc:
            batch.fail_open(str(exc))
        except Exception as exc:  # unexpected: settle what Braze answered, retry the rest
            log.error("delivery round failed: %s: %s", type(exc).__name__, exc)
            batch.fail_open(type(exc).__name__)
        batch.fail_open("no result from Braze")
        await self._settle(batch)

    def _show_sent(self, results: list[ItemResult]) -> None:
        """The inspector shows each request whole, every object as it was sent, per stream
        (one request may carry several streams' objects), with what Braze made of them."""
        shown: dict[str, tuple[dict[str, list], Counter, list[dict]]] = {}
        for result in results:
            state, index = result.ref
            row = state.row
            name = GATEWAY_STREAM if row.stream.startswith(GATEWAY_STREAM + ":") else row.stream
            arrays, outcomes, errors = shown.setdefault(name, ({}, Counter(), []))
            sent = state.sending.get(index)  # a retriable failure has left `sending`
            objects = arrays.setdefault(row.kind, [])
            objects.append(orjson.Fragment(state.lines[index]) if sent is None else sent)
            outcome = "accepted" if result.ok else "retrying" if result.retriable else "rejected"
            outcomes[outcome] += 1
            if not result.ok:
                errors.append({"array": row.kind, "index": len(objects) - 1,
                               "error": result.error})  # fmt: skip
        for name, (arrays, outcomes, errors) in shown.items():
            self.hub.inspector.record(
                name, "out", raw=orjson.dumps(arrays), destination=self.destination.name,
                objects=sum(outcomes.values()), **outcomes, **({"errors": errors} if errors else {}),
            )  # fmt: skip

    async def _resolve_identities(self, batch: _Round) -> None:
        wanted: list[tuple[_RowState, int, str]] = []
        for state in batch.states:
            if state.row.options & OPT_RESOLVE_EMAIL:
                for index, obj in state.sending.items():
                    email = needs_resolution(obj)
                    if email:
                        wanted.append((state, index, email))
        if not wanted:
            return

        async def one(state: _RowState, index: int, email: str) -> None:
            stream = self.hub.settings.streams.get(state.row.stream)
            label = stream.alias_label if stream else "email"
            try:
                identity = await self.identity.resolve(email, label)
            except HeadwaterError as exc:
                state.failed(index, f"identity lookup failed: {exc}")
                return
            state.sending[index] = attach(state.sending[index], state.row.kind, identity)

        await asyncio.gather(*(one(*w) for w in wanted))

    def _drop_unchanged(self, batch: _Round) -> None:
        entries = [
            (state, index, obj)
            for state in batch.states
            if state.row.kind == "attributes" and state.row.options & OPT_DEDUPE_ATTRIBUTES
            for index, obj in sorted(state.sending.items())
        ]
        if not entries:
            return
        self.dedupe.load(u for _, _, obj in entries if (u := user_key(obj)))
        results, batch.volatile = self.dedupe.filter_batch(
            [obj for _, _, obj in entries], [state.row.id for state, _, _ in entries]
        )
        for (state, index, _obj), (kept, saved) in zip(entries, results, strict=True):
            if saved:
                batch.counters[(state.row.stream, "data_points_saved")] += saved
            if kept is None:
                batch.counters[(state.row.stream, "objects_skipped_unchanged")] += 1
                state.skipped(index)
            else:
                state.sending[index] = kept

    async def _settle(self, batch: _Round) -> None:
        """Commit what is known: finished rows leave (or come back trimmed for a retry),
        rejected objects are parked, sent attribute values remembered, counters moved.

        A settle runs to its end even when the round is cancelled meanwhile: its commit
        would land anyway, and settling the same rows again would park them twice."""
        settling = asyncio.ensure_future(self._settle_now(batch))
        try:
            await asyncio.shield(settling)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await settling
            raise

    async def _settle_now(self, batch: _Round) -> None:
        finished = batch.finished_rows()
        if not finished and not batch.counters:
            return
        done: list[int] = []
        retries: dict[int, Retry] = {}
        letters: list[tuple[OutboxRow, dict, str]] = []
        sent: list[tuple[dict, int]] = []  # (object, its outbox row) for dedupe
        in_doubt: list[dict] = []  # failed objects Braze may have applied all the same
        counters = Counter(batch.counters)  # cleared once committed: a failed commit is redone
        for state in finished:
            row = state.row
            letters.extend((row, state.lines[i], reason) for i, reason in state.rejected)
            if state.sent:
                counters[(row.stream, "delivered")] += len(state.sent)
            if row.kind == "attributes" and row.options & OPT_DEDUPE_ATTRIBUTES:
                sent.extend((state.sending[i], row.id) for i in state.sent)
                if not batch.handed_back:  # handed back: never sent
                    failed = (_readable(state.lines[i], decode=True) for i in state.failures)
                    in_doubt.extend(obj for obj in failed if isinstance(obj, dict))
            if not state.failures:
                done.append(row.id)
            elif batch.handed_back:  # not a failed attempt: back at once, attempts unchanged
                remaining = [state.lines[i] for i in sorted(state.failures)]
                whole = len(remaining) == len(state.lines)
                retries[row.id] = Retry(HANDED_BACK, 0.0, None if whole else remaining, False)
            elif row.attempts + 1 >= self.settings.max_attempts:
                done.append(row.id)
                letters.extend(
                    (row, state.lines[i], f"failed {row.attempts + 1} times; last error: {why}")
                    for i, why in sorted(state.failures.items())
                )
            else:
                remaining = [state.lines[i] for i in sorted(state.failures)]
                whole = len(remaining) == len(state.lines)
                retries[row.id] = Retry(
                    next(iter(state.failures.values())),
                    self._backoff(row.attempts),
                    None if whole else remaining,
                )
        for row, _obj, _reason in letters:
            counters[(row.stream, "dead_lettered")] += 1
        fired = self._event_triggers(finished)
        await self.hub.outbox.write(
            self._commit, done, retries, letters, (sent, in_doubt), batch.volatile, counters, fired
        )
        batch.counters.clear()
        batch.settled(finished)
        self.delivered += sum(len(state.sent) for state in finished)
        self.parked += len(letters)

    def _commit(self, done, retries, letters, outcomes, volatile, counters, fired=()) -> None:
        sent, in_doubt = outcomes
        with self.hub.engine.begin() as conn:
            self.hub.outbox.ack(done, conn)
            self.hub.outbox.release(retries, conn)
            park_objects(conn, letters)
            self.dedupe.record(conn, sent, volatile, in_doubt)
            self.hub.counters.add(counters, conn)
            enqueue_events(conn, fired)  # in the ack's transaction: never lost, never twice

    def _event_triggers(self, finished: list[_RowState]) -> list[tuple[str, str, bytes]]:
        """Accepted events matching an event trigger: (trigger, entry key, event JSON) for
        the trigger inbox (``headwater.triggers.pump`` sends them). Nothing to do, and no
        event decoded, when no trigger watches the row's stream."""
        watching = self.hub.settings.triggers
        if not watching:
            return []
        fired = []
        for state in finished:
            row = state.row
            if row.kind != "events" or not state.sent:
                continue
            stream = row.stream.partition(":")[0]  # gateway rows are "gateway:<key name>"
            names = [n for n, t in watching.items() if t.when.stream == stream]
            if not names:
                continue
            for index in state.sent:
                try:
                    event = orjson.loads(state.lines[index])
                except orjson.JSONDecodeError:
                    continue
                for name in names:
                    if matches(watching[name], stream, event):
                        fired.append((name, event_entry(event, row.id, index)[0],
                                      state.lines[index]))  # fmt: skip
        return fired

    async def _keep_leases(self, batch: _Round) -> None:
        interval = max(0.2, self.hub.outbox.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.hub.outbox.write(self.hub.outbox.extend_lease, batch.open_row_ids())


class _RowState:
    """One leased row during a round: its objects as stored, as they will be sent, and
    the outcome of each. Objects nothing needs to look into (events and purchases without
    identity resolution) are sent as the JSON they were stored as, never decoded."""

    __slots__ = ("row", "lines", "sending", "open", "sent", "rejected", "failures")

    def __init__(self, row: OutboxRow):
        self.row = row
        self.lines = row.lines()
        self.sent: list[int] = []
        self.rejected: list[tuple[int, str]] = []  # -> dead-letter queue
        self.failures: dict[int, str] = {}  # -> another try later
        self.sending: dict[int, dict | orjson.Fragment] = {}
        if row.kind not in TRACK_ARRAYS:
            reason = f"cannot be sent: {row.kind!r} is not a /users/track array"
            self.rejected = [(index, reason) for index in range(len(self.lines))]
        else:
            inspect = row.options & OPT_RESOLVE_EMAIL or (
                row.kind == "attributes" and row.options & OPT_DEDUPE_ATTRIBUTES
            )
            for index, line in enumerate(self.lines):
                obj = _readable(line, decode=bool(inspect))
                if obj is None:
                    self.rejected.append((index, "cannot be sent: not a stored JSON object"))
                else:
                    self.sending[index] = obj
        self.open = set(self.sending)

    def delivered(self, index: int) -> None:
        self.open.discard(index)
        self.sent.append(index)

    def park(self, index: int, reason: str) -> None:
        self.open.discard(index)
        self.rejected.append((index, reason))

    def failed(self, index: int, error: str) -> None:
        self.open.discard(index)
        self.sending.pop(index, None)
        self.failures.setdefault(index, error)

    def skipped(self, index: int) -> None:
        """Nothing to send (every attribute unchanged): settled as it is."""
        self.open.discard(index)
        self.sending.pop(index, None)


def _readable(line: bytes, *, decode: bool) -> dict | orjson.Fragment | None:
    """One stored object, decoded when the round needs to look into it; None for a line
    that could never be sent (a damaged row must not sink the rows claimed with it).
    Undecoded lines only get a shape check: decoding every event is what Fragment saves."""
    if not decode:
        return orjson.Fragment(line) if line[:1] == b"{" and line[-1:] == b"}" else None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


class _Round:
    """The rows of one claim and what has been settled of them so far."""

    def __init__(self, rows: list[OutboxRow]):
        self.states = [_RowState(row) for row in rows]
        self.counters: Counter = Counter()
        self.volatile: set[tuple[str, str]] = set()  # attributes whose value dedupe forgets
        self._settled: set[int] = set()
        self.handed_back = False

    @property
    def outcomes(self) -> int:
        """Objects with an outcome in rows not yet settled."""
        return sum(len(s.lines) - len(s.open) for s in self.states if s.row.id not in self._settled)

    def finished_rows(self) -> list[_RowState]:
        return [s for s in self.states if not s.open and s.row.id not in self._settled]

    def settled(self, states: list[_RowState]) -> None:
        self._settled.update(s.row.id for s in states)

    def fail_open(self, error: str) -> None:
        for state in self.states:
            for index in list(state.open):
                state.failed(index, error)

    def hand_back(self) -> None:
        """The round stops unfinished: objects without an answer go back unsent."""
        self.fail_open(HANDED_BACK)
        self.handed_back = True

    def deduped_users(self) -> set[str]:
        """The users of this round's attribute objects that dedupe looks at."""
        return {
            user
            for state in self.states
            if state.row.kind == "attributes" and state.row.options & OPT_DEDUPE_ATTRIBUTES
            for obj in state.sending.values()
            if (user := user_key(obj))
        }

    def open_row_ids(self) -> list[int]:
        return [s.row.id for s in self.states if s.row.id not in self._settled]


async def start_workers(hub) -> list[DeliveryWorker]:
    """One worker per configured destination; the first also runs the sweeper that parks
    rows for any other destination (nothing would ever deliver them)."""
    workers = []
    for destination in hub.settings.destinations.values():
        worker = DeliveryWorker(hub, destination)
        if not workers:
            worker.sweeper = UnroutedSweeper(hub)
        worker.start()
        workers.append(worker)
    if any(t.when.stream is not None for t in hub.settings.triggers.values()):
        from headwater.triggers.pump import TriggerPump

        pump = TriggerPump(hub.engine, hub.settings.triggers, hub.braze_client)
        pump.start()
        workers.append(pump)  # stopped with the workers
    return workers


__all__ = ["DeliveryWorker", "start_workers"]
