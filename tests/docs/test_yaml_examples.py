"""Every ``headwater.yml`` snippet in the docs is checked the way ``headwater validate``
checks a project (and its streams the way ``headwater serve`` does), and must pass."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.cli.project import TEMPLATE_DIR
from headwater.config import PROJECT_FILE, load_project
from tests.docs.examples import Block, all_blocks

YAML_MODES = {None, "whole-file", "not-project"}
# Sections that read other sections: a fragment replacing one leaves these out of the base.
DEPENDS_ON = {
    "models": {"sources"},
    "syncs": {"sources", "models", "destinations"},
    "audiences": {"sources", "models", "destinations"},
    "triggers": {"audiences", "streams", "destinations"},
    "exports": {"destinations"},
}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")

BLOCKS = all_blocks("yaml")


def example_shop() -> dict:
    return yaml.safe_load((TEMPLATE_DIR / PROJECT_FILE).read_text(encoding="utf-8"))


def complete(fragment: dict, base: dict) -> dict:
    """The fragment's sections replace the base's; base sections that depend on a replaced
    one are left out (a new model set would not fit the example's syncs)."""
    project = dict(base)
    project.update(fragment)
    replaced = set(fragment)
    changed = True
    while changed:
        changed = False
        for section in list(project):
            if section not in fragment and DEPENDS_ON.get(section, set()) & replaced:
                del project[section]
                replaced.add(section)
                changed = True
    return project


def _example_env(text: str, monkeypatch) -> None:
    for name in set(ENV_REFERENCE.findall(text)):
        value = "http://127.0.0.1:9" if name.endswith("_URL") else f"docs-example-{name.lower()}"
        monkeypatch.setenv(name, value)


def _validate(directory: Path) -> None:
    result = CliRunner().invoke(app, ["validate", "--project", str(directory)])
    text = (directory / PROJECT_FILE).read_text(encoding="utf-8")
    assert result.exit_code == 0, f"{result.output}\n--- checked file:\n{text}"
    load_project(directory)  # streams included: one model, validated once


def test_docs_have_project_file_examples():
    assert len([b for b in BLOCKS if b.mode != "not-project"]) >= 10


def test_every_yaml_marker_is_known():
    unknown = [f"{b.where}: {b.mode}" for b in BLOCKS if b.mode not in YAML_MODES]
    assert not unknown, f"unknown markers (known: {sorted(filter(None, YAML_MODES))})"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_yaml_example_is_valid(block: Block, tmp_path: Path, monkeypatch):
    parsed = yaml.safe_load(block.text)
    if block.mode == "not-project":
        return  # parsed above: it is valid YAML, and not a project file
    assert isinstance(parsed, dict), f"{block.where}: a project file is a mapping"
    if block.mode == "whole-file":
        text = block.text
    else:
        text = yaml.safe_dump(complete(parsed, example_shop()), sort_keys=False)
    (tmp_path / PROJECT_FILE).write_text(text, encoding="utf-8")
    _example_env(text, monkeypatch)
    _validate(tmp_path)


def test_a_broken_fragment_fails_the_check(tmp_path: Path, monkeypatch):
    """The check can fail: a sync naming an undeclared column is refused."""
    fragment = {"syncs": {"contacts": {"model": "contacts", "destination": "braze",
                "identifier": {"external_id": "customer_id"}, "mapping": {"x": "nope"}}}}  # fmt: skip
    text = yaml.safe_dump(complete(fragment, example_shop()))
    (tmp_path / PROJECT_FILE).write_text(text, encoding="utf-8")
    _example_env(text, monkeypatch)
    with pytest.raises(AssertionError, match="not declared in model"):
        _validate(tmp_path)


def test_fragments_replace_sections_and_drop_what_depends_on_them():
    base = {"destinations": {"b": {}}, "sources": {"s": {}}, "models": {"m": {}}, "syncs": {}}
    assert complete({"sources": {"t": {}}}, base) == {
        "destinations": {"b": {}},
        "sources": {"t": {}},
    }
    assert complete({"syncs": {"x": {}}}, base)["models"] == {"m": {}}
