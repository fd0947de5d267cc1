"""Connected components in SQL, inside the engine that holds the graph.

The graph is bipartite: records (``_rid``) and key values (``vid``), both integers. Every
record starts labelled with its own id; a round gives each value the smallest label among
its records, then each record the smallest label among its values, jumping once through
the label's own label (pointer jumping halves the remaining distance). Only values touching
a record whose label changed last round are looked at again, so converged clusters drop
out of the work (Splink's approach, ``splink/internals/connected_components.py``). The loop
ends at the fixed point, where every record holds the smallest record id of its component;
``max_iterations`` guards it. No ``WITH RECURSIVE``: it has no such frontier and runs
warehouses out of memory on large graphs.

Plain SQL (CREATE TABLE AS, joins, GROUP BY, UPDATE ... FROM): no UDFs, so it ports.
"""

from __future__ import annotations

from collections.abc import Callable

from headwater.engines import Engine
from headwater.errors import FatalError
from headwater.identity.dialect import analyze, count


def connected_components(
    engine: Engine,
    edges: str,
    out: str,
    *,
    max_iterations: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Label every record of ``edges`` (_rid, vid) with its component's smallest _rid, in
    table ``out`` (_rid, lbl). Return the number of rounds."""
    run = engine.execute
    run(f"DROP TABLE IF EXISTS {out}")
    run(f"CREATE TEMP TABLE {out} AS SELECT DISTINCT _rid, _rid AS lbl FROM {edges}")
    analyze(engine, out)
    run("DROP TABLE IF EXISTS __hw_cc_frontier")
    run(f"CREATE TEMP TABLE __hw_cc_frontier AS SELECT _rid FROM {out}")
    analyze(engine, "__hw_cc_frontier")
    total = count(engine, out)
    rounds = 0
    while True:
        rounds += 1
        if rounds > max_iterations:
            raise FatalError(
                f"connected components did not settle in {max_iterations} rounds; "
                "raise identity.max_iterations"
            )
        for table in ("__hw_cc_vm", "__hw_cc_upd"):
            run(f"DROP TABLE IF EXISTS {table}")
        if rounds == 1:  # every record is its own label and on the frontier: no joins
            run(
                f"CREATE TEMP TABLE __hw_cc_vm AS SELECT vid, MIN(_rid) AS m FROM {edges} GROUP BY vid"
            )
        else:
            run(
                "CREATE TEMP TABLE __hw_cc_vm AS SELECT e.vid, MIN(l.lbl) AS m "
                f"FROM {edges} AS e JOIN {out} AS l ON l._rid = e._rid "
                f"WHERE e.vid IN (SELECT f.vid FROM {edges} AS f "
                "JOIN __hw_cc_frontier AS c ON c._rid = f._rid) GROUP BY e.vid"
            )
        analyze(engine, "__hw_cc_vm")  # PostgreSQL plans the next join from real counts
        run(
            "CREATE TEMP TABLE __hw_cc_upd AS SELECT c._rid, "
            "CASE WHEN j.lbl < c.m THEN j.lbl ELSE c.m END AS lbl FROM "
            f"(SELECT e._rid, MIN(v.m) AS m FROM {edges} AS e JOIN __hw_cc_vm AS v "
            "ON v.vid = e.vid GROUP BY e._rid) AS c "
            f"JOIN {out} AS o ON o._rid = c._rid JOIN {out} AS j ON j._rid = c.m "
            "WHERE c.m < o.lbl OR j.lbl < o.lbl"
        )
        changed = engine.fetch_all("SELECT COUNT(*) FROM __hw_cc_upd")[0][0]
        if progress is not None:
            progress(rounds, int(changed))
        if not changed:
            break
        if changed * 4 > total:  # most labels change (the first round): a new table is cheaper
            run("DROP TABLE IF EXISTS __hw_cc_next")
            run(
                f"CREATE TEMP TABLE __hw_cc_next AS SELECT o._rid, COALESCE(u.lbl, o.lbl) AS lbl "
                f"FROM {out} AS o LEFT JOIN __hw_cc_upd AS u ON u._rid = o._rid"
            )
            run(f"DROP TABLE {out}")
            run(f"ALTER TABLE __hw_cc_next RENAME TO {out}")
            analyze(engine, out)
        else:
            run(f"UPDATE {out} SET lbl = u.lbl FROM __hw_cc_upd AS u WHERE {out}._rid = u._rid")
        run("DROP TABLE __hw_cc_frontier")
        run("CREATE TEMP TABLE __hw_cc_frontier AS SELECT _rid FROM __hw_cc_upd")
        analyze(engine, "__hw_cc_frontier")
    for table in ("__hw_cc_vm", "__hw_cc_upd", "__hw_cc_frontier"):
        run(f"DROP TABLE IF EXISTS {table}")
    return rounds
