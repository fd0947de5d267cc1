"""The fast email checks must agree with email-validator on every address they decide."""

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.braze.values import _email_ok, _email_ok_slow, plain_emails

PARTS = st.text(alphabet="abcXYZ019._%+-", min_size=0, max_size=12)
DOMAINS = st.sampled_from(
    [
        "x.com",
        "a-b.io",
        "-a.com",
        "a-.com",
        "x.test",
        "x..com",
        "x.c",
        "sub.Example.ORG",
        "",
        "x.LocalHost",
        "x.onion",
        "x.testing",
        "x.local.com",
        "x.arpa",
    ]
)


@settings(max_examples=3000)
@given(local=PARTS, domain=DOMAINS, at=st.sampled_from(["@", "", "@@"]))
def test_fast_email_check_agrees_with_email_validator(local, domain, at):
    address = f"{local}{at}{domain}"
    assert _email_ok(address) == _email_ok_slow(address)


@settings(max_examples=1000)
@given(
    addresses=st.lists(
        st.builds(lambda *p: "".join(p), PARTS, st.sampled_from(["@", "", "@@"]), DOMAINS),
        max_size=20,
    )
)
def test_plain_emails_only_passes_what_the_check_passes(addresses):
    """A column at a time, ``plain_emails`` may leave an address to the row check (False),
    never pass one the check refuses."""
    plain = plain_emails(pa.array([*addresses, None], pa.string()))
    assert plain[-1] is False
    for address, passed in zip(addresses, plain, strict=False):
        if passed:
            assert _email_ok_slow(address), address


def test_plain_emails_passes_ordinary_addresses_and_leaves_special_domains():
    values = ["ann@example.com", "Zed.Q+tag@Sub.Example.ORG", "k@x.LOCALHOST", "a@b.onion"]
    assert plain_emails(pa.array(values)) == [True, True, False, False]
