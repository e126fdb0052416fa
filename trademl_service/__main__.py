"""``python -m trademl_service`` (``make serve``): the training service on 127.0.0.1:8000.

Needs TRADEML_API_TOKEN (refuses to start without it) and a Dagster webserver to launch runs
on (TRADEML_DAGSTER_URL, default http://127.0.0.1:3000 — `make dev`)."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trademl_service", description=__doc__)
    p.add_argument("--host", default=os.environ.get("TRADEML_API_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("TRADEML_API_PORT", "8000")))
    args = p.parse_args(argv)
    token = os.environ.get("TRADEML_API_TOKEN", "")
    if not token:
        print(
            "python -m trademl_service: TRADEML_API_TOKEN is not set; the service refuses to "
            "start without a bearer token (export TRADEML_API_TOKEN=<a long random string>)",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from trademl_service.app import Backend, create_app
    from trademl_service.dagster_api import DagsterAPI

    url = os.environ.get("TRADEML_DAGSTER_URL", "http://127.0.0.1:3000")
    app = create_app(token, Backend(DagsterAPI(url)))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
