"""Moves committed Currents batches into the landing: Parquet files DuckDB reads while
``serve`` keeps writing.

Why Parquet files and not a table in the warehouse: DuckDB lets one process hold its
database file for writing, so a ``serve`` that wrote events into ``warehouse.duckdb``
would lock out every user query (and every ``headwater sync``) for as long as it runs.
Files written under a temporary name and renamed into place are never seen half written,
and any number of readers query them at once:

    SELECT * FROM read_parquet('.headwater/landing/currents/braze/users.behaviors.Purchase/*.parquet')

Layout: ``<landing>/currents/<receiver>/<event_type>/part-<seq>-<key>.parquet``, one file per
event type per landing (``<event_type>`` links to its current generation, see
``currents_compact``, which merges the small files) (``Landing.name``, see ``headwater.state.currents``). A
landing's files are written, synced to disk, and only then do its batches leave the state
store; a crash in between writes the same files again under the same names, so an event is
never landed twice nor lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from pathlib import Path

import duckdb
import orjson
import pyarrow.parquet as pq

from headwater.exports.currents_compact import ensure_type_dir, type_lock
from headwater.exports.currents_events import USER_FIELDS, properties_of
from headwater.exports.currents_lander import Lander
from headwater.exports.landing import fsync_dir, fsync_file
from headwater.state.currents import Landing

log = logging.getLogger("headwater.currents")

MAX_EVENTS_PER_LANDING = 50_000  # bounds one landing's memory and its files' size
# At most one landing started per interval: a landing has fixed costs (measured: 45 us/event
# at 5,000 events, 23 at 20,000), so under load fewer, larger landings keep up better, and
# an event still lands within about a second and a half.
LANDING_INTERVAL_SECONDS = 1.0
POLL_SECONDS = 0.5  # batches committed by another process, landings left by a dead one
LINGER_SECONDS = 0.2  # after an idle spell, lets the first landing gather a few commits
FORGET_EVERY_SECONDS = 600.0
STOP_WAIT_SECONDS = 10.0


def landing_path(root: Path, receiver: str, event_type: str, landing: str) -> Path:
    return root / "currents" / receiver / event_type / f"part-{landing}.parquet"


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_NUMBER = "('BIGINT', 'UBIGINT', 'HUGEINT', 'DOUBLE')"
_FITS = {
    str: "= 'VARCHAR'",
    float: f"IN {_NUMBER}",
    bool: "= 'BOOLEAN'",
    "json": "NOT IN ('NULL')",
}
_CAST = {str: "VARCHAR", float: "DOUBLE", bool: "BOOLEAN", "json": "JSON"}


def _field(part: str, name: str, kind: object) -> tuple[str, str]:
    """A documented field's column, and its entry in the patch that leaves in ``extra``
    only what the columns do not hold (JSON merge patch: a null removes a member). ``s``
    is the event parsed once (``json_transform``), each field still a small JSON value."""
    raw = f"s.{_ident(part)}.{_ident(name)}"
    fits = f"coalesce(json_type({raw}) {_FITS[kind]}, false)"
    if kind == "json":
        value = f"CASE WHEN {fits} THEN CAST({raw} AS VARCHAR) END"
    elif kind is str:
        value = f"CASE WHEN {fits} THEN json_extract_string({raw}, '$') END"
    else:
        value = f"CASE WHEN {fits} THEN CAST(json_extract_string({raw}, '$') AS {_CAST[kind]}) END"
    keep = f"CASE WHEN {fits} OR json_type({raw}) = 'NULL' THEN NULL ELSE {raw} END"
    return f"{value} AS {_ident(name)}", f"{_sql_text(name)}, {keep}"


def _structure(documented: dict) -> str:
    """The ``json_transform`` structure: every field this table reads, as JSON."""
    shape = {
        "id": "VARCHAR", "event_type": "VARCHAR", "time": "JSON",
        "user": dict.fromkeys(USER_FIELDS, "JSON"),
        "properties": dict.fromkeys(documented, "JSON") or "JSON",
    }  # fmt: skip
    return _sql_text(orjson.dumps(shape).decode())


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=1024)
def select_sql(event_type: str) -> str:
    """The SELECT that turns the landing's events (``ev``: receiver, batch, received_at,
    i, j) into rows of ``event_type``'s table; documented fields as typed columns, the rest
    as JSON in ``extra``."""
    user_cols, user_patch = zip(*(_field("user", n, str) for n in USER_FIELDS), strict=True)
    documented = properties_of(event_type)
    prop_cols, prop_patch = (
        zip(*(_field("properties", n, k) for n, k in documented.items()), strict=True)
        if documented
        else ((), ())
    )
    user_rest = (
        f"json_merge_patch(coalesce(j->'user', '{{}}'), json_object({', '.join(user_patch)}))"
    )
    props_rest = (
        f"json_merge_patch(coalesce(j->'properties', '{{}}'), json_object({', '.join(prop_patch)}))"
        if documented
        else "coalesce(j->'properties', '{}')"
    )
    top_rest = (
        'json_merge_patch(j, \'{"id":null,"event_type":null,"time":null,'
        '"user":null,"properties":null}\')'
    )
    extra = (
        f"json_merge_patch({top_rest}, json_object("
        f"'user', CASE WHEN u_rest <> '{{}}' THEN u_rest END, "
        f"'properties', CASE WHEN p_rest <> '{{}}' THEN p_rest END))"
    )
    time_path = "'$.time'"
    columns = [
        "json_extract_string(j, '$.id') AS id",
        "json_extract_string(j, '$.event_type') AS event_type",
        f"CASE WHEN json_type(j, {time_path}) IN {_NUMBER} "
        f'THEN to_timestamp(CAST(json_extract_string(j, {time_path}) AS DOUBLE)) END AS "time"',
        "to_timestamp(received_at) AS received_at",
        *user_cols,
        *prop_cols,
        "CASE WHEN x = '{}' THEN NULL ELSE CAST(x AS VARCHAR) END AS extra",
    ]
    return (
        f"SELECT {', '.join(columns)} FROM (SELECT *, {extra} AS x FROM (SELECT *, "
        f"{user_rest} AS u_rest, {props_rest} AS p_rest FROM (SELECT *, "
        f"json_transform(j, {_structure(documented)}) AS s FROM ev "
        "WHERE receiver = $receiver AND event_type = $event_type))) ORDER BY batch, i"
    )


def _lines(landing: Landing) -> list[bytes]:
    """One NDJSON line per batch for DuckDB to read: the batch as posted when the landing
    owns all its events (the common case, no decoding here), else only those it owns, the
    first time each appears."""
    seen: set[tuple[str, str]] = set()
    lines = []
    for batch in landing.batches:
        owned = landing.owned.get(batch.receiver, set())
        keep = []
        for index, event_id in enumerate(batch.ids):
            key = (batch.receiver, event_id)
            if event_id in owned and key not in seen:
                seen.add(key)
                keep.append(index)
        if not keep:
            continue
        body = batch.payload
        if len(keep) < len(batch.ids):
            events = orjson.loads(body)["events"]
            body = orjson.dumps({"events": [events[i] for i in keep]})
        elif b"\n" in body or b"\r" in body:  # pretty-printed: one line per batch
            body = orjson.dumps(orjson.loads(body))
        head = orjson.dumps({"receiver": batch.receiver, "batch": batch.id,
                             "received_at": batch.received_at})  # fmt: skip
        lines.append(head[:-1] + b',"body":' + body + b"}")
    return lines


def landing_database() -> duckdb.DuckDBPyConnection:
    """The in-memory DuckDB a landing worker keeps for its landings. One thread: a landing
    is a few thousand rows, where a thread pool's start-up and hand-offs cost more than they
    save (measured: about half the landing's CPU), and serve's event loop needs the rest."""
    db = duckdb.connect()
    db.execute("SET threads = 1")
    return db


def write_landing(
    root: Path, landing: Landing, db: duckdb.DuckDBPyConnection | None = None
) -> list[Path]:
    """Write (or write again) the landing's files, each atomically and synced to disk."""
    lines = _lines(landing)
    if not lines:
        return []
    root.mkdir(parents=True, exist_ok=True)
    source = root / f".landing-{landing.name}.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    written = []
    own = db is None
    db = landing_database() if own else db
    try:
        db.execute(
            "CREATE OR REPLACE TEMP TABLE ev AS SELECT receiver, batch, received_at, "
            "json_extract_string(j, '$.event_type') AS event_type, j, i FROM ("
            "SELECT receiver, batch, received_at, unnest(ev) AS j, "
            "unnest(range(len(ev))) AS i FROM (SELECT receiver, batch, received_at, "
            "CAST(body->'events' AS JSON[]) AS ev FROM read_json(?, "
            "format='newline_delimited', columns={receiver: 'VARCHAR', batch: 'BIGINT', "
            "received_at: 'DOUBLE', body: 'JSON'}, maximum_object_size=1073741824)))",
            [str(source)],
        )
        groups = db.execute("SELECT DISTINCT receiver, event_type FROM ev").fetchall()
        for receiver, event_type in sorted(groups):
            target = landing_path(root, receiver, event_type, landing.name)
            ensure_type_dir(target.parent)
            with type_lock(target.parent):  # not into a generation being replaced
                temporary = target.with_name(f".{target.name}.tmp")
                relation = db.sql(
                    select_sql(event_type), params={"receiver": receiver, "event_type": event_type}
                )
                relation.write_parquet(str(temporary), compression="zstd")
                fsync_file(temporary)
                os.replace(temporary, target)
                fsync_dir(target.parent)
            written.append(target)
        db.execute("DROP TABLE ev")
    finally:
        source.unlink(missing_ok=True)
        if own:
            db.close()
    return written


def landed_counts(root: Path, written: list[Path]) -> dict[tuple[str, str], int]:
    """Events per (receiver, event type) in the files a landing wrote (each file's row
    count, read from its footer), for the receiver's counters."""
    counts: dict[tuple[str, str], int] = {}
    for path in written:
        receiver, event_type = path.relative_to(root / "currents").parts[:2]
        key = (receiver, event_type)
        counts[key] = counts.get(key, 0) + pq.read_metadata(path).num_rows
    return counts


class LandingWorker:
    """One per ``serve`` process: lands whatever is committed, within about a second."""

    def __init__(
        self,
        hub,
        root: Path,
        *,
        max_events: int = MAX_EVENTS_PER_LANDING,
        interval: float = LANDING_INTERVAL_SECONDS,
    ) -> None:
        self.hub = hub
        self.interval = interval
        self.root = Path(root)
        self.max_events = max_events
        self.landed = 0  # events written by this worker
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._forgot_at = 0.0
        self.lander = Lander(hub.engine, hub.outbox.run_with_writers)

    def start(self) -> None:
        self.lander.start()
        self._wake = self.hub.outbox.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, deadline: float | None = None) -> None:
        """Land nothing new; a landing in progress may finish until ``deadline``
        (monotonic), else it is cancelled and written again by the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        if deadline is None:
            deadline = time.monotonic() + STOP_WAIT_SECONDS
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(
                asyncio.shield(self._task), max(0.0, deadline - time.monotonic())
            )
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.lander.close()  # (a landing cut short is written again by the next start)

    async def _run(self) -> None:
        take_over_all = True  # at start: landings a crashed process left are written again
        while not self._stopping:
            try:
                began = time.monotonic()
                done = await self.lander.cycle(self.root, self.max_events, take_over_all)
                if done is None or not done[1]:
                    take_over_all = False
                if done is None:
                    await self._idle()
                    continue
                self.landed += sum(done[2].values())
                await self._forget_old()
                rest = self.interval - (time.monotonic() - began)
                if rest > 0 and not self._stopping and not take_over_all:
                    await asyncio.sleep(rest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the state store or the disk: try again shortly
                reason = (str(exc).splitlines() or [""])[0][:200]  # not the statement's values
                log.error("landing Currents events failed: %s: %s", type(exc).__name__, reason)
                await asyncio.sleep(POLL_SECONDS)

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        if not self._stopping:
            await asyncio.sleep(LINGER_SECONDS)

    async def _forget_old(self) -> None:
        now = time.time()
        if now - self._forgot_at < FORGET_EVERY_SECONDS:
            return
        self._forgot_at = now
        days = max((r.dedupe_days for r in self.hub.settings.currents.values()), default=8.0)
        await self.lander.forget(now - days * 86400)
