"""Training service latency (JSON lines)::

    python -m benchmarks.service_bench [--requests 200]

Starts the service as `make serve` does (its own process, uvicorn) on a fresh home whose
MLflow registry holds an `lstm` version registered under the version key the request
resolves to, then times `POST /train/lstm` answered from the registry (the cached path: no
Dagster involved) over keep-alive HTTP: `service_cached_answer` = the median, with p95.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
TOKEN = "bench-token"


def _register(home: Path, cfg: Path) -> None:
    """An `lstm` version as `lstm_snapshot` tags it, in a fresh process on the bench home."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from resources.mlflow import MlflowResource\n"
        "from trademl.config import load_settings\n"
        "from trademl.models.forecasts.snapshot import VERSION_KEY_TAG, version_key\n"
        "from trademl_assets.partitions import SNAPSHOT_YEARS, snapshot_window\n"
        "s = load_settings(sys.argv[1]); year = SNAPSHOT_YEARS.get_last_partition_key()\n"
        "w = snapshot_window(year, s.lstm.train_years); m = MlflowResource.from_settings(s)\n"
        "d = pathlib.Path(tempfile.mkdtemp()); (d / 'lstm.pt').write_bytes(b'w')\n"
        "with m.start_run(asset='lstm_snapshot', partition=year, dagster_run_id='bench',"
        " data_fingerprint='f') as run:\n"
        "    run.log_metrics({'val_mse': 1e-3, 'zero_mse': 1.2e-3})\n"
        "    uri = run.log_model_files(d, 'model')\n"
        "v = m.register(run.run_id, uri, 'lstm')\n"
        "m.tag_version('lstm', v, {VERSION_KEY_TAG: version_key('lstm', s, w),"
        " 'trademl.window_start': w[0], 'trademl.window_end': w[1],"
        " 'trademl.promoted': True, 'trademl.snapshot': year})\n"
    )
    env = {**os.environ, "TRADEML_HOME": str(home), "TRADEML_CONFIG": str(cfg)}
    subprocess.run([sys.executable, "-c", code, str(cfg)], env=env, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.service_bench", description=__doc__)
    p.add_argument("--requests", type=int, default=200)
    args = p.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="service-bench-"))
    cfg = home / "svc.yaml"
    cfg.write_text(f"extends: local\nmlflow: {{tracking_uri: 'sqlite:///{home}/mlflow.db'}}\n")
    _register(home, cfg)
    from tests.integration.ui import free_port

    port = free_port()
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "TRADEML_API_TOKEN": TOKEN,
        "TRADEML_DAGSTER_URL": "http://127.0.0.1:9",  # never called on the cached path
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "trademl_service", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/train/lstm"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        for _ in range(240):
            try:
                if session.post(url, json={}, timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.25)
        else:
            raise SystemExit("the service did not answer")
        for _ in range(10):  # warm
            session.post(url, json={}, timeout=5)
        times = []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            r = session.post(url, json={}, timeout=5)
            times.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and r.json()["cached"] is True
    finally:
        proc.terminate()
        proc.wait(10)
    times.sort()
    median = statistics.median(times)
    print(
        json.dumps(
            {
                "name": "service_cached_answer",
                "value": round(median, 2),
                "unit": "ms",
                "p95_ms": round(times[int(0.95 * len(times)) - 1], 2),
                "requests": len(times),
                "target": TARGET_MS,
                "pass": median <= TARGET_MS,
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
