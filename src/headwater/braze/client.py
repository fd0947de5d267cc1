"""The async Braze REST client: batch, pace, send, retry, and report every object's fate.

Used by the sync engine and the gateway's delivery worker. The one thing it promises: every
``TrackItem`` handed to :meth:`BrazeClient.track` comes back exactly once as an
``ItemResult`` (through ``on_results``) - accepted, or failed with a reason - unless the run
stops on a :class:`BrazeRejectedError` (bad key, missing permission), which no later object
could get past either. Failed items are reported, never dropped, so the caller can keep
their rows for the next run.

How a request's outcome is handled:

* 2xx: objects named in ``errors`` failed, all others accepted.
* 400/413 naming objects: Braze processed nothing, so the named objects fail and the others
  are sent again without them. 400 "Max Input Length Exceeded" / 413 without names: the
  batch is halved and each half sent on its own (a contract with a smaller cap still works);
  so is a 400 for malformed JSON, until the one object at fault fails on its own.
  Any other 4xx: every object of the request fails with Braze's message.
* 401/403: the whole run stops with BrazeRejectedError (message never contains the key).
* 429, 408, 5xx, timeouts, refused or dropped connections: retried with backoff and full
  jitter (honouring Retry-After / X-RateLimit-Reset) up to ``max_attempts``, then failed.
  A dropped connection may have been processed by Braze: attributes are idempotent, but an
  event or purchase can then be counted twice (Braze's own at-least-once caveat).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import SecretStr

from headwater.braze.batching import (
    BatchPacker,
    ItemResult,
    TrackBatch,
    TrackItem,
    map_object_errors,
    split_batch,
)
from headwater.braze.budget import BucketLimit, RateBudget, WindowCounter, shared_budget
from headwater.braze.concurrency import INITIAL_CONCURRENCY, AdaptiveConcurrency
from headwater.braze.endpoints import ENDPOINTS, Endpoint, endpoint_for
from headwater.braze.errors import (
    MSG_BAD_JSON,
    BrazeError,
    BrazeRejectedError,
    BrazeSendInDoubtError,
    BrazeUnavailableError,
)
from headwater.braze.limits import (
    MAX_BODY_BYTES,
    MAX_IDS_PER_REQUEST,
    MAX_OBJECTS_PER_REQUEST,
    BatchPolicy,
)
from headwater.braze.messaging import CAMPAIGN, CANVAS, SendKind, parse_trigger_send
from headwater.braze.ratelimit import RateGovernor, shared_governor
from headwater.braze.retry import (
    DEFAULT_MAX_ATTEMPTS,
    Backoff,
    backoff_seconds,
    retry_after_seconds,
    should_retry_status,
)
from headwater.braze.track import (
    ObjectError,
    validate_attributes_object,
    validate_event_object,
    validate_purchase_object,
)
from headwater.braze.transport import (
    AiohttpSender,
    Answer,
    HttpxSender,
    TransportFailure,
    choose_http,
)
from headwater.chunks import chunks

__all__ = ["BrazeClient", "ItemResult", "TrackItem", "TrackSummary"]

log = logging.getLogger(__name__)

# The ceiling of the adaptive concurrency: saturating Braze takes about rate x round trip
# (1,000 requests/s x 0.1 s = 100); twice that leaves room for slower round trips.
DEFAULT_MAX_CONCURRENCY = 200
DEFAULT_TIMEOUT_SECONDS = 30.0
TRACK = ENDPOINTS["users.track"]
MSG_MAX_INPUT_PREFIX = "max input length"
SPLITTABLE_STATUSES = (400, 413)
REDACTED = "<redacted>"

# Called after every request with (endpoint path, HTTP status or None for a transport
# failure, seconds waiting for Braze, seconds waited for the rate budget): how /metrics
# learns of requests, latency and rate-limit waits without this module knowing of it.
REQUEST_OBSERVERS: list[Callable[[str, int | None, float, float], None]] = []

OnResults = Callable[[list[ItemResult]], Awaitable[None] | None]
Progress = Callable[[int], None]


@dataclass
class TrackSummary:
    """Counts for one :meth:`BrazeClient.track` call, for run records and the CLI."""

    requests: int = 0  # HTTP requests made, retries included
    objects_sent: int = 0  # objects put on the wire, resends included
    accepted: int = 0
    failed: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 answers seen
    seconds: float = 0.0


class BrazeClient:
    """An async client for one Braze workspace (REST base URL + API key).

    The number of requests in flight adapts to the answers (``braze.concurrency``), from
    ``initial_concurrency`` up to ``max_concurrency`` (one keep-alive connection each);
    ``adaptive=False`` keeps it at ``max_concurrency``. Every request first takes a slot
    from the destination's rate budget (``braze.budget``: Braze's documented limits, or
    ``rate_limits`` per bucket; ``budget_counter`` shares the count with other processes),
    then from the governor that learns from Braze's ``X-RateLimit-*`` headers. Both default
    to the process-wide ones for this URL and key, so every client of a destination shares
    them. ``bulk`` adds ``X-Braze-Bulk: true`` (backfills). ``validate`` runs Braze's
    per-object rules before sending; it is off by default because it costs ~50 us per object
    with distinct emails (email-validator), more than sending does, and Braze's own
    per-object errors are mapped back to rows anyway. ``http`` picks the engine: "aiohttp"
    when installed ("auto"), else "httpx" (see the note at the end of this module).
    """

    def __init__(
        self,
        url: str,
        api_key: str | SecretStr,
        *,
        batch_policy: BatchPolicy | str = BatchPolicy.COMBINED,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        governor: RateGovernor | None = None,
        budget: RateBudget | None = None,
        rate_limits: dict[str, BucketLimit] | None = None,
        budget_counter: WindowCounter | None = None,
        adaptive: bool = True,
        initial_concurrency: int = INITIAL_CONCURRENCY,
        bulk: bool = False,
        backoff: Backoff | None = None,
        validate: bool = False,
        max_objects: int = MAX_OBJECTS_PER_REQUEST,
        http: str = "auto",
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.url = url.rstrip("/")
        self._key = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        self.batch_policy = BatchPolicy(batch_policy)
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.bulk = bulk
        self.validate = validate
        self.max_objects = max_objects
        self.governor = governor or shared_governor(self.url, self._key.get_secret_value())
        self.budget = budget or shared_budget(
            self.url, self._key.get_secret_value(), rate_limits, counter=budget_counter
        )
        self.concurrency = AdaptiveConcurrency(
            max_concurrency, initial=initial_concurrency, adaptive=adaptive
        )
        self.http = choose_http(http)
        headers = {
            # The only place the key is unwrapped; never logged, and scrubbed from answers.
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        sender = AiohttpSender if self.http == "aiohttp" else HttpxSender
        self._sender = sender(self.url, headers, timeout, max_concurrency)

    def __repr__(self) -> str:
        return (
            f"BrazeClient(url={self.url!r}, batch_policy={self.batch_policy.value!r}, "
            f"max_concurrency={self.max_concurrency}, http={self.http!r})"
        )

    async def __aenter__(self) -> BrazeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._sender.aclose()

    # -- /users/track --------------------------------------------------------------------

    async def track(
        self,
        items: Iterable[TrackItem] | AsyncIterable[TrackItem],
        *,
        on_results: OnResults | None = None,
        progress: Progress | None = None,
    ) -> TrackSummary:
        """Send every item to ``/users/track`` in full batches, ``max_concurrency`` at once.

        ``on_results`` is called once per completed request with the results of the objects
        it carried (calls never overlap, so a callback may commit to a database);
        ``progress`` gets the number of objects that just finished. Returns the counts.
        Raises BrazeRejectedError on 401/403 (results already reported stay valid).
        """
        run = _TrackRun(self, on_results, progress)
        started = time.monotonic()
        queue: asyncio.Queue[TrackBatch | None] = asyncio.Queue(maxsize=self.max_concurrency)
        try:
            async with asyncio.TaskGroup() as group:
                workers = [
                    group.create_task(run.worker(queue)) for _ in range(self.max_concurrency)
                ]
                await self._feed(items, queue, run)
                for _ in workers:
                    await queue.put(None)
        except BaseExceptionGroup as group_error:
            fatal = _first_rejection(group_error)
            if fatal is not None:
                raise fatal from None
            if len(group_error.exceptions) == 1:
                raise group_error.exceptions[0] from None
            raise
        run.summary.seconds = time.monotonic() - started
        return run.summary

    async def _feed(
        self,
        items: Iterable[TrackItem] | AsyncIterable[TrackItem],
        queue: asyncio.Queue,
        run: _TrackRun,
    ) -> None:
        """Pack items into batches as they come; the bounded queue is the backpressure."""
        packer = BatchPacker(self.batch_policy, self.max_objects)
        invalid: list[ItemResult] = []
        validate = self.validate

        def take(item: TrackItem) -> TrackBatch | None:
            """Plain, not a coroutine: most items only join a batch (no await per item)."""
            if validate:
                error = _validation_error(item)
                if error is not None:
                    invalid.append(ItemResult(item.ref, False, error))
                    return None
            return packer.add(item)

        async def settle(batch: TrackBatch | None) -> None:
            if batch is not None:
                await queue.put(batch)
            if len(invalid) >= self.max_objects:
                await run.report(invalid[:])
                invalid.clear()

        if isinstance(items, AsyncIterable):
            async for item in items:
                await settle(take(item))
        else:
            for count, item in enumerate(items, 1):
                batch = take(item)
                if batch is not None or invalid:
                    await settle(batch)
                if count % 1000 == 0:  # a huge sync iterable must not starve the workers
                    await asyncio.sleep(0)
        for batch in packer.flush():
            await queue.put(batch)
        if invalid:
            await run.report(invalid)

    # -- one /users/track request --------------------------------------------------------

    async def _post_track(self, batch: TrackBatch, run: _TrackRun) -> Answer:
        content = orjson.dumps(batch.body())
        if len(content) > MAX_BODY_BYTES and len(batch) > 1:
            return Answer(413, {"message": "request body over 4 MB (not sent)"}, None)
        run.summary.requests += 1
        run.summary.objects_sent += len(batch)
        headers = {"X-Braze-Bulk": "true"} if self.bulk else None
        return await self._exchange(TRACK, content, headers)

    async def _exchange(
        self,
        endpoint: Endpoint,
        content: bytes | None,
        headers: dict[str, str] | None = None,
        params: dict | None = None,
    ) -> Answer:
        """One HTTP request within the concurrency limit, the rate budget and the governor;
        never raises for transport failures (they come back as ``Answer.error``)."""
        bucket = endpoint.rate_bucket
        limiter = self.concurrency
        started = await limiter.acquire()
        try:
            waited = await self.budget.acquire(bucket)
            waited += await self.governor.acquire(bucket)
            sent = time.monotonic()
            try:
                status, answer_headers, raw = await self._sender.send(
                    endpoint.method, endpoint.path, content, headers, params
                )
            except TransportFailure as exc:
                self.governor.release(bucket)
                limiter.observe(started, status=None, latency=0.0, budget_bound=waited > 0)
                _observe(endpoint.path, None, time.monotonic() - sent, waited)
                return Answer(None, None, None, self._scrub(str(exc)))
            except BaseException:
                self.governor.release(bucket)
                raise
            latency = time.monotonic() - sent
            limiter.observe(started, status=status, latency=latency, budget_bound=waited > 0)
            _observe(endpoint.path, status, latency, waited)
        finally:
            await limiter.release()
        self.governor.observe(bucket, status, answer_headers)
        secret = self._key.get_secret_value().encode()
        if secret and secret in raw:  # an echo of the key must not reach logs or reports
            raw = raw.replace(secret, REDACTED.encode())
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {"message": raw[:200].decode("utf-8", "replace")}
        return Answer(status, body, answer_headers)

    def _scrub(self, text: str) -> str:
        """Remove the key from any text that might reach a log, exception or report."""
        secret = self._key.get_secret_value()
        return text.replace(secret, REDACTED) if secret else text

    def _rejection(self, answer: Answer, endpoint: Endpoint) -> BrazeRejectedError:
        body = answer.body if isinstance(answer.body, dict) else {}
        clean = orjson.loads(self._scrub(orjson.dumps(body).decode())) if body else {}
        message = str(clean.get("message") or "")
        return BrazeRejectedError(
            answer.status or 0, clean, f"{message} ({endpoint.method} {endpoint.path})".strip()
        )

    # -- other endpoints -----------------------------------------------------------------

    async def request(
        self,
        endpoint: str,
        json: dict | list | None = None,
        *,
        params: dict | None = None,
    ) -> dict:
        """Call any Braze endpoint (by name like ``"users.alias.new"`` or by path) with the
        same governor, concurrency bound and retries as ``track``; returns the JSON body.

        Raises BrazeRejectedError for a 4xx, BrazeUnavailableError after ``max_attempts``.
        """
        target = _resolve(endpoint, json)
        content = orjson.dumps(json) if json is not None else None
        last: Answer | None = None
        for attempt in range(1, self.max_attempts + 1):
            last = await self._exchange(target, content, params=params)
            if last.status is not None and 200 <= last.status < 300:
                return last.body if isinstance(last.body, dict) else {"data": last.body}
            if last.status is not None and not should_retry_status(last.status):
                raise self._rejection(last, target)
            if attempt == self.max_attempts:
                break
            await asyncio.sleep(self._retry_delay(attempt, last))
        assert last is not None
        raise BrazeUnavailableError(
            last.status,
            f"{target.method} {target.path} failed after {self.max_attempts} attempts: "
            f"{_describe(last)}",
            retry_after=_hint(last),
        )

    async def forward(self, endpoint: str, content: bytes) -> Answer:
        """One request passed through as it came (the gateway's reads): under the same
        budget, governor and concurrency as everything else sent to this destination, no
        retries (the caller's client retries what Braze refuses). The answer's body is
        decoded, the key scrubbed from it; ``status`` None means no answer at all."""
        return await self._exchange(ENDPOINTS[endpoint], content)

    def _retry_delay(self, attempt: int, answer: Answer) -> float:
        return backoff_seconds(attempt, self.backoff, retry_after=_hint(answer))

    async def export_ids(
        self,
        external_ids: list[str] | None = None,
        *,
        user_aliases: list[dict] | None = None,
        fields_to_export: list[str] | None = None,
        **other: Any,
    ) -> dict:
        """``/users/export/ids`` for any number of ids (50 per request, answers merged).

        ``other`` passes single-identifier lookups (``email_address``, ``phone``, ...)."""
        ids = [("external_ids", i) for i in external_ids or []]
        ids += [("user_aliases", a) for a in user_aliases or []]
        base: dict[str, Any] = dict(other)
        if fields_to_export is not None:
            base["fields_to_export"] = fields_to_export
        bodies = []
        for chunk in chunks(ids, MAX_IDS_PER_REQUEST) if ids else [[]]:
            body = dict(base)
            for name, value in chunk:
                body.setdefault(name, []).append(value)
            bodies.append(body)
        answers = await asyncio.gather(*(self.request("users.export.ids", b) for b in bodies))
        merged: dict[str, Any] = {"users": [], "invalid_user_ids": [], "message": "success"}
        for answer in answers:
            merged["users"].extend(answer.get("users") or [])
            merged["invalid_user_ids"].extend(answer.get("invalid_user_ids") or [])
        return merged

    async def alias_new(self, user_aliases: list[dict]) -> dict:
        """``/users/alias/new`` for any number of aliases (50 per request)."""
        answers = await asyncio.gather(
            *(
                self.request("users.alias.new", {"user_aliases": chunk})
                for chunk in chunks(user_aliases, MAX_IDS_PER_REQUEST)
            )
        )
        return {
            "aliases_processed": sum(a.get("aliases_processed", 0) for a in answers),
            "message": "success",
        }

    async def delete_users(
        self,
        *,
        external_ids: list[str] | None = None,
        user_aliases: list[dict] | None = None,
        braze_ids: list[str] | None = None,
    ) -> dict:
        """``/users/delete``: one identifier type per request, 50 per request."""
        calls = []
        for name, values in (
            ("external_ids", external_ids),
            ("user_aliases", user_aliases),
            ("braze_ids", braze_ids),
        ):
            for chunk in chunks(values or [], MAX_IDS_PER_REQUEST):
                calls.append(self.request("users.delete", {name: chunk}))
        answers = await asyncio.gather(*calls)
        return {"deleted": sum(a.get("deleted", 0) for a in answers), "message": "success"}

    # -- API-triggered sends ---------------------------------------------------------------

    async def trigger_campaign(
        self,
        campaign_id: str,
        recipients: list[dict] | None = None,
        *,
        trigger_properties: dict | None = None,
        send_id: str | None = None,
        broadcast: bool = False,
    ) -> str:
        """``/campaigns/trigger/send`` (at most 50 recipients); returns the dispatch_id.

        Sends have no idempotency key, so only answers that prove Braze processed nothing
        are retried (429, 502, 503, a refused connection). No answer, or a 500/504, raises
        BrazeSendInDoubtError; a body Braze would refuse raises BrazeRejectedError before
        anything is sent."""
        body: dict[str, Any] = {"campaign_id": campaign_id}
        if trigger_properties:
            body["trigger_properties"] = trigger_properties
        return await self._trigger(CAMPAIGN, body, recipients, send_id, broadcast)

    async def trigger_canvas(
        self,
        canvas_id: str,
        recipients: list[dict] | None = None,
        *,
        canvas_entry_properties: dict | None = None,
        broadcast: bool = False,
    ) -> str:
        """``/canvas/trigger/send``, as :meth:`trigger_campaign`; returns the dispatch_id."""
        body: dict[str, Any] = {"canvas_id": canvas_id}
        if canvas_entry_properties:
            body["canvas_entry_properties"] = canvas_entry_properties
        return await self._trigger(CANVAS, body, recipients, None, broadcast)

    async def _trigger(
        self,
        kind: SendKind,
        body: dict,
        recipients: list[dict] | None,
        send_id: str | None,
        broadcast: bool,
    ) -> str:
        if recipients is not None:
            body["recipients"] = recipients
        if send_id is not None:
            body["send_id"] = send_id
        if broadcast:
            body["broadcast"] = True
        try:
            parse_trigger_send(body, kind)
        except BrazeError as exc:
            raise BrazeRejectedError(400, exc.body(), f"{exc.message} (not sent)") from None
        answer = await self.send_once(kind.endpoint, body)
        dispatch_id = answer.get("dispatch_id")
        if not isinstance(dispatch_id, str):
            raise BrazeSendInDoubtError(None, f"{kind.endpoint}: answer without a dispatch_id")
        return dispatch_id

    async def send_once(self, endpoint: str, json: dict) -> dict:
        """POST a non-idempotent request: retried only when Braze certainly did nothing."""
        target = ENDPOINTS[endpoint]
        content = orjson.dumps(json)
        last: Answer | None = None
        for attempt in range(1, self.max_attempts + 1):
            last = await self._exchange(target, content)
            status = last.status
            if status is not None and 200 <= status < 300:
                return last.body if isinstance(last.body, dict) else {}
            if status is not None and status < 500 and status not in (408, 429):
                raise self._rejection(last, target)
            if not _nothing_processed(last):
                raise BrazeSendInDoubtError(
                    status, f"{target.method} {target.path}: {_describe(last)} (may have been sent)"
                )
            if attempt == self.max_attempts:
                break
            await asyncio.sleep(self._retry_delay(attempt, last))
        assert last is not None
        raise BrazeUnavailableError(
            last.status,
            f"{target.method} {target.path} failed after {self.max_attempts} attempts "
            f"(nothing sent): {_describe(last)}",
            retry_after=_hint(last),
        )


class _TrackRun:
    """The state of one ``track`` call, shared by its workers."""

    def __init__(
        self, client: BrazeClient, on_results: OnResults | None, progress: Progress | None
    ):
        self.client = client
        self.on_results = on_results
        self.progress = progress
        self.summary = TrackSummary()
        self._report_lock = asyncio.Lock()

    async def report(self, results: list[ItemResult]) -> None:
        for result in results:
            if result.ok:
                self.summary.accepted += 1
            else:
                self.summary.failed += 1
        if self.progress is not None and results:
            self.progress(len(results))
        if self.on_results is not None and results:
            async with self._report_lock:
                outcome = self.on_results(results)
                if inspect.isawaitable(outcome):
                    await outcome

    async def worker(self, queue: asyncio.Queue) -> None:
        while True:
            batch = await queue.get()
            if batch is None:
                return
            await self.deliver(batch)

    async def deliver(self, first: TrackBatch) -> None:
        """Send one batch until every object in it has a result."""
        client = self.client
        todo: list[TrackBatch] = [first]
        while todo:
            batch = todo.pop()
            attempt = 0
            while True:
                attempt += 1
                answer = await client._post_track(batch, self)
                status = answer.status
                if status is not None and 200 <= status < 300:
                    await self._accept(batch, answer.body)
                    break
                if status in (401, 403):
                    raise client._rejection(answer, TRACK)
                if status is not None and not should_retry_status(status):
                    rest = await self._refuse(batch, answer)
                    todo.extend(rest)
                    break
                if status == 429:
                    self.summary.rate_limited += 1
                if attempt >= client.max_attempts:
                    reason = f"gave up after {attempt} attempts: {_describe(answer)}"
                    log.warning("Braze /users/track %s (%d objects)", reason, len(batch))
                    await self.report(
                        [ItemResult(i.ref, False, reason, retriable=True) for i in batch.items()]
                    )
                    break
                self.summary.retries += 1
                delay = client._retry_delay(attempt, answer)
                log.info(
                    "Braze /users/track %s; retry %d in %.2fs", _describe(answer), attempt, delay
                )
                await asyncio.sleep(delay)

    async def _accept(self, batch: TrackBatch, body: object) -> None:
        errors = body.get("errors") if isinstance(body, dict) else None
        bad = map_object_errors(batch, errors) if errors else {}
        results = []
        for item in batch.items():
            found = bad.get(id(item))
            results.append(ItemResult(item.ref, found is None, found[1] if found else None))
        await self.report(results)

    async def _refuse(self, batch: TrackBatch, answer: Answer) -> list[TrackBatch]:
        """A 4xx that is not about rate or auth: fail the named objects, resend the rest
        (Braze processed nothing), or halve the batch when it was simply too big."""
        body = answer.body if isinstance(answer.body, dict) else {}
        bad = map_object_errors(batch, body.get("errors"))
        if bad:
            await self.report([ItemResult(item.ref, False, text) for item, text in bad.values()])
            rest = batch.without(set(bad))
            return [rest] if len(rest) else []
        message = str(body.get("message") or "")
        too_big = answer.status == 413 or message.lower().startswith(MSG_MAX_INPUT_PREFIX)
        # Malformed JSON names no object either: halving finds the one at fault (objects
        # may be sent as stored, undecoded) instead of failing all its neighbours.
        malformed = answer.status == 400 and message == MSG_BAD_JSON
        if (too_big or malformed) and len(batch) > 1 and answer.status in SPLITTABLE_STATUSES:
            return list(split_batch(batch))
        reason = self.client._scrub(f"Braze answered {answer.status}: {message}".rstrip(": "))
        await self.report([ItemResult(i.ref, False, reason) for i in batch.items()])
        return []


_VALIDATORS: dict[str, Callable[[Any], object]] = {
    "attributes": validate_attributes_object,
    "events": validate_event_object,
    "purchases": validate_purchase_object,
}


def _validation_error(item: TrackItem) -> str | None:
    """Braze's own per-object check, run before sending so a bad row costs no request."""
    validator = _VALIDATORS.get(item.kind)
    if validator is None:
        return f"unknown track array {item.kind!r}"
    try:
        validator(item.payload)
    except ObjectError as exc:
        return exc.type
    return None


def _resolve(endpoint: str, json: object) -> Endpoint:
    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint]
    path = "/" + endpoint.strip("/")
    found = endpoint_for("POST" if json is not None else "GET", path) or endpoint_for(
        "GET" if json is not None else "POST", path
    )
    if found is not None:
        return found
    return Endpoint(path.strip("/").replace("/", "."), "POST" if json is not None else "GET",
                    path, 200, "default", 250_000, 3600)  # fmt: skip


# Transport failures raised before a request could leave (a connection never made).
_NOT_CONNECTED = ("ConnectError", "ConnectTimeout", "ClientConnectorError")


def _nothing_processed(answer: Answer) -> bool:
    """Whether an answer proves Braze did not process the request: rate limited, 502 (failed
    before reaching Braze), 503 (no capacity), or a connection that was never made."""
    if answer.status is not None:
        return answer.status in (429, 502, 503)
    return (answer.error or "").startswith(_NOT_CONNECTED)


def _hint(answer: Answer) -> float | None:
    if answer.headers is None or answer.status not in (429, 503):
        return None
    return retry_after_seconds(answer.headers, time.time())


def _describe(answer: Answer) -> str:
    if answer.error is not None:
        return answer.error
    message = answer.body.get("message") if isinstance(answer.body, dict) else None
    return f"{answer.status} {message or ''}".strip()


def _first_rejection(group: BaseExceptionGroup) -> BrazeRejectedError | None:
    for exc in group.exceptions:
        if isinstance(exc, BrazeRejectedError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_rejection(exc)
            if found is not None:
                return found
    return None


def _observe(path: str, status: int | None, latency: float, waited: float) -> None:
    for observer in REQUEST_OBSERVERS:
        with contextlib.suppress(Exception):  # figures are never worth a failed request
            observer(path, status, latency, waited)
