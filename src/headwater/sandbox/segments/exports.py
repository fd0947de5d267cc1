"""``/users/export/segment`` in the sandbox, as Braze does it without a cloud bucket: the
answer comes at once with ``object_prefix`` and a ``url`` that becomes valid when the
export is ready; the files are built in the background (newline-delimited JSON, one file
per 5,000 users, all in one ZIP), then ``callback_endpoint`` gets ``{"success": true,
"url": ...}``. The URL is a presigned-style link (a token in the query string, no API
key), served by the sandbox itself until it closes or ``EXPORT_TTL_SECONDS`` pass.

Faults (``POST /_sandbox/faults``): ``export_duplicate_share`` writes that share of users
twice (Braze's files may repeat a user), ``export_truncated_share`` cuts that share of
exports short (a broken transfer).
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson

from headwater.braze.errors import BrazeError
from headwater.braze.profile import export_profile
from headwater.braze.segment_export import (
    MSG_ALREADY_RUNNING,
    USERS_PER_FILE,
    callback_body,
    export_key,
    msg_unknown_segment,
    object_prefix,
    parse_request,
)
from headwater.sandbox.segments.filters import compile_filter
from headwater.sandbox.settings import Faults

log = logging.getLogger("headwater.sandbox")
EXPORT_TTL_SECONDS = 4 * 3600  # Braze: "valid for a few hours"
CALLBACK_TIMEOUT_SECONDS = 10.0
ZIP_LEVEL = 1  # deflate fast: the sandbox builds exports of millions of users


@dataclass
class _Ready:
    path: Path
    token: str
    expires: float


class SegmentExports:
    """The exports one sandbox has built or is building; files live in a private temp
    directory removed on ``close``."""

    def __init__(
        self,
        segments: Callable[[], list[dict]],
        profiles: Callable[[], dict[str, dict]],
        faults: Faults,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._segments = segments
        self._profiles = profiles
        self.faults = faults
        self.random = random.Random(seed)
        self.clock = clock
        self._lock = threading.Lock()
        self._running: set[str] = set()
        self._ready: dict[str, _Ready] = {}
        self._threads: list[threading.Thread] = []
        self._dir: Path | None = None

    # -- the endpoint ---------------------------------------------------------------------

    def start(self, body: dict, base_url: str) -> dict:
        request = parse_request(body)
        segment_id = request["segment_id"]
        segment = next(
            (s for s in self._segments() if s["id"] == segment_id and not s.get("archived")),
            None,
        )
        if segment is None:
            raise BrazeError(400, msg_unknown_segment(segment_id))
        with self._lock:
            if segment_id in self._running:
                raise BrazeError(429, MSG_ALREADY_RUNNING)
            self._running.add(segment_id)
        try:
            # Membership is decided now, on the request's thread (profiles change under
            # later requests); writing the files is what runs in the background.
            matches = compile_filter(segment.get("filter"))
            members = [p for p in self._profiles().values() if matches(p)]
        except BaseException:
            self._release(segment_id)
            raise
        now = datetime.fromtimestamp(self.clock(), UTC)
        prefix = object_prefix(str(uuid.uuid4()), now)
        key = export_key(quote(segment_id, safe=""), prefix, now, f"{secrets.token_hex(16)}.zip")
        token = secrets.token_urlsafe(24)
        url = f"{base_url.rstrip('/')}/{key}?token={token}"
        # Both draws happen here, in request order, so a seeded sandbox repeats itself.
        truncate = self.random.random() < self.faults.export_truncated_share
        duplicates = (self.faults.export_duplicate_share, self.random.random())
        thread = threading.Thread(
            target=self._build,
            args=(segment_id, members, request, token, url, duplicates, truncate),
            name=f"segment-export-{segment_id[:40]}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()
        return {"message": "success", "object_prefix": prefix, "url": url}

    def _release(self, segment_id: str) -> None:
        with self._lock:
            self._running.discard(segment_id)

    def _build(self, segment_id, members, request, token, url, duplicates, truncate):
        try:
            path = self._write_zip(members, request["fields_to_export"], *duplicates)
            if truncate:
                with open(path, "r+b") as f:
                    f.truncate(max(os.path.getsize(path) // 2, 1))
            with self._lock:
                self._ready[token] = _Ready(path, token, self.clock() + EXPORT_TTL_SECONDS)
        except Exception:  # Braze e-mails a failed export; the sandbox logs it
            log.exception("segment export %s failed", segment_id)
            return
        finally:
            self._release(segment_id)
        callback = request.get("callback_endpoint")
        if callback:
            try:
                httpx.post(callback, json=callback_body(url), timeout=CALLBACK_TIMEOUT_SECONDS)
            except httpx.HTTPError as exc:
                log.warning("segment export callback to %s failed: %s", callback, exc)

    def _write_zip(
        self, members: list[dict], fields: list[str], duplicate_share: float, seed: float
    ) -> Path:
        directory = self._directory()
        part = directory / f"{uuid.uuid4().hex}.part"
        pick = random.Random(seed)
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
            for start in range(0, max(len(members), 1), USERS_PER_FILE):
                lines = []
                for profile in members[start : start + USERS_PER_FILE]:
                    line = orjson.dumps(export_profile(profile, fields))
                    lines.append(line)
                    if duplicate_share and pick.random() < duplicate_share:
                        lines.append(line)
                data = b"\n".join(lines) + b"\n" if lines else b""
                zf.writestr(f"{secrets.token_hex(16)}.json", data)
        final = part.with_suffix(".zip")
        part.rename(final)
        return final

    def _directory(self) -> Path:
        with self._lock:
            if self._dir is None:
                self._dir = Path(tempfile.mkdtemp(prefix="headwater-sandbox-exports-"))
            return self._dir

    # -- the download ---------------------------------------------------------------------

    def file_for(self, token: str | None) -> Path | None:
        """The ready file behind a download link, or None (not ready, expired, unknown).
        The token alone names the file (the path before it mirrors Braze's bucket key)."""
        with self._lock:
            ready = self._ready.get(token or "")
            if ready is None:
                return None
            if self.clock() > ready.expires:
                self._ready.pop(ready.token, None)
                ready.path.unlink(missing_ok=True)
                return None
            return ready.path

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Tests and the benchmark: let every background build finish."""
        for thread in list(self._threads):
            thread.join(timeout)

    def reset(self) -> None:
        self.wait_idle()
        with self._lock:
            for ready in self._ready.values():
                ready.path.unlink(missing_ok=True)
            self._ready.clear()
            self._threads.clear()

    def close(self) -> None:
        self.wait_idle(5.0)
        with self._lock:
            self._ready.clear()
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
