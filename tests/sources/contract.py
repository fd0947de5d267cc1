"""The suite every source passes: the same sample rows, in every format a source reads,
come back as the same rows with the same kinds of types; an empty input is zero rows,
not a crash; a missing file or unreachable server is one clear error naming the source.

A *case* knows how to put the sample where its kind of source reads it. Adding a source
kind means adding a case here; the tests in ``test_contract.py`` then run against it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from headwater.config import Project, parse_project

from .sftp_server import PASSWORD, SftpServer

SOURCE = "people"
UTC = dt.UTC

SAMPLE: list[dict[str, Any]] = [
    {"id": "p1", "name": "Ada", "points": 10, "score": 1.5, "vip": True,
     "joined": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)},
    {"id": "p2", "name": 'Zoë "Z", Jr.', "points": None, "score": 2.25, "vip": False,
     "joined": dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)},
    {"id": "p3", "name": None, "points": -7, "score": 0.0, "vip": True,
     "joined": dt.datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)},
]  # fmt: skip
SAMPLE_KINDS = {
    "id": "string",
    "name": "string",
    "points": "integer",
    "score": "float",
    "vip": "boolean",
    "joined": "time",
}
ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("points", pa.int64()),
        ("score", pa.float64()),
        ("vip", pa.bool_()),
        ("joined", pa.timestamp("us", tz="UTC")),
    ]
)


def kind_of(t: pa.DataType) -> str:
    """The family of an Arrow type: what the contract promises (not widths or units)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t):
        return "time"
    return str(t)


def normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        clean = {}
        for key, value in row.items():
            if isinstance(value, dt.datetime):
                value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            clean[key] = value
        out.append(clean)
    return sorted(out, key=lambda r: r["id"])


def project_with(tmp_path: Path, source_yaml: str) -> Project:
    return parse_project(f"sources:\n  {SOURCE}: {source_yaml}\n", root=tmp_path)


def _iso(value: Any) -> Any:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, dt.datetime) else value


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(SAMPLE_KINDS))
        for row in rows:
            writer.writerow(
                [
                    "" if v is None else str(v).lower() if isinstance(v, bool) else _iso(v)
                    for v in row.values()
                ]
            )


def write_json(path: Path, rows: list[dict[str, Any]], *, lines: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [{k: _iso(v) for k, v in row.items()} for row in rows]
    if lines:
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    else:
        path.write_text(json.dumps(records), encoding="utf-8")


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=ARROW_SCHEMA), path)


def write_table(url: str, rows: list[dict[str, Any]]) -> None:
    from headwater.state.db import normalise_url

    engine = sa.create_engine(normalise_url(url))
    table = sa.Table(
        "people_table",
        sa.MetaData(),
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("points", sa.BigInteger),
        sa.Column("score", sa.Float),
        sa.Column("vip", sa.Boolean),
        sa.Column("joined", sa.DateTime(timezone=True)),
    )
    with engine.begin() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
        if rows:
            conn.execute(table.insert(), rows)
    engine.dispose()


class Case:
    """How one kind of source gets the sample, nothing, or a broken location."""

    id: str

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.request = request
        self.tmp_path = tmp_path

    def with_rows(self, rows: list[dict[str, Any]]) -> Project:
        raise NotImplementedError

    def with_empty_input(self) -> Project:
        raise NotImplementedError

    def with_missing_input(self) -> Project:
        raise NotImplementedError


class FileCase(Case):
    suffix: str
    type: str

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def with_rows(self, rows):
        # Two files through a glob: sources read every file a pattern matches.
        self.write(self.tmp_path / "in" / f"a{self.suffix}", rows[:1])
        self.write(self.tmp_path / "in" / f"b{self.suffix}", rows[1:])
        return project_with(self.tmp_path, f"{{type: {self.type}, path: 'in/*{self.suffix}'}}")

    def with_empty_input(self):
        (self.tmp_path / f"empty{self.suffix}").write_bytes(b"")
        return project_with(self.tmp_path, f"{{type: {self.type}, path: empty{self.suffix}}}")

    def with_missing_input(self):
        return project_with(self.tmp_path, f"{{type: {self.type}, path: nowhere{self.suffix}}}")


class CsvCase(FileCase):
    id, suffix, type = "csv", ".csv", "csv"

    def write(self, path, rows):
        write_csv(path, rows)


class JsonArrayCase(FileCase):
    id, suffix, type = "json-array", ".json", "json"

    def write(self, path, rows):
        write_json(path, rows, lines=False)


class NdjsonCase(FileCase):
    id, suffix, type = "ndjson", ".ndjson", "ndjson"

    def write(self, path, rows):
        write_json(path, rows, lines=True)


class ParquetCase(FileCase):
    id, suffix, type = "parquet", ".parquet", "parquet"

    def write(self, path, rows):
        write_parquet(path, rows)

    def with_empty_input(self):
        write_parquet(self.tmp_path / "empty.parquet", [])  # a schema and no rows
        return project_with(self.tmp_path, "{type: parquet, path: empty.parquet}")


class SqliteCase(Case):
    id = "sqlite"

    def url(self) -> str:
        return f"sqlite:///{self.tmp_path / 'app.db'}"

    def with_rows(self, rows):
        write_table(self.url(), rows)
        return project_with(
            self.tmp_path, f"{{type: sql, url: '{self.url()}', table: people_table}}"
        )

    def with_empty_input(self):
        return self.with_rows([])

    def with_missing_input(self):
        write_table(self.url(), [])
        return project_with(self.tmp_path, f"{{type: sql, url: '{self.url()}', table: no_such}}")


class PostgresCase(SqliteCase):
    id = "postgres"

    def url(self) -> str:
        return self.request.getfixturevalue("pg_url")

    def with_missing_input(self):
        return project_with(
            self.tmp_path, "{type: sql, url: 'postgresql://postgres@127.0.0.1:1/x', table: t}"
        )


class SftpCsvCase(Case):
    """CSV over SFTP with a password read from the environment."""

    id = "sftp-csv-password"

    def server(self) -> SftpServer:
        return self.request.getfixturevalue("sftp_server")

    def auth(self, server: SftpServer) -> str:
        monkeypatch = self.request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("TEST_SFTP_PASSWORD", PASSWORD)
        return f"password: '${{TEST_SFTP_PASSWORD}}', known_hosts: '{server.known_hosts}'"

    def remote_dir(self) -> str:
        return f"drops/{self.tmp_path.name}"

    def source(self, server: SftpServer, remote: str) -> Project:
        return project_with(
            self.tmp_path, f"{{type: csv, path: '{server.url(remote)}', {self.auth(server)}}}"
        )

    def with_rows(self, rows):
        server = self.server()
        write_csv(server.root / self.remote_dir() / "a.csv", rows[:2])
        write_csv(server.root / self.remote_dir() / "b.csv", rows[2:])
        return self.source(server, f"{self.remote_dir()}/*.csv")

    def with_empty_input(self):
        server = self.server()
        path = server.root / self.remote_dir() / "empty.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        return self.source(server, f"{self.remote_dir()}/empty.csv")

    def with_missing_input(self):
        return self.source(self.server(), f"{self.remote_dir()}/nothing-*.csv")


class SftpParquetKeyCase(SftpCsvCase):
    """Parquet over SFTP, authenticated with a private key file."""

    id = "sftp-parquet-key"

    def auth(self, server: SftpServer) -> str:
        return f"private_key: '{server.client_key}', known_hosts: '{server.known_hosts}'"

    def with_rows(self, rows):
        server = self.server()
        write_parquet(server.root / self.remote_dir() / "people.parquet", rows)
        return project_with(
            self.tmp_path,
            f"{{type: parquet, path: '{server.url(self.remote_dir() + '/people.parquet')}', "
            f"{self.auth(server)}}}",
        )

    def with_empty_input(self):
        server = self.server()
        write_parquet(server.root / self.remote_dir() / "empty.parquet", [])
        return project_with(
            self.tmp_path,
            f"{{type: parquet, path: '{server.url(self.remote_dir() + '/empty.parquet')}', "
            f"{self.auth(server)}}}",
        )

    def with_missing_input(self):
        # Nothing listens on this port: the server is unreachable.
        from headwater.testing import free_port

        url = f"sftp://shop@127.0.0.1:{free_port()}/x.parquet"
        return project_with(
            self.tmp_path, f"{{type: parquet, path: '{url}', {self.auth(self.server())}}}"
        )


CASES: list[type[Case]] = [
    CsvCase,
    JsonArrayCase,
    NdjsonCase,
    ParquetCase,
    SqliteCase,
    PostgresCase,
    SftpCsvCase,
    SftpParquetKeyCase,
]
