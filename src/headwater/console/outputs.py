"""The console's audiences and exports pages: what Headwater sends to Braze as audiences
(members per split and holdout, entries and exits run by run) and what it brings back
(segment exports landed as tables, Currents events landed per type, refused batches).

Everything shown comes from the state store through bounded, indexed reads (the runs of
a job through ``ix_runs_sync_started``; members per split as the last run left them in
``audience_sizes``), so the pages never wait on the warehouse. The one warehouse read,
an audience's latest stays from ``hw_audience_history``, is a fragment loaded after the
page, and a warehouse that cannot be read now (a DuckDB file another process holds)
becomes a note there."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from headwater.console import queries
from headwater.console.auth import Refused, Viewer
from headwater.console.pages import _int, guarded
from headwater.console.render import page
from headwater.runtime.hub import hub_of
from headwater.state.audiences import load_sizes
from headwater.state.currents import landed_stream, list_rejected, pending_by_receiver
from headwater.state.currents import rejected_counts as rejected_by_receiver

RECENT_STAYS = 20
REJECTED_SHOWN = 20
SEGMENT_JOB = "segments"  # headwater.exports.segments.JOB


def _audiences(hub) -> list[dict]:
    project = hub.project
    configured = dict(project.audiences) if project is not None else {}
    sizes = load_sizes(hub.engine)
    names = list(configured) + sorted(set(sizes) - set(configured))
    last = queries.last_runs(hub.engine, names)
    out = []
    for name in names:
        audience = configured.get(name)
        measured = sizes.get(name)
        out.append(
            {
                "name": name,
                "config": audience,
                "splits": _splits(audience, measured),
                "last": last.get(name),
                "measured": measured,
            }
        )
    return out


def _splits(audience, measured) -> list[dict]:
    """Each split (the holdout last) with its share and members as last measured."""
    members = measured.members if measured is not None else {}
    # groups() counts in hundredths of a percent (the slots' 0.01 % steps)
    shares = (
        {s: share / 100 for s, share in audience.groups().items()}
        if audience is not None
        else dict.fromkeys(members)
    )
    rows = [{"split": s, "share": share, "members": members.get(s)} for s, share in shares.items()]
    known = {r["split"] for r in rows}
    rows += [
        {"split": s, "share": None, "members": n} for s, n in members.items() if s not in known
    ]
    return rows


@guarded
async def audiences_page(request: Request, viewer: Viewer) -> Response:
    audiences = await asyncio.to_thread(_audiences, hub_of(request))
    return page("audiences.html", viewer, audiences=audiences)


def _audience_name(request: Request) -> str:
    name = request.path_params["name"]
    hub = hub_of(request)
    project = hub.project
    if project is not None and name in project.audiences:
        return name
    if name in load_sizes(hub.engine) or queries.last_runs(hub.engine, [name]):
        return name
    raise Refused(404, f"no audience named {name!r}")


@guarded
async def audience_page(request: Request, viewer: Viewer) -> Response:
    hub = hub_of(request)
    name = await asyncio.to_thread(_audience_name, request)
    number = _int(request, "page")

    def read():
        audience = hub.project.audiences.get(name) if hub.project is not None else None
        return (
            audience,
            _splits(audience, load_sizes(hub.engine).get(name)),
            queries.chart_data(hub.engine, name),
            queries.runs_page(hub.engine, name, number),
        )

    audience, splits, chart, history = await asyncio.to_thread(read)
    return page(
        "audience.html", viewer, name=name, audience=audience, splits=splits, chart=chart,
        runs=history,
    )  # fmt: skip


@guarded
async def audience_stays(request: Request, viewer: Viewer) -> Response:
    """The audience's latest stays, from the warehouse's ``hw_audience_history``."""
    hub = hub_of(request)
    name = await asyncio.to_thread(_audience_name, request)
    stays, note = [], None
    if hub.project is None or name not in hub.project.audiences:
        note = "This server's project does not define this audience."
    else:
        from headwater.audiences.views import history

        try:
            stays = await asyncio.to_thread(history, hub.project, name, None, RECENT_STAYS)
        except Exception as exc:  # a warehouse busy or down: say so, keep the page
            note = f"The warehouse cannot be read now ({type(exc).__name__})."
    return page("audience_stays.html", viewer, stays=stays, note=note)


def _exports(hub) -> dict:
    engine = hub.engine
    segments, note = [], None
    if hub.project is not None and hub.project.exports.segments is not None:
        from headwater.exports.landing import table_name
        from headwater.exports.segments_land import read_segments

        try:
            segments = [
                {**row, "table": table_name(str(row["name"]), "segment_")}
                for row in read_segments(hub.project.landing_path)
            ]
        except Exception as exc:  # a file being replaced, a damaged file: say so
            note = f"The segments table cannot be read now ({type(exc).__name__})."
    counters = hub.counters.read()
    pending = pending_by_receiver(engine)
    refused = rejected_by_receiver(engine)
    receivers = []
    for name in hub.settings.currents:
        landed = counters.get(landed_stream(name), {})
        receivers.append(
            {
                "name": name,
                "landed": {k.split(":", 1)[1]: v for k, v in sorted(landed.items())},
                "pending": pending.get(name, 0),
                "rejected": refused.get(name, 0),
            }
        )
    return {
        "runs": queries.runs_page(engine, SEGMENT_JOB, 1),
        "chart": queries.chart_data(engine, SEGMENT_JOB),
        "segments": segments,
        "segments_note": note,
        "configured": hub.project is not None and hub.project.exports.segments is not None,
        "receivers": receivers,
        "rejected": list_rejected(engine, None, REJECTED_SHOWN),
    }


@guarded
async def exports_page(request: Request, viewer: Viewer) -> Response:
    data = await asyncio.to_thread(_exports, hub_of(request))
    return page("exports.html", viewer, segment_job=SEGMENT_JOB, **data)
