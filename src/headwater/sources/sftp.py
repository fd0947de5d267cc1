"""Fetch remote files over SFTP into the project's cache, then read them locally.

Why a local copy instead of streaming: DuckDB reads local files fastest and reads them
twice (type sniffing, then the scan); a cached copy also lets the next run skip files
whose size and modification time have not changed.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from headwater.errors import ConfigError, FatalError

if TYPE_CHECKING:
    from headwater.config import Project, _FileSourceBase

CONNECT_TIMEOUT_SECONDS = 15
DEFAULT_SFTP_PORT = 22


@dataclass(frozen=True)
class SftpLocation:
    username: str | None
    host: str
    port: int
    pattern: str  # remote path or glob, absolute or relative to the login directory

    @property
    def display(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"sftp://{user}{self.host}:{self.port}/{self.pattern.lstrip('/')}"


def parse_sftp_url(name: str, url: str) -> SftpLocation:
    parts = urlsplit(url)
    if parts.password:
        raise ConfigError(
            f"source {name!r}: do not put a password in the sftp URL; use password: ${{VAR}}"
        )
    if not parts.hostname or not parts.path or parts.path == "/":
        raise ConfigError(f"source {name!r}: expected sftp://user@host[:port]/dir/file-or-glob")
    # sftp://host/dir/x.csv is /dir/x.csv on the server; sftp://host/~/x.csv is home-relative.
    path = unquote(parts.path)
    if path.startswith("/~/"):
        path = path[3:]
    return SftpLocation(
        username=unquote(parts.username) if parts.username else None,
        host=parts.hostname,
        port=parts.port or DEFAULT_SFTP_PORT,
        pattern=path,
    )


def cache_root(project: Project) -> Path:
    """``.headwater/cache/``: the only directory the SFTP mirror writes or deletes in."""
    return (project.work_dir / "cache").resolve()


def source_cache_dir(project: Project, name: str) -> Path:
    """``.headwater/cache/sources/<name>/``, refused unless it is exactly one level below
    ``sources/``: a name such as ``../../x`` or ``/tmp`` must not aim the mirror (and its
    cleanup) at someone else's files, even if it slipped past the project file's checks."""
    sources = cache_root(project) / "sources"
    cache = (sources / name).resolve()
    if not name or cache.parent != sources or cache.name != name:
        raise ConfigError(f"source {name!r}: this name cannot name a cache directory")
    return cache


def fetch_sftp_files(name: str, config: _FileSourceBase, project: Project) -> list[Path]:
    """Mirror the files matching the source's sftp URL into ``.headwater/cache/sources/<name>/``."""
    location = parse_sftp_url(name, config.path)
    cache = source_cache_dir(project, name)
    return _run(_fetch(name, location, config, project, cache))


def _inside(directory: Path, path: Path) -> bool:
    return path.resolve().parent == directory


def _run(coro):
    """Run a coroutine to completion from sync code, even under a running event loop."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="headwater-sftp")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


async def _fetch(
    name: str, location: SftpLocation, config: _FileSourceBase, project: Project, cache: Path
) -> list[Path]:
    import asyncssh

    options: dict[str, object] = {
        "username": location.username,
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "agent_path": None,
    }
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    if config.private_key:
        options["client_keys"] = [str(project.resolve_path(config.private_key))]
        if config.private_key_passphrase is not None:
            options["passphrase"] = config.private_key_passphrase.get_secret_value()
    elif config.password is not None:
        options["client_keys"] = None
    if config.known_hosts:
        options["known_hosts"] = str(project.resolve_path(config.known_hosts))

    where = f"source {name!r} ({location.display})"
    try:
        async with (
            asyncssh.connect(location.host, location.port, **options) as conn,
            conn.start_sftp_client() as sftp,
        ):
            remote = sorted(await sftp.glob(location.pattern))
            if not remote:
                raise FatalError(f"{where}: no file matches on the server")
            cache.mkdir(parents=True, exist_ok=True)
            local_paths = []
            for path in remote:
                attrs = await sftp.stat(path)
                if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    continue
                local = cache / path.lstrip("/").replace("/", "__")
                if not _inside(cache, local):
                    raise FatalError(f"{where}: refusing to mirror {path!r} outside the cache")
                local_paths.append(local)
                if _unchanged(local, attrs.size, attrs.mtime):
                    continue
                partial = local.with_name(local.name + ".part")
                await sftp.get(path, str(partial))
                os.replace(partial, local)
                if attrs.mtime is not None:
                    os.utime(local, (attrs.mtime, attrs.mtime))
    except FatalError:
        raise
    except asyncssh.PermissionDenied:
        raise FatalError(f"{where}: the server refused the credentials") from None
    except asyncssh.HostKeyNotVerifiable as exc:
        raise FatalError(f"{where}: host key not trusted ({exc.reason}); set known_hosts") from None
    except asyncssh.SFTPError as exc:
        raise FatalError(f"{where}: {exc.reason}") from None
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise FatalError(
            f"{where}: cannot reach the server: {reason or type(exc).__name__}"
        ) from None
    for stale in set(cache.iterdir()) - set(local_paths):
        # Only plain files that are really in this source's cache (not links out of it).
        if stale.is_file() and not stale.is_symlink() and _inside(cache, stale):
            stale.unlink()
    return local_paths


def _unchanged(local: Path, size: int | None, mtime: int | None) -> bool:
    try:
        st = local.stat()
    except FileNotFoundError:
        return False
    return size == st.st_size and mtime is not None and int(st.st_mtime) == int(mtime)


__all__ = ["SftpLocation", "fetch_sftp_files", "parse_sftp_url", "source_cache_dir"]
