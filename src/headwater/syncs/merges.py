"""Persons merged by identity resolution, merged in Braze too (``/users/merge``).

Opt-in per identity model (``identity: {merge_in_braze: true}``). A merge recorded in
``<model>_merges`` is sent when a sync over the model had sent *both* persons to Braze by
``external_id``: the sync's snapshot (what Braze accepted) says as which ids. The older
person survives resolution, so its id is the one kept: ``identifier_to_merge`` is the
merged person's external id, ``identifier_to_keep`` the survivor's. A merge whose persons
were not both synced is nothing to Braze: one of them never had a profile there.

Each merge is sent once: ``<model>__hw_braze_merges`` (destination, merge_external_id,
keep_external_id, survivor, merged, sent_at) records it when Braze answered 202, so a run
repeated, restarted or killed sends only what was not recorded (a kill between the
answer and the record resends that batch; merging the same pair again is harmless, the
merged profile is already gone). It runs right after a resolution, before any sync sends
the new golden records, so a sync removing the merged person cannot come first.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from headwater.braze.limits import MAX_IDS_PER_REQUEST
from headwater.chunks import chunks
from headwater.config import Project
from headwater.engines import Engine, quote_ident, quote_table
from headwater.errors import HeadwaterError
from headwater.identity import output_table
from headwater.identity.place import base_name
from headwater.runtime.clients import destination_client
from headwater.syncs.snapshot import KEY, snapshot_table

log = logging.getLogger(__name__)


@dataclass
class MergeReport:
    sent: int = 0  # merges Braze accepted this time
    errors: list[str] = field(default_factory=list)  # per destination, what failed


def ledger_table(model_name: str) -> str:
    return f"{model_name}__hw_braze_merges"


def wanted(project: Project, model_name: str) -> bool:
    model = project.models.get(model_name)
    return bool(model and model.identity and model.identity.merge_in_braze)


def pending(engine: Engine, project: Project, model_name: str) -> dict[str, list[tuple]]:
    """Per destination, the merges to send: (merge_external_id, keep_external_id,
    survivor, merged), each pair once, none already recorded. ``engine``: where the model
    was resolved (its tables, and its syncs' snapshots, are there)."""
    base = base_name(engine, model_name, project.models[model_name])
    merges = output_table(base, "merges")
    ledger = quote_table(ledger_table(base))
    engine.execute(
        f"CREATE TABLE IF NOT EXISTS {ledger} (destination VARCHAR, merge_external_id VARCHAR, "
        "keep_external_id VARCHAR, survivor VARCHAR, merged VARCHAR, sent_at TIMESTAMPTZ)"
    )
    found: dict[str, list[tuple]] = {}
    if not engine.table_exists(merges):
        return found
    for name, sync in project.syncs.items():
        column = sync.identifier.external_id
        snap = snapshot_table(name)
        if sync.model != model_name or column is None or not engine.table_exists(snap):
            continue
        ext = quote_ident(column)
        rows = engine.fetch_all(
            f"SELECT DISTINCT CAST(sm.{ext} AS VARCHAR), CAST(ss.{ext} AS VARCHAR), m.survivor, "
            f"m.merged FROM {quote_table(merges)} AS m "
            f"JOIN {quote_ident(snap)} AS sm ON sm.{KEY} = m.merged "
            f"JOIN {quote_ident(snap)} AS ss ON ss.{KEY} = m.survivor "
            f"WHERE sm.{ext} IS NOT NULL AND ss.{ext} IS NOT NULL "
            f"AND CAST(sm.{ext} AS VARCHAR) <> CAST(ss.{ext} AS VARCHAR) "
            f"AND NOT EXISTS (SELECT 1 FROM {ledger} AS l WHERE l.destination = :d "
            f"AND l.merge_external_id = CAST(sm.{ext} AS VARCHAR) "
            f"AND l.keep_external_id = CAST(ss.{ext} AS VARCHAR)) ORDER BY 3, 4, 1, 2",
            {"d": sync.destination},
        )
        known = found.setdefault(sync.destination, [])
        seen = {(r[0], r[1]) for r in known}
        known += [r for r in rows if (r[0], r[1]) not in seen]
    return found


async def _send(project: Project, destination: str, rows: list[tuple], record) -> None:
    async with destination_client(project, destination, where="merge_in_braze") as client:
        for chunk in chunks(rows, MAX_IDS_PER_REQUEST):
            body = {
                "merge_updates": [
                    {
                        "identifier_to_merge": {"external_id": merge_id},
                        "identifier_to_keep": {"external_id": keep_id},
                    }
                    for merge_id, keep_id, _, _ in chunk
                ]
            }
            await client.request("users.merge", body)
            record(destination, chunk)  # only once Braze answered


def send_merges(project: Project, model_name: str, engine: Engine) -> MergeReport:
    """Send the model's pending merges to Braze (when ``merge_in_braze``) and record
    them. A destination that fails is reported in ``errors``; what it accepted before
    stays recorded and the rest is sent by the next run."""
    report = MergeReport()
    if not wanted(project, model_name):
        return report
    ledger = ledger_table(base_name(engine, model_name, project.models[model_name]))

    def record(destination: str, chunk: list[tuple]) -> None:
        now = datetime.now(UTC)
        columns = ("merge_external_id", "keep_external_id", "survivor", "merged")
        rows = {"destination": pa.array([destination] * len(chunk), pa.string())}
        rows |= {c: pa.array([r[i] for r in chunk], pa.string()) for i, c in enumerate(columns)}
        rows["sent_at"] = pa.array([now] * len(chunk), pa.timestamp("us", tz="UTC"))
        engine.load_arrow(ledger, pa.table(rows), replace=False)
        report.sent += len(chunk)

    for destination, rows in pending(engine, project, model_name).items():
        if not rows:
            continue
        try:
            asyncio.run(_send(project, destination, rows, record))
        except HeadwaterError as exc:
            log.warning("merges of %s to %s: %s", model_name, destination, exc)
            report.errors.append(f"{destination}: {exc}")
    return report


def resolve_and_merge(
    project: Project, model_name: str, *, stop=None, full: bool = False, progress=None
):
    """Resolve identity model ``model_name`` (``headwater.identity.resolve``), then send
    its merges to Braze when the model asks for it. Returns (IdentityReport, MergeReport)."""
    from headwater.identity import resolve
    from headwater.identity.place import open_identity_engine

    engine = open_identity_engine(project, model_name)
    try:
        report = resolve(
            project, model_name, stop=stop, full=full, progress=progress, engine=engine
        )
        merged = MergeReport()
        if report.error is None and wanted(project, model_name):
            merged = send_merges(project, model_name, engine)
        return report, merged
    finally:
        engine.close()


def run_identity_job(project: Project, name: str, *, stop=None):
    """The scheduler's entry point for an identity model: resolve, then merge in Braze."""
    report, merged = resolve_and_merge(project, name, stop=stop)
    for error in merged.errors:
        log.warning("identity %s: /users/merge: %s", name, error)
    return report
