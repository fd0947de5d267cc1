"""The one table of Braze endpoints: path, method, permission, success status, default
rate budget and per-request item cap. (API-triggered sends get the 250 requests/minute
Braze documents for broadcast and audience sends: the stricter of its two figures.) The sandbox, the gateway, the client's rate governor
and docs/sandbox-coverage.md are all generated from it."""

from __future__ import annotations

from dataclasses import dataclass

MINUTE_SECONDS = 60
HOUR_SECONDS = 3600


@dataclass(frozen=True)
class Endpoint:
    name: str  # Braze's permission name for the endpoint, dotted like the path
    method: str
    path: str
    success_status: int
    rate_bucket: str  # endpoints sharing a budget share a bucket name
    rate_limit: int  # requests per window, Braze's documented default
    rate_window_seconds: int
    max_items: int | None = None
    implemented: bool = False  # whether the sandbox serves it


def _e(name, method, path, status, bucket, limit, window, max_items=None, implemented=False):
    return Endpoint(name, method, path, status, bucket, limit, window, max_items, implemented)


_ALL = [
    _e("users.track", "POST", "/users/track", 201, "users.track", 3000, 3, 75, True),
    _e("users.track.sync", "POST", "/users/track/sync", 201, "users.track.sync", 500, 60, 1),
    _e("users.track.bulk", "POST", "/users/track/bulk", 201, "users.track.bulk", 50, 1, 1000),
    _e("users.export.ids", "POST", "/users/export/ids", 201, "users.export.ids", 250, 60, 50, True),
    _e("users.alias.new", "POST", "/users/alias/new", 201, "users.identity", 20000, 60, 50, True),
    _e(
        "users.alias.update",
        "POST",
        "/users/alias/update",
        201,
        "users.identity",
        20000,
        60,
        50,
        True,
    ),
    _e("users.identify", "POST", "/users/identify", 201, "users.identity", 20000, 60, 50, True),
    _e("users.delete", "POST", "/users/delete", 201, "users.identity", 20000, 60, 50, True),
    _e("users.merge", "POST", "/users/merge", 202, "users.identity", 20000, 60, 50, True),
    _e(
        "users.external_ids.rename",
        "POST",
        "/users/external_ids/rename",
        201,
        "users.external_ids.rename",
        1000,
        60,
        50,
        True,
    ),
    _e(
        "users.external_ids.remove",
        "POST",
        "/users/external_ids/remove",
        201,
        "users.external_ids.remove",
        1000,
        60,
        50,
    ),
    _e(
        "users.export.segment",
        "POST",
        "/users/export/segment",
        201,
        "default",
        250000,
        3600,
        None,
        True,
    ),
    _e(
        "users.export.global_control_group",
        "POST",
        "/users/export/global_control_group",
        201,
        "default",
        250000,
        3600,
    ),
    _e("segments.list", "GET", "/segments/list", 200, "default", 250000, 3600, None, True),
    _e("segments.details", "GET", "/segments/details", 200, "default", 250000, 3600, None, True),
    _e("segments.data_series", "GET", "/segments/data_series", 200, "default", 250000, 3600),
    _e(
        "campaigns.trigger.send",
        "POST",
        "/campaigns/trigger/send",
        201,
        "messaging",
        250,
        60,
        50,
        True,
    ),
    _e("canvas.trigger.send", "POST", "/canvas/trigger/send", 201, "messaging", 250, 60, 50, True),
    _e("messages.send", "POST", "/messages/send", 201, "messaging", 250, 60, 50),
    _e(
        "subscription.status.set",
        "POST",
        "/subscription/status/set",
        201,
        "subscription.status.set",
        5000,
        60,
        50,
        True,
    ),
    _e(
        "subscription.status.set.v2",
        "POST",
        "/v2/subscription/status/set",
        201,
        "subscription.status.set",
        5000,
        60,
        50,
    ),
    _e("events.list", "GET", "/events/list", 200, "catalog", 1000, 3600),
    _e("purchases.product_list", "GET", "/purchases/product_list", 200, "catalog", 1000, 3600),
    _e("campaigns.list", "GET", "/campaigns/list", 200, "default", 250000, 3600, None, True),
    _e("canvas.list", "GET", "/canvas/list", 200, "default", 250000, 3600, None, True),
    _e("cdi.integration_list", "GET", "/cdi/integrations", 200, "cdi.integrations", 50, 60),
]

ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in _ALL}
_BY_ROUTE: dict[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in _ALL}

PERMISSIONS: tuple[str, ...] = (
    "users.track", "users.track.sync", "users.track.bulk", "users.delete", "users.alias.new",
    "users.alias.update", "users.identify", "users.merge", "users.export.ids",
    "users.export.segment", "users.export.global_control_group", "users.external_ids.rename",
    "users.external_ids.remove", "segments.list", "segments.details", "segments.data_series",
    "campaigns.trigger.send", "canvas.trigger.send", "campaigns.trigger.schedule.create",
    "campaigns.trigger.schedule.update", "campaigns.trigger.schedule.delete",
    "canvas.trigger.schedule.create", "canvas.trigger.schedule.update",
    "canvas.trigger.schedule.delete", "messages.send", "messages.schedule.create",
    "messages.schedule.update", "messages.schedule.delete", "subscription.status.set",
    "subscription.status.get", "subscription.groups.get", "events.list",
    "purchases.product_list", "campaigns.list", "canvas.list", "sends.id.create",
    "cdi.integration_sync", "cdi.integration_job_status",
)  # fmt: skip


def permission_for(endpoint: Endpoint) -> str:
    """The key permission an endpoint needs (v2 subscription shares v1's permission)."""
    return endpoint.name.removesuffix(".v2")


def endpoint_for(method: str, path: str) -> Endpoint | None:
    return _BY_ROUTE.get((method.upper(), "/" + path.strip("/")))
