"""Thin routes for the user-data endpoints: parse with the contract, call the backend."""

from __future__ import annotations

from fastapi import APIRouter, Request

from headwater.braze.track import parse_track_request
from headwater.sandbox.gate import handle
from headwater.sandbox.schemas import body_of

router = APIRouter(tags=["users"])


@router.post("/users/track", openapi_extra=body_of("users.track"), status_code=201)
async def users_track(request: Request):
    sandbox = request.app.state.sandbox

    def work(body, key):
        parsed = parse_track_request(
            body,
            policy=sandbox.settings.batch_policy,
            max_array_items=sandbox.settings.max_array_items,
        )
        sandbox.users.users_track(parsed, key.name)
        return parsed.response()[1]

    return await handle(request, "users.track", work)


def _simple(name: str, path: str, method_name: str, status: int):
    @router.post(path, openapi_extra=body_of(name), status_code=status, name=name)
    async def endpoint(request: Request):
        backend = request.app.state.sandbox.users
        return await handle(request, name, lambda body, _key: getattr(backend, method_name)(body))

    return endpoint


_simple("users.export.ids", "/users/export/ids", "users_export_ids", 201)
_simple("users.alias.new", "/users/alias/new", "users_alias_new", 201)
_simple("users.identify", "/users/identify", "users_identify", 201)
_simple("users.delete", "/users/delete", "users_delete", 201)
_simple("users.merge", "/users/merge", "users_merge", 202)


# Served through headwater.fastpath (sandbox/app.py): a quarter less CPU per request on the
# sandbox's hottest path (bench/sandbox_track.py). The route above stays for the OpenAPI
# document and as the fallback.
FAST_ROUTES = {("POST", "/users/track"): users_track}
