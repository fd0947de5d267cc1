"""``GET /segments/list``: 100 per page, oldest first by default, archived ones left out."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from headwater.braze.errors import BrazeError
from headwater.sandbox.gate import handle

router = APIRouter(tags=["segments"])
SEGMENTS_PER_PAGE = 100


@router.get("/segments/list")
async def segments_list(
    request: Request,
    page: str = Query("0", description="0-based page of 100 segments"),
    sort_direction: str = Query("asc", description="asc (oldest first) or desc"),
):
    store = request.app.state.sandbox.store

    def work(_params, _key):
        if not (page.isascii() and page.isdigit()):
            raise BrazeError(400, "'page' must be a non-negative integer")
        if sort_direction not in ("asc", "desc"):
            raise BrazeError(400, "'sort_direction' must be asc or desc")
        segments = [s for s in store.segments() if not s.get("archived")]
        if sort_direction == "desc":
            segments.reverse()
        start = int(page) * SEGMENTS_PER_PAGE
        listed = [
            {k: s[k] for k in ("id", "name", "analytics_tracking_enabled", "tags") if k in s}
            for s in segments[start : start + SEGMENTS_PER_PAGE]
        ]
        return {"message": "success", "segments": listed}

    return await handle(request, "segments.list", work)
