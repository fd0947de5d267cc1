"""``make demo``: the whole loop on one machine, with nothing to set up.

Starts a Braze-compatible sandbox on a free port, creates the example shop project, syncs
contacts (attributes), orders (purchases) and referral rewards (events), then edits some
contacts and syncs again, so the second run visibly sends only what changed. Then the
CDP side: CRM contacts and newsletter sign-ups resolved into people, an audience with
splits synced as booleans, a campaign triggered on entry (recorded by the sandbox), and
the sandbox's segment exported back into Parquet tables, queried with DuckDB.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import httpx
from rich.console import Console

from headwater.cli.project import TEMPLATE_DIR, TEMPLATE_FILES
from headwater.cli.sync import print_report
from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from headwater.syncs.engine import run_sync

DEMO_DIR = Path(".demo")
DEMO_KEY = "demo-sandbox-key"
WELCOME = {"id": "welcome-loyal", "name": "Welcome, loyal customer"}
CHANGED_POINTS = 40  # contacts whose loyalty points change between the runs
NEW_CONTACTS = 5
REMOVED_CONTACTS = 3


def create_project(target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in TEMPLATE_FILES:
        source = TEMPLATE_DIR / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            shutil.copy2(source, target / name)
    return target


def edit_contacts(path: Path, rejected: set[str]) -> tuple[int, int, int]:
    """Change some loyalty points, add a few customers, drop a few: a day's worth of CRM."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    changed = 0
    for row in rows[10:]:
        if changed == CHANGED_POINTS:
            break
        # only rows the first run accepted, so the second run's "changed" matches this count
        if row.get("loyalty_points", "").isdigit() and row.get("customer_id") not in rejected:
            row["loyalty_points"] = str(int(row["loyalty_points"]) + 100)
            changed += 1
    kept = rows[: len(rows) - REMOVED_CONTACTS]
    for i in range(NEW_CONTACTS):
        new = dict.fromkeys(fields, "")
        new.update(
            customer_id=f"NEW{i:03d}",
            email=f"new.customer{i}@example.com",
            first_name="New",
            last_name=f"Customer{i}",
            country="GB",
            loyalty_points="0",
            is_vip="false",
        )
        kept.append(new)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return changed, NEW_CONTACTS, REMOVED_CONTACTS


def main() -> int:
    console = Console()
    project_dir = create_project(DEMO_DIR / "shop").resolve()
    # The campaign the example's trigger sends, declared as `headwater sandbox --campaign
    # welcome-loyal=...` does (in Braze, it is created in the dashboard).
    with run_sandbox(
        db=str(DEMO_DIR / "sandbox.db"), key=DEMO_KEY, fresh=True, campaigns=[WELCOME]
    ) as sandbox:
        os.environ["BRAZE_URL"] = sandbox.url
        os.environ["BRAZE_API_KEY"] = DEMO_KEY
        console.rule("[bold]Headwater demo")
        console.print(f"Braze-compatible sandbox on {sandbox.url}; example shop in {project_dir}")
        project = load_project(project_dir)
        rejected: set[str] = set()
        for name in ("contacts", "orders", "rewards"):
            console.rule(f"first sync: {name}")
            report = run_sync(project, name)
            print_report(report, console)
            if name == "contacts":
                rejected = {str(error.row) for error in report.errors}

        changed, added, removed = edit_contacts(project_dir / "data" / "contacts.csv", rejected)
        console.rule("the CRM changes")
        console.print(
            f"{changed} contacts get new loyalty points, {added} are new, {removed} leave the CRM"
        )
        console.rule("second sync: contacts (only what changed is sent)")
        second = run_sync(load_project(project_dir), "contacts")
        print_report(second, console)

        people_audiences_and_triggers(console, project_dir, sandbox.url)
        exported = segments_back(console, project_dir, sandbox.url)

        counters = httpx.get(f"{sandbox.url}/_sandbox/counters", timeout=10).json()
        console.rule("what the sandbox saw")
        console.print_json(data=counters)
        console.print(
            f"\nTry it yourself: cd {project_dir} && BRAZE_URL=... BRAZE_API_KEY=... headwater runs"
        )
    ok = second.status in ("succeeded", "partial") and second.sent <= changed + added + removed
    return 0 if ok and exported else 1


def people_audiences_and_triggers(console: Console, project_dir: Path, url: str) -> None:
    """Resolve people, sync the ``loyal`` audience, and show the campaign its entries got."""
    from headwater.audiences import run_audience
    from headwater.identity import resolve

    project = load_project(project_dir)
    console.rule("identity: CRM contacts + newsletter sign-ups -> people")
    people = resolve(project, "people")
    console.print(
        f"{people.records:,} records -> {people.persons:,} people "
        f"({people.refused} shared value refused, {people.rejected} bad values kept out); "
        "tables people_persons, people_links, people_golden, people_refused in the warehouse"
    )
    console.rule("audience loyal: splits a 45 %, b 45 %, holdout 10 % -> AIQ_loyal_<split>")
    report = run_audience(project, "loyal")
    sizes = ", ".join(f"{split} {n}" for split, n in report.sizes.items())
    console.print(
        f"{report.added} entered ({sizes}); {report.sent} booleans sent, "
        f"{report.data_points} data points; status {report.status}"
    )
    sends = httpx.get(f"{url}/_sandbox/sends", timeout=10).json()["sends"]
    reached = sum(len(send["recipients"]) for send in sends)
    console.rule("trigger welcome_loyal: campaign on entry into split a")
    console.print(f"{len(sends)} /campaigns/trigger/send requests, {reached} people messaged once")
    if sends:
        first = sends[0]["recipients"][0]
        console.print("first recipient as the sandbox recorded it:", end=" ")
        console.print_json(data=first)


def segments_back(console: Console, project_dir: Path, url: str) -> bool:
    """A segment defined in the sandbox, exported and landed as Parquet, read by DuckDB."""
    import duckdb

    from headwater.exports import run_job

    httpx.post(
        f"{url}/_sandbox/segments",
        json={"name": "Loyal A", "filter": {"attribute": "AIQ_loyal_a", "equals": True}},
        timeout=10,
    ).raise_for_status()
    project = load_project(project_dir)
    console.rule("segment export: Braze -> Parquet under .headwater/landing")
    report = run_job(project, "segments")
    landing = project.landing_path / "segments"
    query = (
        "SELECT count(*) AS members, min(first_seen) AS since "
        f"FROM read_parquet('{landing}/*/history.parquet')"
    )
    [(members, since)] = duckdb.sql(query).fetchall()
    console.print(f"export {report.status}; DuckDB over the landed history: {members} members")
    console.print(f"[dim]{query}[/] -> since {since}", highlight=False)
    return report.status == "succeeded" and members > 0


if __name__ == "__main__":
    sys.exit(main())
