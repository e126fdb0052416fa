"""``python -m trademl_service.client``: train through the service and wait for the answer —
what a notebook or a CI job does. POST the request; a 200 is the (cached) result; a 202 is
polled at its `status_url` until the run ends; anything else is printed and exits non-zero.

    python -m trademl_service.client lstm --year 2024
    python -m trademl_service.client ppo_lstm/full
    python -m trademl_service.client ppo_lstm/finetune

The service's URL and token come from TRADEML_API_URL (default http://127.0.0.1:8000) and
TRADEML_API_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import requests

DONE = {"SUCCESS", "FAILURE", "CANCELED"}


class ServiceError(RuntimeError):
    """The service refused the request or the run did not succeed."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {json.dumps(body)}")
        self.status = status
        self.body = body


def train(
    url: str,
    token: str,
    path: str,
    year: int | None = None,
    *,
    timeout: float = 3600.0,
    poll: float = 2.0,
) -> dict[str, Any]:
    """POST /train/<path> and wait: the result (model, version, window, metrics, promoted,
    prior version, and for agents mode and symbols_used)."""
    auth = {"Authorization": f"Bearer {token}"}
    body = {} if year is None else {"year": year}
    r = requests.post(f"{url}/train/{path}", json=body, headers=auth, timeout=60)
    if r.status_code == 200:
        return r.json()
    if r.status_code != 202:
        raise ServiceError(r.status_code, r.json())
    status_url = url + r.json()["status_url"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(status_url, headers=auth, timeout=60).json()
        if status["status"] in DONE:
            if status["status"] != "SUCCESS" or status["result"] is None:
                raise ServiceError(200, status)
            return status["result"]
        time.sleep(poll)
    raise ServiceError(408, {"detail": f"the run at {status_url} did not end in {timeout} s"})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trademl_service.client", description=__doc__)
    p.add_argument("path", help="lstm, patchtst, or <ppo|sac>_<lstm|patchtst>/<full|finetune>")
    p.add_argument("--year", type=int, default=None, help="the year end (default: the latest)")
    p.add_argument("--timeout", type=float, default=3600.0)
    args = p.parse_args(argv)
    token = os.environ.get("TRADEML_API_TOKEN", "")
    if not token:
        print("TRADEML_API_TOKEN is not set: the service's bearer token", file=sys.stderr)
        return 2
    url = os.environ.get("TRADEML_API_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        result = train(url, token, args.path, args.year, timeout=args.timeout)
    except ServiceError as exc:
        print(f"{args.path}: {exc}", file=sys.stderr)
        return 1
    except requests.RequestException as exc:
        print(f"the service at {url} did not answer ({exc}); start it: make serve", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
