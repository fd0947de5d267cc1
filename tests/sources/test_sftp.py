"""SFTP specifics beyond the contract: credentials, host keys, and the local cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.config import parse_project
from headwater.errors import ConfigError, FatalError
from headwater.sources import open_source

from .contract import SAMPLE, write_csv
from .sftp_server import PASSWORD, SftpServer


def _project(tmp_path: Path, server: SftpServer, remote: str, auth: str):
    return parse_project(
        f"sources:\n  drops: {{type: csv, path: '{server.url(remote)}', {auth}}}\n", root=tmp_path
    )


def _rows(project) -> int:
    return sum(b.num_rows for b in open_source(project, "drops").batches())


def test_wrong_password_is_a_fatal_error_that_does_not_echo_the_password(
    tmp_path: Path, sftp_server: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(sftp_server.root / "wrongpw" / "a.csv", SAMPLE)
    monkeypatch.setenv("SFTP_PW", "not-the-password-123")
    project = _project(
        tmp_path,
        sftp_server,
        "wrongpw/a.csv",
        f"password: '${{SFTP_PW}}', known_hosts: '{sftp_server.known_hosts}'",
    )

    with pytest.raises(FatalError, match="source 'drops'.*refused the credentials") as caught:
        _rows(project)
    assert "not-the-password-123" not in str(caught.value)
    assert "not-the-password-123" not in repr(project)


def test_an_untrusted_host_key_is_refused(
    tmp_path: Path, sftp_server: SftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_csv(sftp_server.root / "hostkey" / "a.csv", SAMPLE)
    other_hosts = tmp_path / "known_hosts"
    other_hosts.write_text(
        f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    monkeypatch.setenv("SFTP_PW", PASSWORD)
    project = _project(
        tmp_path,
        sftp_server,
        "hostkey/a.csv",
        f"password: '${{SFTP_PW}}', known_hosts: '{other_hosts}'",
    )

    with pytest.raises(FatalError, match="source 'drops'"):
        _rows(project)


def test_unchanged_remote_files_are_not_fetched_again_and_removed_ones_leave_the_cache(
    tmp_path: Path, sftp_server: SftpServer
) -> None:
    remote = sftp_server.root / "cache"
    write_csv(remote / "a.csv", SAMPLE[:1])
    write_csv(remote / "b.csv", SAMPLE[1:])
    auth = f"private_key: '{sftp_server.client_key}', known_hosts: '{sftp_server.known_hosts}'"
    project = _project(tmp_path, sftp_server, "cache/*.csv", auth)
    assert _rows(project) == 3
    cache = project.work_dir / "cache" / "sources" / "drops"
    cached_a = next(p for p in cache.iterdir() if p.name.endswith("a.csv"))
    inode = cached_a.stat().st_ino

    (remote / "b.csv").unlink()
    assert _rows(project) == 1

    assert cached_a.stat().st_ino == inode  # not downloaded again
    assert sorted(p.name for p in cache.iterdir()) == [cached_a.name]


def test_a_password_inside_the_sftp_url_is_refused(tmp_path: Path) -> None:
    project = parse_project(
        "sources:\n  drops: {type: csv, path: 'sftp://u:hunter2@127.0.0.1/x.csv'}\n", root=tmp_path
    )
    with pytest.raises(ConfigError, match="do not put a password in the sftp URL") as caught:
        _rows(project)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("bad_name", ["../../../../victim", "/ABSOLUTE", ".", "..", ""])
def test_a_name_that_slipped_past_validation_never_aims_the_cache_outside_it(
    tmp_path: Path, sftp_server: SftpServer, bad_name: str
) -> None:
    write_csv(sftp_server.root / "escape" / "a.csv", SAMPLE)
    cache = tmp_path / "project" / ".headwater" / "cache"
    precious = [
        tmp_path / "victim" / "precious.txt",
        cache / "keep.txt",
        cache / "sources" / "keep.txt",
    ]
    for path in precious:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    auth = f"private_key: '{sftp_server.client_key}', known_hosts: '{sftp_server.known_hosts}'"
    project = _project(tmp_path / "project", sftp_server, "escape/a.csv", auth)
    name = bad_name.replace("/ABSOLUTE", str(tmp_path / "victim"))
    project.sources[name] = project.sources.pop("drops")  # as if validation were skipped

    try:
        _ = [b.num_rows for b in open_source(project, name).batches()]
        outcome: Exception | None = None
    except (ConfigError, FatalError) as exc:
        outcome = exc
    assert all(path.read_text() == "keep me" for path in precious)
    assert isinstance(outcome, ConfigError) and "cannot name a cache directory" in str(outcome)
