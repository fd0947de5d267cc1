"""Two persons both synced to Braze merge: Braze gets /users/merge once (a real sandbox on
a real socket), the older person's external id kept; off unless the model asks for it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from headwater.config import load_project
from headwater.models.model import open_warehouse
from headwater.syncs.engine import run_sync
from headwater.syncs.merges import send_merges
from tests.identity.test_sync_and_cli import sandbox, write_project  # noqa: F401

LINK = "o3,bob@example.com,+33 6 12 34 56 78,Robert\n"  # links Bob (p_2) and Zoe (p_3)


def opt_in(root: Path, on: bool = True) -> None:
    path = root / "headwater.yml"
    text = path.read_text().replace(
        "      keys: {email:", f"      merge_in_braze: {str(on).lower()}\n      keys: {{email:", 1
    )
    path.write_text(text)


def ledger(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / ".headwater" / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT destination, merge_external_id, keep_external_id, survivor, merged "
            "FROM people__hw_braze_merges"
        ).fetchall()
    finally:
        con.close()


def test_a_merge_of_two_synced_persons_is_sent_to_braze_once(tmp_path, sandbox):  # noqa: F811
    root = write_project(tmp_path, sandbox.url, sandbox.key)
    opt_in(root)
    first = run_sync(load_project(root), "people_to_braze")
    assert (first.status, first.sent) == ("succeeded", 3)
    assert sandbox.user("p_2") is not None and sandbox.user("p_3") is not None
    with (root / "shop.csv").open("a") as shop:
        shop.write(LINK)
    second = run_sync(load_project(root), "people_to_braze")
    assert second.status == "succeeded", second.error
    assert ledger(root) == [("braze", "p_3", "p_2", "p_2", "p_3")]
    assert sandbox.user("p_3") is None  # folded into the older person
    kept = sandbox.user("p_2")
    assert kept is not None
    assert (kept["first_name"], kept["phone"]) == ("Bob", "+33612345678")
    # Sent once: a later run, or sending again, finds nothing left to send.
    run_sync(load_project(root), "people_to_braze")
    engine = open_warehouse(load_project(root))
    try:
        assert send_merges(load_project(root), "people", engine).sent == 0
    finally:
        engine.close()
    assert len(ledger(root)) == 1


def test_merges_stay_out_of_braze_unless_the_model_asks(tmp_path, sandbox):  # noqa: F811
    root = write_project(tmp_path, sandbox.url, sandbox.key)
    run_sync(load_project(root), "people_to_braze")
    with (root / "shop.csv").open("a") as shop:
        shop.write(LINK)
    run_sync(load_project(root), "people_to_braze")
    assert sandbox.user("p_3") is not None
