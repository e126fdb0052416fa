"""Test session setup: everything writes under a temporary TRADEML_HOME, never ./.trademl."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="trademl-tests-"))
os.environ["TRADEML_HOME"] = str(_HOME)
os.environ["DAGSTER_HOME"] = str(_HOME / "dagster")
os.environ.setdefault("TRADEML_ENV", "local")
os.environ.pop("TRADEML_CONFIG", None)
(_HOME / "dagster").mkdir(parents=True, exist_ok=True)
