"""Helpers for the UI tests: `dagster dev` on a free loopback port (stopped by its process
group, always) and headless Chromium (Debian's package, installed when absent and root)."""

import glob
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.integration.test_cli import REPO

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, what: str, seconds: int = 120) -> None:
    """Poll `url` until it answers 2xx; fail with the end of `log` if `proc` dies first."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"{what} did not answer in {seconds} s"
        time.sleep(0.5)


def home_env(tmp_path: Path, config: str) -> dict[str, str]:
    """The environment of a fresh local home under `tmp_path` with settings `config`, its
    Dagster instance file written (as `make dev` does)."""
    home = tmp_path / "home"
    cfg = tmp_path / "small.yaml"
    cfg.write_text(config)
    env = {
        **os.environ,
        "TRADEML_HOME": str(home),
        "TRADEML_CONFIG": str(cfg),
        "DAGSTER_HOME": str(home / "dagster"),
        "TRADEML_ENV": "local",
    }
    subprocess.run([sys.executable, "-m", "trademl_jobs.instance"], env=env, cwd=REPO, check=True)
    return env


def backfill_bars(env: dict[str, str], first: str, last: str) -> None:
    """A single-run backfill of `bars` over first...last through the Dagster CLI."""
    cmd = [str(BIN / "dagster"), "asset", "materialize", "-m", "trademl_jobs.definitions"]
    done = subprocess.run(
        [*cmd, "--select", "bars", "--partition-range", f"{first}...{last}"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@contextmanager
def dagster_dev(env: dict[str, str], log: Path) -> Iterator[str]:
    """`dagster dev` (webserver + daemon) as `make dev` runs it; yields its base URL."""
    port = free_port()
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [
                str(BIN / "dagster"),
                "dev",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            env=env,
            cwd=REPO,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    if requests.get(f"{base}/server_info", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "dagster dev did not answer in 240 s"
                time.sleep(2)
            yield base
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def debian_install(package: str) -> None:
    """`apt-get install` a Debian package for a test that needs its server or program; a
    no-op unless root (the test then skips, saying what is missing)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", package], env=env, capture_output=True, timeout=900
    )


def chromium() -> str | None:
    """Headless Chromium's binary; installed from Debian's packages when absent (as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        debian_install("chromium")
        found = shutil.which("chromium") or next(iter(glob.glob("/usr/bin/chromium*")), None)
    return found


def render(browser: str, url: str, screenshot: Path) -> str:
    """The page's visible text once the single-page app has fetched and drawn its data (a
    virtual-time budget lets its requests finish), and a PNG of it."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000"]
    subprocess.run(
        [browser, *flags, "--window-size=1400,1000", f"--screenshot={screenshot}", url],
        capture_output=True,
        timeout=180,
        check=True,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=180
    ).stdout
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))
