"""Getting a segment export's files: wait for the download link to become valid, fetch it
to a temporary file, and read the newline-delimited JSON out of it.

Braze's link (no bucket configured) points at one ZIP holding the user files, each ~5,000
users; a bucket holds one ``.zip`` or ``.gz`` per file. ``read_export`` takes any of these:
a ZIP of JSON files, a ZIP of ZIPs or gzips, or one gzip. A damaged archive (a transfer
cut short, a bad checksum) is an ``ExportFileError`` naming the file, never a traceback,
and nothing is landed from it.

The link is polled: until the export is ready it answers 403/404 (what a bucket answers
for a key not written yet); 5xx and dropped connections are tried again until the
deadline. Braze also POSTs ``callback_endpoint`` when the files are ready; polling works
with or without it.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from headwater.errors import FatalError

NOT_READY = (403, 404)
FIRST_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 30.0
CHUNK_BYTES = 1 << 20
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
GZIP_MAGIC = b"\x1f\x8b"
MAX_NESTING = 2  # a ZIP of ZIPs, no deeper
# One user file is ~5,000 users: a few MB, tens with every heavy field. A member declaring
# more, or a gzip inflating past it, is refused rather than allowed to fill the memory.
MAX_FILE_BYTES = 2 << 30

OnBytes = Callable[[int, int | None], None]  # (bytes so far, total or None)


class ExportFileError(FatalError):
    """The export's file could not be fetched or read; nothing was landed from it."""


class ExportNotReady(FatalError):
    """Braze did not make the files available before the deadline."""


def _redact(url: str) -> str:
    """A presigned link is a credential: show where it points, not its signature."""
    return url.split("?", 1)[0]


async def download_when_ready(
    url: str,
    dest: Path,
    *,
    timeout_seconds: float,
    on_bytes: OnBytes | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    woken: Callable[[], bool] = lambda: False,
    request_timeout: float = 60.0,
) -> int:
    """Poll ``url`` until it serves the file, save it to ``dest``; returns its size.
    ``woken`` (Braze's callback came) ends a wait between polls early."""
    deadline = time.monotonic() + timeout_seconds
    wait = FIRST_POLL_SECONDS
    last = "no answer yet"
    async with httpx.AsyncClient(timeout=request_timeout, follow_redirects=True) as http:
        while True:
            if should_stop():
                raise ExportNotReady("stopped while waiting for the export's files")
            try:
                size = await _fetch(http, url, dest, on_bytes)
                if size is not None:
                    return size
                last = "not ready"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {_redact(str(exc))}"
            except _Retry as exc:
                last = str(exc)
            if time.monotonic() + wait > deadline:
                raise ExportNotReady(
                    f"the export's files were not ready after {timeout_seconds:.0f}s "
                    f"({last}; link {_redact(url)})"
                )
            if await _sleep_unless(should_stop, wait, woken):
                wait = FIRST_POLL_SECONDS  # ready now: if not quite, look again soon
            else:
                wait = min(wait * 1.5, MAX_POLL_SECONDS)


class _Retry(Exception):
    pass


STOP_CHECK_SECONDS = 0.25


async def _sleep_unless(
    should_stop: Callable[[], bool], seconds: float, woken: Callable[[], bool] = lambda: False
) -> bool:
    """Sleep between polls, but notice a stopping server or Braze's callback within a
    quarter second; True when the callback ended the sleep."""
    end = time.monotonic() + seconds
    while not should_stop() and (left := end - time.monotonic()) > 0:
        if woken():
            return True
        await asyncio.sleep(min(left, STOP_CHECK_SECONDS))
    return False


async def _fetch(http: httpx.AsyncClient, url: str, dest: Path, on_bytes: OnBytes | None):
    async with http.stream("GET", url) as response:
        if response.status_code in NOT_READY:
            return None
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retry(f"{response.status_code} from the download link")
        if response.status_code != 200:
            raise ExportFileError(
                f"the export's download link answered {response.status_code} "
                f"(expired? links are valid a few hours): {_redact(url)}"
            )
        total = response.headers.get("content-length")
        expected = int(total) if total and total.isdigit() else None
        size = 0
        with open(dest, "wb") as f:
            async for chunk in response.aiter_bytes(CHUNK_BYTES):
                f.write(chunk)
                size += len(chunk)
                if on_bytes is not None:
                    on_bytes(size, expected)
        if expected is not None and size != expected:
            raise _Retry(f"the download stopped at {size:,} of {expected:,} bytes")
        return size


def read_export(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(file label, NDJSON bytes)`` for each user file in the downloaded export."""
    with open(path, "rb") as f:
        head = f.read(4)
    label = path.name
    try:
        if head.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)):
            with zipfile.ZipFile(path) as archive:
                yield from _zip_members(archive, label, 0)
        elif head.startswith(GZIP_MAGIC):
            with open(path, "rb") as f:
                yield label, _gunzip(f.read(), label)
        elif not head:
            raise ExportFileError(f"{label}: the export file is empty")
        else:
            raise ExportFileError(
                f"{label}: not a ZIP or gzip file (starts with {head!r}); was the link a "
                "segment export's?"
            )
    except (zipfile.BadZipFile, zlib.error, EOFError, gzip.BadGzipFile) as exc:
        raise ExportFileError(
            f"{label}: the export file is damaged ({exc}); the download may have been cut "
            "short. Nothing was landed; run the export again"
        ) from None


def _zip_members(archive: zipfile.ZipFile, label: str, depth: int) -> Iterator[tuple[str, bytes]]:
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        if info.is_dir():
            continue
        name = f"{label}/{info.filename}"
        if info.file_size > MAX_FILE_BYTES:
            raise ExportFileError(
                f"{name}: {info.file_size:,} bytes unzipped, more than a user file holds"
            )
        data = archive.read(info)  # checks the CRC: a damaged member raises BadZipFile
        if data.startswith((ZIP_MAGIC, EMPTY_ZIP_MAGIC)) and depth < MAX_NESTING:
            with zipfile.ZipFile(io.BytesIO(data)) as inner:
                yield from _zip_members(inner, name, depth + 1)
        elif data.startswith(GZIP_MAGIC):
            yield name, _gunzip(data, name)
        else:
            yield name, data


def _gunzip(data: bytes, label: str) -> bytes:
    """``gzip.decompress`` (every member of a multi-member file), bounded by
    ``MAX_FILE_BYTES``."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(wbits=31)
        out += inflater.decompress(data, MAX_FILE_BYTES + 1 - len(out))
        if len(out) > MAX_FILE_BYTES or inflater.unconsumed_tail:
            raise ExportFileError(f"{label}: inflates past {MAX_FILE_BYTES:,} bytes")
        if not inflater.eof:
            raise EOFError("the gzip stream ends before its end marker")
        data = inflater.unused_data.lstrip(b"\0")
    return bytes(out)
