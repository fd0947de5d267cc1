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


# Distribution name -> the module it installs, where they differ beyond "-" -> "_".
MODULE_OF = {"pyyaml": "yaml", "python-liquid": "liquid"}
# Dependencies no module under src/headwater imports by name, and why each is still needed.
INDIRECT = {
    "sniffio": "httpcore imports it on every request; installed, the import costs no disk scan",
    "psycopg": "SQLAlchemy loads it for postgresql+psycopg:// URLs (headwater.state.db)",
}


def _runtime_dependencies() -> list[str]:
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    return [
        re.match(r"[A-Za-z0-9_.-]+", spec).group(0).lower()
        for spec in project["project"]["dependencies"]
    ]


def _imported_top_level_modules() -> set[str]:
    import ast
    from pathlib import Path

    found: set[str] = set()
    for path in Path(headwater.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def test_every_runtime_dependency_is_imported_by_headwater():
    """An unused dependency is weight every user installs (and a supply-chain risk):
    remove it from pyproject.toml, or say in INDIRECT why it is needed without an import."""
    imported = _imported_top_level_modules()
    unused = [
        name
        for name in _runtime_dependencies()
        if name not in INDIRECT and MODULE_OF.get(name, name.replace("-", "_")) not in imported
    ]
    assert unused == [], f"dependencies nothing under src/headwater imports: {unused}"


def test_indirect_dependencies_are_still_declared():
    assert set(INDIRECT) <= set(_runtime_dependencies())
