"""The training service: HTTP endpoints that resolve a training request to a version key,
answer at once with a registered version trained from the same inputs, and otherwise launch
the Dagster job that trains it (through the webserver's GraphQL API) — never training in the
web process. `python -m trademl_service` (``make serve``) starts it on 127.0.0.1:8000."""
