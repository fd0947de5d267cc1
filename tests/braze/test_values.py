"""The fast email check must agree with email-validator on every address it decides."""

from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.braze.values import _email_ok, _email_ok_slow

PARTS = st.text(alphabet="abcXYZ019._%+-", min_size=0, max_size=12)
DOMAINS = st.sampled_from(
    ["x.com", "a-b.io", "-a.com", "a-.com", "x.test", "x..com", "x.c", "sub.Example.ORG", ""]
)


@settings(max_examples=3000)
@given(local=PARTS, domain=DOMAINS, at=st.sampled_from(["@", "", "@@"]))
def test_fast_email_check_agrees_with_email_validator(local, domain, at):
    address = f"{local}{at}{domain}"
    assert _email_ok(address) == _email_ok_slow(address)
