"""``/_sandbox/*``: look inside and steer the sandbox (moto's moto-api): users with their
events and purchases, counters, reset, seed, rate budgets, faults and recorded sends.

With ``control_token`` set, every call needs that Bearer token. Without one, only callers
on this machine (loopback) are answered: a sandbox listening on ``0.0.0.0`` must not let
the whole network read its users, reset them or inject faults.
"""

from __future__ import annotations

import hmac
import ipaddress
import uuid
from datetime import UTC, datetime

from fastapi import APIRouter, Body, HTTPException, Query, Request

from headwater.bearer import bearer_token
from headwater.braze.errors import BrazeError
from headwater.braze.limits import MAX_OBJECTS_PER_REQUEST, TRACK_ARRAYS, BatchPolicy
from headwater.braze.track import parse_track_request
from headwater.sandbox.segments.filters import FilterError, check_filter

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


NEEDS_TOKEN = "this sandbox's control API needs its control token"
LOOPBACK_ONLY = (
    "this sandbox's control API answers only callers on its own machine; start it with "
    "--control-token (or HEADWATER_SANDBOX_CONTROL_TOKEN) to reach it from elsewhere"
)


def _sandbox(request: Request):
    sandbox = request.app.state.sandbox
    token = sandbox.settings.control_token
    if token:
        presented = bearer_token(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise HTTPException(401, NEEDS_TOKEN)
    elif not is_loopback(request.client.host if request.client else None):
        raise HTTPException(403, LOOPBACK_ONLY)
    return sandbox


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a peer's address, or a listening address) is this machine only.
    No address at all is a Unix socket: local too."""
    if host is None:
        return True
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


@router.get("/users")
async def list_users(
    request: Request, limit: int = Query(100, ge=1, le=10000), offset: int = Query(0, ge=0)
):
    sandbox = _sandbox(request)
    return {"total": len(sandbox.users.profiles), "users": sandbox.users.list_users(limit, offset)}


@router.get("/users/{identifier}")
async def get_user(request: Request, identifier: str):
    user = _sandbox(request).users.get_user(identifier)
    if user is None:
        raise HTTPException(404, f"no user with external_id or braze_id {identifier!r}")
    return user


@router.get("/counters")
async def counters(request: Request):
    sandbox = _sandbox(request)
    stored = sandbox.store.counters()
    activity = sandbox.store.count_activity()
    return {
        "users": len(sandbox.users.profiles),
        "events": activity.get("event", 0),
        "purchases": activity.get("purchase", 0),
        "data_points": sum(stored.get("data_points_by_key", {}).values()),
        "data_points_by_key": stored.get("data_points_by_key", {}),
        "data_points_by_attribute": stored.get("data_points_by_attribute", {}),
        "requests": stored.get("requests", {}),
    }


@router.post("/reset")
async def reset(request: Request):
    sandbox = _sandbox(request)
    sandbox.store.reset(keep_keys=True)
    sandbox.users.reset()
    sandbox.limiter.windows.clear()
    if sandbox.segment_exports is not None:
        sandbox.segment_exports.reset()
    return {"message": "reset"}


@router.post("/seed")
async def seed(request: Request, body: dict = Body(...)):
    """Load users without spending rate budget: ``{"attributes": [...], "events": [...],
    "purchases": [...], "segments": [{id, name, tags?}]}``."""
    sandbox = _sandbox(request)
    segments = body.pop("segments", None) or []
    if not isinstance(segments, list):
        raise HTTPException(400, "'segments' must be an array of objects")
    for segment in segments:
        if not isinstance(segment, dict) or not isinstance(segment.get("id"), str):
            raise HTTPException(400, "each segment needs a string 'id'")
        _check_segment_filter(segment)
        sandbox.store.put_segment(
            {"analytics_tracking_enabled": False, "tags": [], **segment},
            datetime.now(UTC).isoformat(),
        )
    seeded = 0
    arrays = {k: body.get(k) for k in TRACK_ARRAYS if body.get(k)}
    for name, objects in arrays.items():
        if not isinstance(objects, list):
            raise HTTPException(400, f"'{name}' must be an array of objects")
        # Seeding has no 75-object cap: apply in request-sized chunks.
        for start in range(0, len(objects), MAX_OBJECTS_PER_REQUEST):
            chunk = {name: objects[start : start + MAX_OBJECTS_PER_REQUEST]}
            try:
                parsed = parse_track_request(
                    chunk, policy=BatchPolicy.PER_KIND, max_array_items=10**6
                )
            except BrazeError as exc:
                detail = exc.body()
                for error in detail.get("errors", []):
                    error["index"] += start
                raise HTTPException(400, detail) from None
            sandbox.users.users_track(parsed, "(seed)")
            seeded += parsed.valid_count
    return {"seeded": seeded, "segments": len(segments)}


def _check_segment_filter(segment: dict) -> None:
    try:
        check_filter(segment.get("filter"))
    except FilterError as exc:
        raise HTTPException(400, f"segment {str(segment.get('name'))[:100]!r}: {exc}") from None


@router.get("/segments")
async def list_segments(request: Request):
    return {"segments": _sandbox(request).store.segments()}


@router.post("/segments")
async def define_segment(request: Request, body: dict = Body(...)):
    """``{"name": "VIPs", "filter": {"attribute": "tier", "equals": "gold"}, "id"?, "tags"?}``
    (filters: ``headwater.sandbox.segments.filters``); the same id replaces the segment."""
    sandbox = _sandbox(request)
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise HTTPException(400, "a segment needs a 'name'")
    segment_id = body.get("id", str(uuid.uuid4()))
    if not isinstance(segment_id, str) or not segment_id or len(segment_id) > 200:
        raise HTTPException(400, "'id' must be a string of 1-200 characters")
    for name in ("tags",):
        if name in body and not (
            isinstance(body[name], list) and all(isinstance(t, str) for t in body[name])
        ):
            raise HTTPException(400, f"'{name}' must be an array of strings")
    unknown = set(body) - {"id", "name", "filter", "tags", "analytics_tracking_enabled"}
    if unknown:
        raise HTTPException(400, f"unknown segment keys: {sorted(unknown)[:10]}")
    _check_segment_filter(body)
    segment = {"analytics_tracking_enabled": False, "tags": [], **body, "id": segment_id}
    sandbox.store.put_segment(segment, datetime.now(UTC).isoformat())
    return segment


@router.get("/faults")
async def get_faults(request: Request):
    return vars(_sandbox(request).settings.faults)


@router.post("/faults")
async def set_faults(request: Request, body: dict = Body(...)):
    """Any of rate_429, rate_5xx, drop_rate (shares 0..1), latency_ms, export_lag_seconds."""
    faults = _sandbox(request).settings.faults
    try:
        faults.update(body)
    except (ValueError, TypeError) as exc:
        raise HTTPException(400, str(exc)) from None
    return vars(faults)


@router.get("/rate_limits")
async def get_rate_limits(request: Request):
    return {b: vars(v) for b, v in _sandbox(request).limiter.budgets.items()}


@router.post("/rate_limits")
async def set_rate_limits(request: Request, body: dict = Body(...)):
    """``{"users.track": {"limit": 10, "window_seconds": 1}}`` (bucket names as in GET)."""
    limiter = _sandbox(request).limiter
    for bucket, budget in body.items():
        if bucket not in limiter.budgets or not isinstance(budget, dict):
            raise HTTPException(400, f"unknown rate bucket {bucket!r}")
        try:
            limiter.set_budget(bucket, int(budget["limit"]), float(budget["window_seconds"]))
        except (KeyError, ValueError, TypeError, OverflowError) as exc:
            raise HTTPException(
                400, f"{bucket}: needs limit >= 1 and window_seconds > 0 ({exc})"
            ) from None
    return {b: vars(v) for b, v in limiter.budgets.items()}


@router.get("/sends")
async def sends(request: Request):
    return {"sends": _sandbox(request).store.sends()}
