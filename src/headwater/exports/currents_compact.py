"""Compaction of the Currents landing: many small Parquet files (one per event type per
landing, about one a second under load) merged into fewer, larger ones, without a reader
ever seeing an event twice or a file vanish from under it.

Why generations: replacing several files by one cannot be atomic inside one directory (a
reader listing it between the new file's rename and the old files' removal sees both). So
each event type's directory, ``<receiver>/<event_type>``, is a symbolic link to a
*generation* directory, ``<receiver>/.generations/<event_type>/<n>``. Compaction builds
generation ``n+1`` beside it (the merged file, plus hard links to the files it leaves
alone), then swaps the link with one ``rename``: a reader's ``read_parquet('<event
type>/*.parquet')`` lists either generation, each complete. The old generation stays on
disk ``GRACE_SECONDS`` for readers that listed it just before the swap, then goes.

Landing and compaction of one event type take the same file lock, so a landing never
writes into a generation being replaced (several ``serve`` processes may share a landing
directory). Only files of finished landings are merged: a landing still named in the
state store may be written again after a crash, under its own file name. Events are never
decoded or filtered here, so each event id stays landed once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from headwater.exports.landing import fsync_dir, fsync_file

GENERATIONS = ".generations"
COMPACT_AT_FILES = 32  # small files in one event type's directory that start a compaction
SMALL_FILE_BYTES = 64 * 1024 * 1024  # files at least this large are left alone
GRACE_SECONDS = 600.0  # how long a replaced generation stays readable
RETIRED = "retired-"
_PART = re.compile(r"^part-(\d{16})-(?:compact-(\d{16})|[0-9a-z]+)\.parquet$")


def _generations(type_dir: Path) -> Path:
    return type_dir.parent / GENERATIONS / type_dir.name


@contextlib.contextmanager
def type_lock(type_dir: Path) -> Iterator[None]:
    """Held while one event type's files are written or compacted."""
    gens = _generations(type_dir)
    gens.mkdir(parents=True, exist_ok=True)
    with open(gens.parent / f"{type_dir.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_type_dir(type_dir: Path) -> None:
    """Create ``type_dir`` as a link to its first generation, if it does not exist yet
    (a real directory left by an earlier version is used as it is, never compacted)."""
    if type_dir.exists() or type_dir.is_symlink():
        return
    gens = _generations(type_dir)
    first = gens / f"{0:08d}"
    first.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process made it first
        os.symlink(os.path.relpath(first, type_dir.parent), type_dir)
        fsync_dir(type_dir.parent)


def _current(type_dir: Path) -> Path | None:
    if not type_dir.is_symlink():
        return None
    return (type_dir.parent / os.readlink(type_dir)).resolve()


def _span(name: str) -> tuple[int, int] | None:
    """The landings a file holds: (first seq, last seq); None for a foreign file."""
    match = _PART.match(name)
    if match is None:
        return None
    first = int(match.group(1))
    return first, int(match.group(2) or first)


def compact_type(
    type_dir: Path,
    busy: set[int],
    db: duckdb.DuckDBPyConnection,
    *,
    at_files: int = COMPACT_AT_FILES,
    now: float | None = None,
) -> int:
    """Merge ``type_dir``'s small files of finished landings (none of ``busy``, the seqs
    still named in the state store) once there are ``at_files`` of them; returns how many
    files were merged (0: nothing to do). Old generations past their grace are removed."""
    now = time.time() if now is None else now
    with type_lock(type_dir):
        current = _current(type_dir)
        if current is None:
            return 0
        _sweep(type_dir, current, now)
        small, keep = [], []
        for path in sorted(current.glob("part-*.parquet")):
            span = _span(path.name)
            mergeable = (
                span is not None and span[0] not in busy and path.stat().st_size < SMALL_FILE_BYTES
            )
            (small if mergeable else keep).append(path)
        if len(small) < at_files:
            return 0
        spans = [_span(p.name) for p in small]
        first = min(s[0] for s in spans if s)
        last = max(s[1] for s in spans if s)
        following = current.parent / f"{int(current.name) + 1:08d}"
        shutil.rmtree(following, ignore_errors=True)  # a build a crash left half done
        following.mkdir()
        merged = following / f"part-{first:016d}-compact-{last:016d}.parquet"
        files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in small)
        db.execute(
            f"COPY (SELECT * FROM read_parquet([{files}], union_by_name = true) "
            f"ORDER BY received_at) TO '{str(merged).replace(chr(39), chr(39) * 2)}' "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        fsync_file(merged)
        for path in keep:
            os.link(path, following / path.name)
        fsync_dir(following)
        link = current.parent.parent / f"{type_dir.name}.link"  # out of readers' globs
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        os.symlink(os.path.relpath(following, type_dir.parent), link)
        os.replace(link, type_dir)  # the swap: readers list one generation or the other
        fsync_dir(type_dir.parent)
        (current.parent / f"{RETIRED}{current.name}").write_text(repr(now))
        return len(small)


def _sweep(type_dir: Path, current: Path, now: float) -> None:
    """Remove generations replaced more than ``GRACE_SECONDS`` ago."""
    gens = current.parent
    for marker in gens.glob(f"{RETIRED}*"):
        old = gens / marker.name.removeprefix(RETIRED)
        try:
            retired_at = float(marker.read_text() or 0)
        except (OSError, ValueError):
            retired_at = 0.0
        if now - retired_at >= GRACE_SECONDS and old != current:
            shutil.rmtree(old, ignore_errors=True)
            marker.unlink(missing_ok=True)


def compact_landing(
    root: Path, busy: set[int], db: duckdb.DuckDBPyConnection, *, at_files: int = COMPACT_AT_FILES
) -> int:
    """``compact_type`` over every event type of every receiver; files merged."""
    merged = 0
    base = root / "currents"
    if not base.is_dir():
        return 0
    for receiver in sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink()):
        types = (p for p in receiver.iterdir() if p.is_symlink() and not p.name.startswith("."))
        for type_dir in sorted(types):
            merged += compact_type(type_dir, busy, db, at_files=at_files)
    return merged
