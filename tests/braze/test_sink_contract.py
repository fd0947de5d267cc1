"""The test sink speaks the contract's words: its limits and messages are headwater.braze's,
not copies that could drift from what the client checks against."""

from __future__ import annotations

from headwater.braze import errors, identifiers, limits
from headwater.testing import sink


def test_the_sink_uses_the_contracts_constants():
    assert sink.MAX_OBJECTS_PER_REQUEST is limits.MAX_OBJECTS_PER_REQUEST
    assert sink.TRACK_ARRAYS is limits.TRACK_ARRAYS
    assert sink.MSG_NO_VALID_DATA is errors.MSG_NO_VALID_DATA
    assert sink.MSG_IDENTIFIER_REQUIRED is identifiers.MSG_IDENTIFIER_REQUIRED
    assert set(sink.IDENTIFIER_KEYS) == {*identifiers.PRIMARY_KEYS, *identifiers.SECONDARY_KEYS}


def test_an_object_named_by_email_only_is_accepted_as_braze_would():
    assert sink.reject_without_identifier("attributes", {"email": "a@example.com"}) is None
    assert (
        sink.reject_without_identifier("attributes", {"first_name": "A"})
        == identifiers.MSG_IDENTIFIER_REQUIRED
    )
