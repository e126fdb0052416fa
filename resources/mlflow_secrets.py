"""The secret filter of everything logged to MLflow: a key named like a credential, or a value
that contains the value of an environment variable named like one (broker keys, API tokens),
is refused — naming the key, never the value."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

SECRET_NAME_RE = re.compile(r"secret|password|token|api[_-]?key|private", re.IGNORECASE)
# Env values this short (or flag-like) are not credentials; matching them would refuse e.g.
# every value "false" because TOKENIZERS_PARALLELISM=false is set.
_MIN_SECRET_LEN = 6
_NOT_SECRETS = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "enabled"})


def _secret_env_values() -> list[str]:
    """Values of env vars named like credentials (broker keys etc.), read fresh on each call."""
    values = []
    for name, value in os.environ.items():
        value = value.strip()
        if (
            SECRET_NAME_RE.search(name)
            and len(value) >= _MIN_SECRET_LEN
            and value.lower() not in _NOT_SECRETS
        ):
            values.append(value)
    return values


def _has_secret_value(value: object, secrets: list[str]) -> bool:
    text = str(value)
    return any(secret in text for secret in secrets)


def check_not_secret(kind: str, key: str, value: object, secrets: list[str] | None = None) -> None:
    """Raise ValueError (naming the key, never the value) if key or value look like a secret."""
    if SECRET_NAME_RE.search(key):
        raise ValueError(f"refusing to log {kind} {key!r}: the name looks like a secret")
    if _has_secret_value(value, _secret_env_values() if secrets is None else secrets):
        raise ValueError(
            f"refusing to log {kind} {key!r}: its value contains a secret environment variable"
        )


def _check_mapping(kind: str, items: Mapping[str, object]) -> None:
    secrets = _secret_env_values()
    for key, value in items.items():
        check_not_secret(kind, str(key), value, secrets)


def _check_nested(kind: str, obj: object, where: str, secrets: list[str]) -> None:
    """Apply the secret filter to every key and leaf of a JSON-like object."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            path = f"{where}.{key}" if where else str(key)
            if SECRET_NAME_RE.search(str(key)):
                raise ValueError(f"refusing to log {kind} {path!r}: the name looks like a secret")
            _check_nested(kind, value, path, secrets)
    elif isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check_nested(kind, value, f"{where}[{i}]", secrets)
    elif _has_secret_value(obj, secrets):
        raise ValueError(
            f"refusing to log {kind} {where!r}: its value contains a secret environment variable"
        )


def _check_file(path: Path, secrets: list[str]) -> None:
    """Refuse a file (or any file under a directory) whose bytes contain a secret env value."""
    if not secrets:
        return
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    needles = [s.encode() for s in secrets]
    overlap = max(len(n) for n in needles) - 1
    for file in files:
        tail = b""
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                window = tail + chunk
                if any(n in window for n in needles):
                    raise ValueError(
                        f"refusing to log artifact {str(file)!r}: it contains a secret "
                        "environment variable"
                    )
                tail = window[-overlap:] if overlap else b""
