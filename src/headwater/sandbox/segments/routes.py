"""``GET /segments/list`` (100 per page, oldest first by default, archived ones left out)
and ``POST /users/export/segment`` with its download link."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from headwater.braze.errors import BrazeError
from headwater.braze.frontdoor import json_response
from headwater.braze.segment_export import KEY_PREFIX
from headwater.sandbox.gate import handle
from headwater.sandbox.schemas import body_of

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


@router.post(
    "/users/export/segment",
    openapi_extra=body_of("users.export.segment"),
    status_code=201,
    name="users.export.segment",
)
async def users_export_segment(request: Request):
    """Answers at once with ``object_prefix`` and ``url``; the files follow (see
    ``headwater.sandbox.segments.exports``)."""
    exports = request.app.state.sandbox.segment_exports
    base_url = str(request.base_url)
    return await handle(
        request, "users.export.segment", lambda body, _key: exports.start(body, base_url)
    )


@router.get(f"/{KEY_PREFIX}/{{key:path}}", include_in_schema=False)
async def segment_export_file(request: Request, key: str, token: str | None = None):
    """The export's download link: presigned-style (the token is the credential, no API
    key), 404 until the export is ready, as a bucket's not-yet-written key."""
    path = request.app.state.sandbox.segment_exports.file_for(token)
    if path is None:
        return json_response(404, {"message": "The export is not ready, or the link expired"})
    return FileResponse(path, media_type="application/zip", filename=key.rsplit("/", 1)[-1])
