"""``POST /users/export/segment``: what the request holds, what the answer and the files
look like. One module for both sides: the sandbox writes files in this shape, the
exporter reads them.

Braze's rules (braze-docs ``post_users_segment.md``, export FAQ): ``segment_id`` and
``fields_to_export`` are required; ``callback_endpoint`` gets a POST ``{"success": true}``
(plus ``url`` when no bucket is configured) once the export is ready; the answer is
``{"message", "object_prefix", "url"?}`` where ``url`` only becomes valid when the export
is ready. The files are newline-delimited JSON, one user object per line, roughly one file
per 5,000 users, zipped (``.zip``) or gzipped (``.gz``, own bucket only). A user may rarely
appear twice. Bucket keys look like
``segment-export/<SEGMENT_ID>/<YYYY-MM-dd>/<RANDOM_UUID>-<TIMESTAMP>/<random>.zip`` with
the timestamp in seconds since 2017-01-01.
"""

from __future__ import annotations

from datetime import UTC, datetime

from headwater.braze.errors import BrazeError
from headwater.braze.profile import EXPORT_FIELDS, EXPORT_ORDER

USERS_PER_FILE = 5000
OUTPUT_FORMATS = ("zip", "gzip")
BRAZE_EPOCH = datetime(2017, 1, 1, tzinfo=UTC)  # the object prefix counts seconds from here
KEY_PREFIX = "segment-export"

# What Headwater asks for out of the box: who the user is, how to reach them and their
# custom attributes; the heavy lists (events, purchases, devices, campaigns) are opt-in.
DEFAULT_FIELDS: tuple[str, ...] = (
    "braze_id",
    "external_id",
    "user_aliases",
    "first_name",
    "last_name",
    "email",
    "phone",
    "country",
    "language",
    "time_zone",
    "email_subscribe",
    "push_subscribe",
    "created_at",
    "random_bucket",
    "custom_attributes",
)
# Every member is keyed by it (landing is idempotent on (segment, braze_id)).
KEY_FIELD = "braze_id"


def known_field(name: str) -> bool:
    return name in EXPORT_FIELDS


def ordered_fields(fields: set[str] | list[str]) -> list[str]:
    """Fields in Braze's export order (stable requests, stable columns)."""
    wanted = set(fields)
    return [f for f in EXPORT_ORDER if f in wanted]


def object_prefix(request_uuid: str, started: datetime) -> str:
    """``<uuid>-<seconds since 2017-01-01>``, as Braze names an export's files."""
    return f"{request_uuid}-{int((started - BRAZE_EPOCH).total_seconds())}"


def export_key(segment_id: str, prefix: str, day: datetime, name: str) -> str:
    return f"{KEY_PREFIX}/{segment_id}/{day:%Y-%m-%d}/{prefix}/{name}"


MSG_SEGMENT_ID = "'segment_id' is required and must be a string"
MSG_FIELDS_REQUIRED = "'fields_to_export' is required and must be a non-empty array of strings"
MSG_OUTPUT_FORMAT = "'output_format' must be 'zip' or 'gzip'"
MSG_GZIP_NEEDS_BUCKET = (
    "'output_format' gzip needs your own S3 or Azure bucket; without one the export is one ZIP"
)
MSG_CALLBACK = "'callback_endpoint' must be an http:// or https:// URL"
MSG_ALREADY_RUNNING = "An export of this segment is already running; wait for it to complete"


def msg_unknown_segment(segment_id: str) -> str:
    return f"Invalid segment_id: {segment_id[:200]!r}"


def msg_unknown_fields(fields: list[str]) -> str:
    shown = ", ".join(repr(f[:100]) for f in fields[:10])
    return f"Invalid fields_to_export: {shown}"


def parse_request(body: dict, *, has_bucket: bool = False) -> dict:
    """Check a request as Braze does; returns it normalised, or raises a 400 BrazeError."""
    segment_id = body.get("segment_id")
    if not isinstance(segment_id, str) or not segment_id:
        raise BrazeError(400, MSG_SEGMENT_ID)
    fields = body.get("fields_to_export")
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise BrazeError(400, MSG_FIELDS_REQUIRED)
    unknown = [f for f in fields if not known_field(f)]
    if unknown:
        raise BrazeError(400, msg_unknown_fields(unknown))
    output_format = body.get("output_format", "zip")
    if output_format not in OUTPUT_FORMATS:
        raise BrazeError(400, MSG_OUTPUT_FORMAT)
    if output_format == "gzip" and not has_bucket:
        raise BrazeError(400, MSG_GZIP_NEEDS_BUCKET)
    callback = body.get("callback_endpoint")
    if callback is not None and (
        not isinstance(callback, str) or not callback.startswith(("http://", "https://"))
    ):
        raise BrazeError(400, MSG_CALLBACK)
    return {
        "segment_id": segment_id,
        "fields_to_export": ordered_fields(fields),
        "output_format": output_format,
        "callback_endpoint": callback,
    }


def build_request(segment_id: str, fields: list[str], callback_endpoint: str | None = None) -> dict:
    """The body Headwater sends (ZIP: gzip only exists with a bucket Headwater does not read)."""
    body: dict = {"segment_id": segment_id, "fields_to_export": ordered_fields(fields)}
    if callback_endpoint:
        body["callback_endpoint"] = callback_endpoint
    return body


def callback_body(url: str | None) -> dict:
    """What Braze POSTs to ``callback_endpoint`` when the export is ready."""
    return {"success": True, **({"url": url} if url else {})}
