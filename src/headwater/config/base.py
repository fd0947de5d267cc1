"""What every part of the project file shares: strict models (an unknown key is an
error, never ignored), the file's default locations, and URL redaction."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

PROJECT_FILE = "headwater.yml"
DEFAULT_STATE_URL = "sqlite:///.headwater/state.db"
DEFAULT_WAREHOUSE_URL = "duckdb:///.headwater/warehouse.duckdb"
WORK_DIR = ".headwater"
DEFAULT_LANDING_DIR = ".headwater/landing"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def redact_url(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``."""
    # The password may hold a "/" (psycopg takes it): mask up to the last "@".
    return re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@]*:)[^@]*@", r"\1***@", url)
