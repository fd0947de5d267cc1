"""The declared public API. These lists are a promise to users: a name is added or removed
here on purpose, together with docs/reference/python-api.md."""

import subprocess
import sys

import headwater
import headwater.braze.client

PUBLIC = [
    "__version__",
    "BrazeClient",
    "TrackItem",
    "ItemResult",
    "TrackSummary",
    "BrazeRejectedError",
    "BrazeUnavailableError",
    "HeadwaterError",
    "ConfigError",
    "FatalError",
    "RetriableError",
    "RowError",
    "Project",
    "load_project",
    "run_sandbox",
]
CLIENT_PUBLIC = ["BrazeClient", "ItemResult", "TrackItem", "TrackSummary"]


def test_public_names_are_pinned():
    assert headwater.__all__ == PUBLIC
    assert headwater.__version__


def test_every_public_name_imports_and_is_the_defining_modules_object():
    from headwater.braze.client import BrazeClient
    from headwater.errors import RowError

    namespace: dict = {}
    exec("from headwater import *", namespace)
    assert set(PUBLIC) <= set(namespace)
    assert namespace["BrazeClient"] is BrazeClient and headwater.RowError is RowError
    assert issubclass(headwater.BrazeRejectedError, headwater.FatalError)
    assert issubclass(headwater.ConfigError, headwater.HeadwaterError)
    assert set(PUBLIC) <= set(dir(headwater))


def test_an_unknown_name_is_an_attribute_error():
    try:
        headwater.NotAName  # noqa: B018
    except AttributeError as exc:
        assert "NotAName" in str(exc)
    else:
        raise AssertionError("headwater.NotAName resolved")


def test_client_module_public_names_are_pinned():
    assert headwater.braze.client.__all__ == CLIENT_PUBLIC
    for name in CLIENT_PUBLIC:
        assert getattr(headwater.braze.client, name)


def test_importing_headwater_stays_cheap():
    """The CLI imports the package on every start: the client, pydantic and the HTTP
    stack load only when a public name is used."""
    code = (
        "import sys, headwater; "
        "heavy = [m for m in ('httpx', 'aiohttp', 'pydantic', 'sqlalchemy') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
