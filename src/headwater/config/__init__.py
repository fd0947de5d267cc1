"""The ``headwater.yml`` project file: its pydantic model, ``${ENV}`` substitution, and
``load_project``, which reports every problem at once with the line it sits on.

Why the YAML is composed by hand: ``yaml.safe_load`` throws away line numbers, and an
error a user cannot find is half an error. We compose the node tree, substitute
environment variables on the nodes (so a missing variable points at its line), record
the line of every key and value, then construct plain data for pydantic and map each
pydantic error location back to a line.

Environment values are read at load time only and never written back to the file.
Secrets are ``SecretStr``: they do not show in reprs, dumps or error messages.

The model is split by concern (one module per section, plus the document, the cross-section
checks and loading); everything is importable from ``headwater.config`` as before.
"""

from __future__ import annotations

from headwater.config.audiences import AudienceConfig, AudienceDefaults
from headwater.config.base import (
    DEFAULT_STATE_URL,
    DEFAULT_WAREHOUSE_URL,
    PROJECT_FILE,
    WORK_DIR,
    redact_url,
)
from headwater.config.base import Strict as _Strict  # noqa: F401  (models elsewhere extend it)
from headwater.config.checks import NAME_PATTERN, NAMED_SECTIONS, name_problem
from headwater.config.console import ConsoleConfig
from headwater.config.destinations import BrazeDestination, RateLimitOverride
from headwater.config.document import Loc, ProjectCheck, Report, located_errors
from headwater.config.gateway import GatewayConfig, GatewayDelivery
from headwater.config.identity import IdentityConfig, IdentityKey, IdentitySource
from headwater.config.loading import find_project_file, load_project, parse_project
from headwater.config.models import ColumnSpec, ColumnType, ModelConfig
from headwater.config.monitoring import InspectorConfig, MetricsConfig
from headwater.config.project import Project
from headwater.config.sources import (
    FILE_SOURCE_TYPES,
    CsvSourceConfig,
    JsonSourceConfig,
    ParquetSourceConfig,
    SourceConfig,
    SqlSourceConfig,
)
from headwater.config.sources import FileSourceBase as _FileSourceBase  # noqa: F401
from headwater.config.streams import StreamConfig
from headwater.config.syncs import (
    EventSpec,
    PurchaseSpec,
    Schedule,
    SyncConfig,
    SyncIdentifier,
    UserAlias,
)

__all__ = [
    "AudienceConfig",
    "AudienceDefaults",
    "BrazeDestination",
    "ColumnSpec",
    "ColumnType",
    "CsvSourceConfig",
    "DEFAULT_STATE_URL",
    "DEFAULT_WAREHOUSE_URL",
    "EventSpec",
    "FILE_SOURCE_TYPES",
    "GatewayConfig",
    "GatewayDelivery",
    "ConsoleConfig",
    "IdentityConfig",
    "IdentityKey",
    "IdentitySource",
    "InspectorConfig",
    "JsonSourceConfig",
    "MetricsConfig",
    "Loc",
    "ModelConfig",
    "NAMED_SECTIONS",
    "NAME_PATTERN",
    "PROJECT_FILE",
    "ParquetSourceConfig",
    "Project",
    "ProjectCheck",
    "PurchaseSpec",
    "RateLimitOverride",
    "Report",
    "Schedule",
    "SourceConfig",
    "SqlSourceConfig",
    "StreamConfig",
    "SyncConfig",
    "SyncIdentifier",
    "UserAlias",
    "WORK_DIR",
    "find_project_file",
    "load_project",
    "located_errors",
    "name_problem",
    "parse_project",
    "redact_url",
]
