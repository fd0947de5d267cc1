"""``/_sandbox/campaigns``, ``/_sandbox/canvases``: declare what trigger sends may target
(Braze refuses unknown ids), and list them with what was sent to them."""

from __future__ import annotations

from fastapi import APIRouter, Body, HTTPException, Request

from headwater.sandbox.control import _sandbox

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


def _declare(request: Request, kind: str, body: object) -> dict:
    messaging = _sandbox(request).messaging
    items = body if isinstance(body, list) else [body]
    try:
        return {"declared": [messaging.put(kind, item) for item in items]}
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


@router.post("/campaigns")
async def declare_campaigns(request: Request, body: object = Body(...)):
    """``{"id"?, "name", "tags"?, "api"?: true, "status"?}``, or a list of them."""
    return _declare(request, "campaign", body)


@router.post("/canvases")
async def declare_canvases(request: Request, body: object = Body(...)):
    """As campaigns; ``status`` paused/stopped/archived makes sends carry Braze's notice."""
    return _declare(request, "canvas", body)


@router.get("/campaigns")
async def campaigns(request: Request):
    return {"campaigns": _sandbox(request).messaging.catalog("campaign")}


@router.get("/canvases")
async def canvases(request: Request):
    return {"canvases": _sandbox(request).messaging.catalog("canvas")}


@router.get("/sends/{dispatch_id}")
async def send(request: Request, dispatch_id: str):
    for recorded in _sandbox(request).messaging.sends():
        if recorded.get("dispatch_id") == dispatch_id:
            return recorded
    raise HTTPException(404, f"no send with dispatch_id {dispatch_id!r}")
