"""The Currents tests' shared helpers (``currents_harness``) import by name, as the gateway
harness does."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
