"""Braze user lines -> a members table: columns, collisions, types, bad lines."""

from __future__ import annotations

import orjson
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from headwater.exports.segments_table import (
    MAX_COLUMNS,
    ORDINAL_COLUMN,
    OVERFLOW_COLUMN,
    MembersParser,
    to_array,
)


def lines(*users: object) -> bytes:
    return b"\n".join(orjson.dumps(u) for u in users) + b"\n"


def parse(*files: bytes):
    parser = MembersParser("seg-1")
    for i, data in enumerate(files):
        parser.add_file(f"f{i}.json", data)
    return parser.finish()


def test_fields_and_custom_attributes_become_columns():
    parsed = parse(
        lines(
            {"braze_id": "b1", "external_id": "u1", "email": "a@x.io",
             "custom_attributes": {"tier": "gold", "points": 3}},
            {"braze_id": "b2", "custom_attributes": {"tier": "silver", "points": 4.5}},
        )
    )  # fmt: skip
    table = parsed.table
    assert table.column_names[:3] == ["segment_id", "braze_id", "external_id"]
    assert table.column("tier").to_pylist() == ["gold", "silver"]
    assert table.schema.field("points").type == pa.float64()
    assert table.column("segment_id").to_pylist() == ["seg-1", "seg-1"]
    assert ORDINAL_COLUMN not in table.column_names
    assert parsed.rejected == 0


def test_colliding_names_get_the_braze_prefix_case_insensitively():
    parsed = parse(
        lines(
            {"braze_id": "b1", "email": "a@x.io",
             "custom_attributes": {"email": "other", "Segment_Id": 7, "_braze_email": "z",
                                   "braze_id": "fake"}},
        )
    )  # fmt: skip
    row = parsed.table.to_pylist()[0]
    assert row["email"] == "a@x.io"
    assert row["_braze_email"] == "other"
    assert row["_braze_Segment_Id"] == 7
    assert row["braze_id"] == "b1" and row["_braze_braze_id"] == "fake"
    # a custom attribute literally named _braze_email does not overwrite the renamed one
    assert "z" in row.values() and row["_braze_email"] == "other"
    names = [n.lower() for n in parsed.table.column_names]
    assert len(names) == len(set(names))


def test_nested_and_mixed_values_land_as_text():
    parsed = parse(
        lines(
            {"braze_id": "b1", "user_aliases": [{"alias_name": "a", "alias_label": "l"}],
             "custom_attributes": {"mixed": 1, "flag": True, "obj": {"k": [1, 2]}}},
            {"braze_id": "b2", "custom_attributes": {"mixed": "one", "flag": False}},
        )
    )  # fmt: skip
    rows = parsed.table.to_pylist()
    assert rows[0]["user_aliases"] == '[{"alias_name":"a","alias_label":"l"}]'
    assert [r["mixed"] for r in rows] == ["1", "one"]
    assert [r["flag"] for r in rows] == [True, False]
    assert rows[0]["obj"] == '{"k":[1,2]}'


def test_types_differing_between_files_are_unified():
    parsed = parse(
        lines({"braze_id": "b1", "custom_attributes": {"n": 1, "b": True}}),
        lines({"braze_id": "b2", "custom_attributes": {"n": 2.5, "b": "yes"}}),
    )
    assert parsed.table.schema.field("n").type == pa.float64()
    assert parsed.table.column("b").to_pylist() == ["true", "yes"]


def test_bad_lines_are_row_errors_naming_file_and_line_and_the_rest_lands():
    data = (
        lines({"braze_id": "b1"})
        + b'{"braze_id": "b2", "trunc\n'
        + b"[1, 2]\n"
        + lines({"external_id": "no-braze-id"}, {"braze_id": {"$oid": "x"}}, {"braze_id": "b3"})
    )
    parsed = parse(data)
    assert parsed.table.column("braze_id").to_pylist() == ["b1", "b3"]
    assert parsed.rejected == 4
    where = [(e.row, e.field) for e in parsed.errors]
    assert where == [("f0.json:2", None), ("f0.json:3", None), ("f0.json:4", "braze_id"),
                     ("f0.json:5", "braze_id")]  # fmt: skip


def test_huge_integers_and_deep_nesting_do_not_crash():
    deep = "[" * 5000 + "]" * 5000
    data = (
        b'{"braze_id": "b1", "custom_attributes": {"big": 123456789012345678901234567890}}\n'
        + f'{{"braze_id": "b2", "custom_attributes": {{"deep": {deep}}}}}\n'.encode()
        + b'{"braze_id": "b3", "custom_attributes": {"big": 5}}\n'
    )
    parsed = parse(data)
    # orjson reads a number past 64 bits as a double (as most JSON readers do)
    assert parsed.table.column("big").to_pylist() == [1.2345678901234568e29, 5.0]
    assert parsed.rejected == 1 and parsed.errors[0].row == "f0.json:2"


def test_a_flood_of_attribute_names_is_capped_into_one_overflow_column():
    attrs = {f"a{i}": i for i in range(MAX_COLUMNS + 50)}
    parsed = parse(lines({"braze_id": "b1", "custom_attributes": attrs}))
    assert parsed.table.num_columns <= MAX_COLUMNS + 3
    overflow = orjson.loads(parsed.table.column(OVERFLOW_COLUMN)[0].as_py())
    assert len(overflow) + sum(1 for c in parsed.table.column_names if c.startswith("a")) == len(
        attrs
    )


def test_no_members_gives_an_empty_table_with_its_key_columns():
    parsed = parse(b"", b"\n\n")
    assert parsed.table.num_rows == 0
    assert {"segment_id", "braze_id"} <= set(parsed.table.column_names)


def test_a_user_repeated_across_files_lands_once_with_its_last_line():
    parsed = parse(
        lines(
            {"braze_id": "b1", "email": "old"},
            {"braze_id": "b2"},
            {"braze_id": "b1", "email": "mid"},
        ),
        lines({"braze_id": "b3"}, {"braze_id": "b1", "email": "new"}),
    )
    assert parsed.table.to_pydict()["braze_id"] == ["b2", "b3", "b1"]
    assert parsed.table.to_pydict()["email"] == [None, None, "new"]
    assert (parsed.lines, parsed.duplicates) == (5, 2)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=3), inner, max_size=3), max_leaves=6)  # fmt: skip


@given(st.lists(values, max_size=20))
def test_any_mix_of_values_becomes_one_column(column):
    array = to_array(column)
    assert len(array) == len(column)
    assert [v is None for v in array.to_pylist()] == [v is None for v in column]
