"""Fire triggers for entries: render each person's properties, claim the entries in the
ledger, send in requests of 50, record Braze's answer.

The invariant (see ``headwater.state.triggers``): an entry is claimed before its request
leaves and recorded as sent only after Braze answered, so no entry is ever sent twice,
whatever the restarts, retries or number of processes; the one window (a process killed
between send and record) leaves claims that are counted as in doubt, never resent.

A bad person (a template that fails, properties over 50 KB, no usable identifier) is a
row error naming them and the field; the others are sent.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from headwater.braze.client import BrazeClient, TrackItem
from headwater.braze.errors import (
    BrazeError,
    BrazeRejectedError,
    BrazeSendInDoubtError,
    BrazeUnavailableError,
)
from headwater.braze.identifiers import ObjectError, identifier_of
from headwater.braze.messaging import (
    CAMPAIGN,
    CANVAS,
    MAX_RECIPIENTS_PER_REQUEST,
    check_recipient,
    recipient_of,
)
from headwater.chunks import chunks
from headwater.config import Project
from headwater.config.triggers import TriggerConfig
from headwater.errors import ConfigError, HeadwaterError, RowError
from headwater.runtime.clients import destination_client
from headwater.state import runs
from headwater.state import triggers as ledger
from headwater.state.db import open_state
from headwater.triggers.render import RenderError, render_properties

log = logging.getLogger("headwater.triggers")
RUN_KIND = "trigger"
SHOWN_ERRORS = 20


@dataclass
class TriggerOutcome:
    """What one trigger did with one batch of entries."""

    trigger: str
    run_id: int | None = None
    sent: int = 0  # entries Braze accepted in this call
    already: int = 0  # entries claimed or sent before (another process, an earlier run)
    failed: int = 0  # nothing sent: refused, or a bad record
    in_doubt: int = 0  # may have been sent: never resent
    requests: int = 0
    dispatch_ids: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    status: str = "succeeded"
    error: str | None = None


@dataclass
class TriggerReport:
    outcomes: list[TriggerOutcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(o.sent for o in self.outcomes)

    @property
    def in_doubt(self) -> int:
        return sum(o.in_doubt for o in self.outcomes)

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.outcomes)


@dataclass(frozen=True)
class Prepared:
    entry: ledger.Entry
    identifier: dict
    properties: dict
    recipient: dict | None  # the checked recipient object (None for profile-only triggers)


def entry_key(scope: str, entry: dict) -> str:
    """An entry's identity in the ledger. ``entry_key`` wins; else the person and when
    they entered (``entered_at`` or ``entry_id``), so entering again later fires again
    while the same entry presented twice does not."""
    if entry.get("entry_key") is not None:
        return str(entry["entry_key"])
    when = entry.get("entered_at", entry.get("entry_id", ""))
    return f"{scope}|{entry['person_id']}|{when}"


def triggers_for_audience(project: Project, audience: str, split: str | None) -> dict:
    return {
        name: t
        for name, t in project.triggers.items()
        if t.when.audience == audience and (t.when.split is None or t.when.split == split)
    }


def fire_on_audience_entry(
    project: Project,
    audience: str,
    split: str | None,
    entries: list[dict],
    *,
    stop: threading.Event | None = None,
    client: BrazeClient | None = None,
) -> TriggerReport:
    """Fire every trigger declared on ``audience`` (and ``split``) for these entries:
    ``{"person_id", "identifier": {"external_id": ...} | {"user_alias": {...}},
    "record": {column: value}, "entered_at"?}``. Call it from a thread, not an event loop."""
    scope = f"{audience}|{split or ''}"
    work = [
        (name, trigger, [(entry_key(scope, e), e) for e in entries])
        for name, trigger in triggers_for_audience(project, audience, split).items()
    ]
    return asyncio.run(_fire_all(project, work, stop, client))


def fire_entries(
    project: Project,
    name: str,
    keyed_entries: list[tuple[str, dict]],
    *,
    stop: threading.Event | None = None,
    client: BrazeClient | None = None,
) -> TriggerReport:
    """Fire one trigger for entries already keyed (event triggers key them by the outbox
    message and the event's place in it)."""
    trigger = project.triggers.get(name)
    if trigger is None:
        raise ConfigError(f"triggers: no trigger named {name!r}")
    return asyncio.run(_fire_all(project, [(name, trigger, keyed_entries)], stop, client))


async def _fire_all(project, work, stop, client) -> TriggerReport:
    report = TriggerReport()
    if not work:
        return report
    state = open_state(project.state_url)
    try:
        ledger.trigger_sends.create(state, checkfirst=True)
        ledger.sweep_stale(state)
        for name, trigger, keyed in work:
            if stop is not None and stop.is_set():
                break
            own = client or client_for(project, trigger, state)
            try:
                report.outcomes.append(await fire_one(state, name, trigger, keyed, own, stop))
            finally:
                if client is None:
                    await own.aclose()
    finally:
        state.dispose()
    return report


def client_for(project: Project, trigger: TriggerConfig, state) -> BrazeClient:
    """A client under the destination's shared rate budget (the ``messaging`` bucket:
    250 requests a minute, shared with other processes on PostgreSQL)."""
    return destination_client(
        project, trigger.destination, state, where="triggers", max_concurrency=4
    )


def prepare(
    name: str, trigger: TriggerConfig, keyed: Iterable[tuple[str, dict]]
) -> tuple[list[Prepared], list[tuple[ledger.Entry, RowError]]]:
    """Render every entry's properties; bad ones become row errors naming the person."""
    ready: list[Prepared] = []
    bad: list[tuple[ledger.Entry, RowError]] = []
    seen: set[str] = set()
    for key, raw in keyed:
        if key in seen:
            continue  # the same entry twice in one call: once is enough
        seen.add(key)
        person = str(raw.get("person_id"))
        entry = ledger.Entry(key, person)
        identifier = raw.get("identifier")
        if not isinstance(identifier, dict) or not (
            {"external_id", "user_alias"} & set(identifier)
        ):
            bad.append((entry, RowError(f"person {person!r}: no external_id or user_alias to "
                                        "send to", row=person, field="identifier")))  # fmt: skip
            continue
        if "user_alias" in identifier and not trigger.send_to_existing_only:
            bad.append((entry, RowError(f"person {person!r}: send_to_existing_only false is not "
                                        "possible with a user alias", row=person,
                                        field="identifier")))  # fmt: skip
            continue
        try:
            properties = render_properties(trigger.properties, raw.get("record") or {}, person)
        except RenderError as exc:
            bad.append((entry, RowError(f"trigger {name!r}: {exc}", row=person, field=exc.field)))
            continue
        try:
            recipient = _checked(trigger, identifier, properties)
        except (BrazeError, ObjectError) as exc:
            reason = exc.message if isinstance(exc, BrazeError) else exc.type
            bad.append((entry, RowError(f"trigger {name!r}: person {person!r}: {reason}",
                                        row=person, field="identifier")))  # fmt: skip
            continue
        ready.append(Prepared(entry, identifier, properties, recipient))
    return ready, bad


def _checked(trigger: TriggerConfig, identifier: dict, properties: dict) -> dict | None:
    """The person's recipient object, checked against Braze's rules on its own."""
    if trigger.action == "profile":
        identifier_of(_track_identifier(identifier))
        return None
    kind = CAMPAIGN if trigger.action == "campaign" else CANVAS
    existing_only = trigger.send_to_existing_only
    recipient = recipient_of(
        identifier,
        properties=properties,
        send_to_existing_only=existing_only,
        attributes=None if existing_only else properties,
        kind=kind,
    )
    check_recipient(recipient, kind)
    return recipient


async def _db(fn, *args, **kwargs):
    """State-store calls leave the event loop: in serve it also answers the gateway, and
    a SQLite write may wait on the outbox's writer."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def fire_one(
    state,
    name: str,
    trigger: TriggerConfig,
    keyed: list[tuple[str, dict]],
    client: BrazeClient,
    stop: threading.Event | None = None,
) -> TriggerOutcome:
    outcome = TriggerOutcome(name)
    outcome.run_id = await _db(runs.start_run, state, name, kind=RUN_KIND)
    try:
        ready, bad = prepare(name, trigger, keyed)
        if bad:
            await _db(ledger.fail_unclaimed, state, name, [(e, err.reason) for e, err in bad])
            outcome.failed += len(bad)
            outcome.errors.extend(err for _, err in bad)
        for batch in chunks(ready, MAX_RECIPIENTS_PER_REQUEST):
            if stop is not None and stop.is_set():
                break
            await _send_batch(state, name, trigger, batch, client, outcome)
    except HeadwaterError as exc:
        outcome.error = str(exc)
    except Exception as exc:  # a bug: the run says so instead of vanishing
        log.exception("trigger %s failed", name)
        outcome.error = f"{type(exc).__name__}: {exc}"
    if outcome.errors:
        await _db(runs.add_row_errors, state, outcome.run_id, outcome.errors)
    outcome.status = await _db(
        runs.finish_run, state, outcome.run_id, error=outcome.error, sent=outcome.sent,
        failed=outcome.failed, rejected=outcome.in_doubt, requests=outcome.requests,
        unchanged=outcome.already,
    )  # fmt: skip
    outcome.errors = outcome.errors[:SHOWN_ERRORS]
    return outcome


async def _send_batch(state, name, trigger, batch, client, outcome) -> None:
    token, owned = await _db(ledger.claim, state, name, [p.entry for p in batch])
    outcome.already += len(batch) - len(owned)
    mine = [p for p in batch if p.entry.entry_key in owned]
    if not mine:
        return
    keys = [p.entry.entry_key for p in mine]
    outcome.requests += 1
    try:
        dispatch_id = await _send(client, trigger, mine)
    except BrazeSendInDoubtError as exc:
        await _db(ledger.record, state, name, token, keys, ledger.IN_DOUBT, error=str(exc))
        outcome.in_doubt += len(mine)
        log.warning("trigger %s: %d sends in doubt: %s", name, len(mine), exc)
        return
    except (BrazeRejectedError, BrazeUnavailableError) as exc:
        await _db(ledger.record, state, name, token, keys, ledger.FAILED, error=str(exc))
        outcome.failed += len(mine)
        outcome.errors.extend(
            RowError(f"trigger {name!r}: person {p.entry.person_id!r}: {exc}",
                     row=p.entry.person_id)
            for p in mine
        )  # fmt: skip
        if isinstance(exc, BrazeRejectedError) and exc.status in (401, 403):
            raise
        return
    except BaseException:
        # Cancelled or crashed mid-request: the claims stay, swept to in doubt later.
        raise
    await _db(ledger.record, state, name, token, keys, ledger.SENT, dispatch_id=dispatch_id)
    outcome.sent += len(mine)
    outcome.dispatch_ids.append(dispatch_id)


async def _send(client: BrazeClient, trigger: TriggerConfig, batch: list[Prepared]) -> str:
    """One request for the batch; returns the dispatch_id (``profile`` for attribute-only
    triggers, which Braze answers without one)."""
    existing_only = trigger.send_to_existing_only
    if trigger.action == "profile":
        items = [
            TrackItem("attributes", {**_track_identifier(p.identifier), **p.properties,
                                     "_update_existing_only": existing_only}, p.entry.entry_key)
            for p in batch
        ]  # fmt: skip
        summary = await client.track(items)
        if summary.failed:
            raise BrazeRejectedError(400, {}, f"{summary.failed} profile updates refused")
        return "profile"
    kind = CAMPAIGN if trigger.action == "campaign" else CANVAS
    recipients = [p.recipient for p in batch]
    if kind is CAMPAIGN:
        return await client.trigger_campaign(trigger.campaign_id, recipients)
    return await client.trigger_canvas(trigger.canvas_id, recipients)


def _track_identifier(identifier: dict) -> dict:
    if "external_id" in identifier:
        return {"external_id": identifier["external_id"]}
    return {"user_alias": identifier["user_alias"]}
