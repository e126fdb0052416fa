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

_REPO = Path(__file__).resolve().parent.parent
#: Tool caches the test run itself makes; anything else new in the tree is a stray write.
_CACHES = ("__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".venv", ".egg-info")


def _tree() -> set[str]:
    """Untracked and ignored paths of the repository (what `git status --ignored` lists)."""
    import subprocess

    out = subprocess.run(
        ["git", "status", "--porcelain", "--ignored"], cwd=_REPO, capture_output=True, text=True
    )
    paths = {line[3:] for line in out.stdout.splitlines()} if out.returncode == 0 else set()
    return {p for p in paths if not any(c in p for c in _CACHES)}


_BEFORE = _tree()


def pytest_sessionfinish(session, exitstatus):
    """The suite never writes into the repository tree (an ignored `mlruns/` counts too)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    stray = sorted(_tree() - _BEFORE)
    if stray:
        msg = f"the test run wrote into the repository tree: {', '.join(stray)}"
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(msg, red=True)
        else:
            print(msg)
        session.exitstatus = 1
