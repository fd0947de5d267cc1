"""The console's queries on SQLite and PostgreSQL: job names by a loose index scan, last
runs, history pages, chart columns, row errors by keyset and row-key prefix, CSV."""

from __future__ import annotations

from headwater.console import queries
from headwater.state import runs
from headwater.state.db import open_state


def test_queries_on_both_stores(state_url):
    engine = open_state(state_url)
    queries.ensure_indexes(engine)
    queries.ensure_indexes(engine)  # idempotent
    for name in ("b_sync", "a_sync", "b_sync"):
        run_id = runs.start_run(engine, name)
        runs.finish_run(engine, run_id, added=3, data_points=9)
    runs.add_row_errors(engine, run_id, [(f"k{n:03d}", "email", f"bad {n}") for n in range(250)]
                        + [("K100", "email", "upper"), ("k1%", "x", "literal percent")])  # fmt: skip
    assert queries.job_names(engine, ["z_configured"]) == ["z_configured", "a_sync", "b_sync"]
    assert queries.last_runs(engine, ["b_sync", "nope"])["b_sync"].id == run_id
    page = queries.runs_page(engine, "b_sync")
    assert [r.id for r in page.items] == [run_id, run_id - 2] and not page.has_next
    chart = queries.chart_data(engine, "b_sync")
    assert chart["added"] == [3, 3] and len(chart["x"]) == 2
    first = queries.errors_page(engine, run_id)
    assert len(first.items) == 100 and first.has_next
    second = queries.errors_page(engine, run_id, after=first.number)
    assert second.items[0].row_key == "k100"
    found = queries.errors_page(engine, run_id, "k10")
    assert [e.row_key for e in found.items] == [f"k10{n}" for n in range(10)]
    assert [e.row_key for e in queries.errors_page(engine, run_id, "k1%").items] == ["k1%"]
    csv_text = "".join(queries.errors_csv(engine, run_id))
    assert csv_text.count("\n") == 253 and csv_text.startswith("row_key,field,reason")
    engine.dispose()
