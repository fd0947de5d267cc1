"""Where an identity model is resolved, decided from the configuration alone, so that the
models layer can tell a model reading one where its golden records are (the resolution
itself is ``headwater.identity``'s, a layer above)."""

from __future__ import annotations

from headwater.config import ModelConfig, Project, SqlSourceConfig
from headwater.models.model import read_tables
from headwater.sources.sql import database_url


def identity_database(project: Project, model: ModelConfig) -> str | None:
    """The sql source (one of them) whose PostgreSQL database holds every relation the
    model's identity sources read; None when the model is resolved in the warehouse."""
    assert model.identity is not None
    names: set[str] = set()
    for source in model.identity.sources.values():
        tables = read_tables(source.sql)
        if not tables:
            return None
        names |= tables
    configs = [project.sources.get(name) for name in names]
    if not all(isinstance(c, SqlSourceConfig) for c in configs):
        return None
    urls = {database_url(project, c) for c in configs}  # type: ignore[arg-type]
    if len(urls) != 1 or not urls.pop().startswith("postgresql"):
        return None
    return sorted(names)[0]
