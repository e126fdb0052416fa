"""A local S3-compatible server for the tests (moto's server mode, in its own process): the
lake on s3 and the MLflow server's object-store artifact root run against it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from tests.integration.ui import free_port


@contextlib.contextmanager
def moto_s3(*buckets: str) -> Iterator[dict[str, str]]:
    """Start moto's S3 server with `buckets` created; yields the AWS_* settings that point a
    client at it (also set in os.environ for the duration, restored afterwards)."""
    import boto3

    port = free_port()
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    server = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        for bucket in buckets:
            for _ in range(100):
                try:
                    client.create_bucket(Bucket=bucket)
                    break
                except Exception:  # the server is still starting
                    time.sleep(0.1)
            else:
                raise RuntimeError(f"moto's S3 server on port {port} did not start")
        yield env
    finally:
        server.terminate()
        server.wait(10)
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
