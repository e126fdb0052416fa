"""Loading the code location pauses the cyclic collector and always resumes it: after a
load that succeeds, and after one that fails (a broken settings file), each in a fresh
interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import gc, sys
try:
    import trademl_jobs.definitions
    loaded = True
except Exception as exc:
    loaded = False
    print("load failed:", type(exc).__name__, file=sys.stderr)
print(loaded, gc.isenabled(), gc.get_freeze_count() > 100_000)
"""


def _probe(tmp_path: Path, config: str) -> list[str]:
    (tmp_path / "cfg.yaml").write_text(config)
    env = {
        **os.environ,
        "TRADEML_HOME": str(tmp_path / "home"),
        "TRADEML_CONFIG": str(tmp_path / "cfg.yaml"),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_the_collector_resumes_after_the_load_and_the_load_is_frozen(tmp_path):
    assert _probe(tmp_path, "extends: local\n") == ["True", "True", "True"]


def test_the_collector_resumes_after_a_failed_load(tmp_path):
    loaded, enabled, _ = _probe(tmp_path, "extends: local\nno_such_key: 1\n")
    assert (loaded, enabled) == ("False", "True")
