"""Every source kind against the shared contract (see ``contract.py``)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from headwater.errors import ConfigError, FatalError
from headwater.sources import open_source
from headwater.warehouse import connect_duckdb

from .contract import CASES, SAMPLE, SAMPLE_KINDS, SOURCE, Case, kind_of, normalise


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Case:
    return request.param(request, tmp_path)


def read_all(project) -> pa.Table:
    batches = list(open_source(project, SOURCE).batches(size=2))
    return pa.Table.from_batches(batches)


def test_source_yields_the_sample_rows_with_the_same_kinds_of_types(case: Case) -> None:
    table = read_all(case.with_rows(SAMPLE))

    assert {f.name: kind_of(f.type) for f in table.schema} == SAMPLE_KINDS
    assert normalise(table.to_pylist()) == normalise(SAMPLE)


def test_source_registered_in_duckdb_reads_the_same_rows(case: Case) -> None:
    project = case.with_rows(SAMPLE)
    con = connect_duckdb()
    open_source(project, SOURCE).register(con)

    rows = con.sql(f"SELECT * FROM {SOURCE}").to_arrow_table().to_pylist()

    assert normalise(rows) == normalise(SAMPLE)


def test_source_with_an_empty_input_yields_no_rows(case: Case) -> None:
    table = read_all(case.with_empty_input())

    assert table.num_rows == 0


def test_missing_input_or_unreachable_server_is_one_clear_error_naming_the_source(
    case: Case,
) -> None:
    project = case.with_missing_input()

    with pytest.raises((FatalError, ConfigError)) as caught:
        read_all(project)

    message = str(caught.value)
    assert f"source {SOURCE!r}" in message
    assert "Traceback" not in message
