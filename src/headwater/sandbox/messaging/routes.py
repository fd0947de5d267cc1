"""Thin routes for the messaging side: trigger sends, campaign and canvas lists,
subscription states, and the two renames (alias, external id) and segment details that
a messaging workflow leans on. Parse with the contract, call a backend, answer."""

from __future__ import annotations

from fastapi import APIRouter, Request

from headwater.braze.errors import BrazeError
from headwater.braze.messaging import CAMPAIGN, CANVAS, parse_trigger_send
from headwater.sandbox.gate import handle
from headwater.sandbox.messaging.schemas import body_of
from headwater.sandbox.users.renames import users_alias_update, users_external_ids_rename

router = APIRouter(tags=["messaging"])


def _send_route(kind, path: str):
    @router.post(path, openapi_extra=body_of(kind.endpoint), status_code=201, name=kind.endpoint)
    async def endpoint(request: Request):
        messaging = request.app.state.sandbox.messaging

        def work(body, key):
            return messaging.trigger_send(parse_trigger_send(body, kind), key.name)

        return await handle(request, kind.endpoint, work)

    return endpoint


_send_route(CAMPAIGN, "/campaigns/trigger/send")
_send_route(CANVAS, "/canvas/trigger/send")


def _list_route(kind: str, name: str, path: str):
    @router.get(path, name=name)
    async def endpoint(
        request: Request,
        page: str = "0",
        include_archived: str = "false",
        sort_direction: str = "asc",
    ):
        messaging = request.app.state.sandbox.messaging
        return await handle(request, name, lambda params, _key: messaging.listing(kind, params))

    return endpoint


_list_route("campaign", "campaigns.list", "/campaigns/list")
_list_route("canvas", "canvas.list", "/canvas/list")


@router.post(
    "/subscription/status/set",
    openapi_extra=body_of("subscription.status.set"),
    status_code=201,
)
async def subscription_status_set(request: Request):
    messaging = request.app.state.sandbox.messaging
    return await handle(
        request,
        "subscription.status.set",
        lambda body, _key: messaging.subscription_status_set(body),
    )


@router.post("/users/alias/update", openapi_extra=body_of("users.alias.update"), status_code=201)
async def alias_update(request: Request):
    users = request.app.state.sandbox.users
    return await handle(
        request, "users.alias.update", lambda body, _key: users_alias_update(users, body)
    )


@router.post(
    "/users/external_ids/rename",
    openapi_extra=body_of("users.external_ids.rename"),
    status_code=201,
)
async def external_ids_rename(request: Request):
    users = request.app.state.sandbox.users
    return await handle(
        request,
        "users.external_ids.rename",
        lambda body, _key: users_external_ids_rename(users, body),
    )


@router.get("/segments/details")
async def segments_details(request: Request, segment_id: str | None = None):
    """Braze answers with the segment's name, description and tags."""
    store = request.app.state.sandbox.store

    def work(params, _key):
        wanted = params.get("segment_id")
        if not isinstance(wanted, str) or not wanted:
            raise BrazeError(400, "'segment_id' is required")
        for segment in store.segments():
            if segment.get("id") == wanted:
                return {
                    "message": "success",
                    "created_at": segment.get("created_at", ""),
                    "updated_at": segment.get("updated_at", segment.get("created_at", "")),
                    "name": segment.get("name", ""),
                    "description": segment.get("description", ""),
                    "text_description": segment.get("text_description", ""),
                    "tags": segment.get("tags", []),
                    "teams": segment.get("teams", []),
                }
        raise BrazeError(400, "Invalid segment_id")

    return await handle(request, "segments.details", work)
