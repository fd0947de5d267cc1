"""Reading an export's archive: a ZIP of JSON files, of ZIPs or gzips, one gzip; damage
is one clear error."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from headwater.exports.segments_files import ExportFileError, read_export


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "export.zip"
    path.write_bytes(data)
    return path


def test_a_zip_of_json_files_in_name_order(tmp_path):
    path = write(tmp_path, zip_bytes({"b.json": b"2\n", "a.json": b"1\n", "dir/": b""}))
    assert list(read_export(path)) == [("export.zip/a.json", b"1\n"), ("export.zip/b.json", b"2\n")]


def test_a_zip_of_zips_and_gzips_as_a_bucket_holds_them(tmp_path):
    inner = zip_bytes({"x.json": b"inner\n"})
    path = write(tmp_path, zip_bytes({"1.zip": inner, "2.gz": gzip.compress(b"gz\n")}))
    assert [data for _, data in read_export(path)] == [b"inner\n", b"gz\n"]


def test_one_gzip_file(tmp_path):
    path = write(tmp_path, gzip.compress(b'{"braze_id": "b"}\n'))
    assert [data for _, data in read_export(path)] == [b'{"braze_id": "b"}\n']


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_a_truncated_zip_is_a_clear_error(tmp_path, cut):
    data = zip_bytes({f"{i}.json": b'{"braze_id": "x"}\n' * 2000 for i in range(3)})
    path = write(tmp_path, data[: int(len(data) * cut)])
    with pytest.raises(ExportFileError, match="damaged.*Nothing was landed"):
        list(read_export(path))


def test_a_corrupted_member_is_caught_by_its_checksum(tmp_path):
    data = bytearray(zip_bytes({"a.json": b'{"braze_id": "x"}\n' * 5000}))
    data[60] ^= 0xFF  # inside the compressed data of the first member
    path = write(tmp_path, bytes(data))
    with pytest.raises(ExportFileError, match="damaged"):
        list(read_export(path))


def test_a_truncated_gzip_and_other_files_are_clear_errors(tmp_path):
    gz = gzip.compress(b"x" * 100_000)
    with pytest.raises(ExportFileError, match="damaged"):
        list(read_export(write(tmp_path, gz[: len(gz) // 2])))
    with pytest.raises(ExportFileError, match="not a ZIP or gzip"):
        list(read_export(write(tmp_path, b"<Error><Code>AccessDenied</Code></Error>")))
    with pytest.raises(ExportFileError, match="empty"):
        list(read_export(write(tmp_path, b"")))


def test_oversized_files_are_refused_not_inflated(tmp_path, monkeypatch):
    import headwater.exports.segments_files as files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 10_000)
    with pytest.raises(ExportFileError, match="inflates past"):
        list(read_export(write(tmp_path, gzip.compress(b"0" * 50_000))))
    with pytest.raises(ExportFileError, match="more than a user file holds"):
        list(read_export(write(tmp_path, zip_bytes({"a.json": b"0" * 50_000}))))


def test_a_multi_member_gzip_is_read_whole(tmp_path):
    path = write(tmp_path, gzip.compress(b"a\n") + gzip.compress(b"b\n"))
    assert [data for _, data in read_export(path)] == [b"a\nb\n"]


@pytest.fixture
def link_server():
    from fastapi import FastAPI, Response

    from headwater.testing import serve_in_thread

    answers: list[int] = []
    hook = FastAPI()

    @hook.get("/file.zip")
    async def file(token: str = ""):
        status = answers.pop(0) if answers else 404
        return Response(zip_bytes({"a.json": b"1\n"}) if status == 200 else b"no", status)

    with serve_in_thread(hook) as server:
        yield server.url + "/file.zip?token=secret-signature", answers


def test_the_link_is_polled_through_not_ready_and_server_errors(link_server, tmp_path):
    import asyncio

    from headwater.exports.segments_files import download_when_ready

    url, answers = link_server
    answers.extend([404, 403, 503, 200])
    size = asyncio.run(download_when_ready(url, tmp_path / "x.zip", timeout_seconds=60))
    assert size == (tmp_path / "x.zip").stat().st_size > 0 and answers == []


def test_polling_stops_for_a_stopping_server_and_at_the_deadline(link_server, tmp_path):
    import asyncio

    from headwater.exports.segments_files import ExportNotReady, download_when_ready

    url, _ = link_server
    calls = iter(range(100))
    with pytest.raises(ExportNotReady, match="stopped"):
        asyncio.run(download_when_ready(url, tmp_path / "x.zip", timeout_seconds=600,
                                        should_stop=lambda: next(calls) >= 3))  # fmt: skip
    with pytest.raises(ExportNotReady, match="not ready after 0s") as caught:
        asyncio.run(download_when_ready(url, tmp_path / "x.zip", timeout_seconds=0))
    assert "secret-signature" not in str(caught.value)  # a presigned link is a credential


def test_an_expired_link_is_a_clear_error(link_server, tmp_path):
    import asyncio

    from headwater.exports.segments_files import download_when_ready

    url, answers = link_server
    answers.append(410)
    with pytest.raises(ExportFileError, match="answered 410.*expired"):
        asyncio.run(download_when_ready(url, tmp_path / "x.zip", timeout_seconds=60))
