"""What identifies a forecaster snapshot: the version key of (settings, data window, universe,
code version). The `lstm_snapshot` asset tags the registered version with it and the
training service looks it up, so the same request never trains twice."""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

from trademl.config import Settings
from trademl.models.forecasts.sequence import SequenceParams
from trademl.provenance import source_hash

__all__ = ["MODELS", "VERSION_KEY_TAG", "code_version", "sequence_params", "version_key"]

#: The sequence forecasters (their settings section and registered name are the same).
MODELS = ("lstm", "patchtst")
#: The registered version's tag holding its version key.
VERSION_KEY_TAG = "trademl.version_key"
_SOURCES = ("weekly.py", "sequence.py", "lstm.py", "patchtst.py", "snapshot.py")


@cache
def code_version() -> str:
    """A hash of the forecaster's own source files: a change to them trains a new version."""
    return source_hash(Path(__file__).resolve().parent, _SOURCES)


def sequence_params(model: str, s: Settings, device: str = "cpu") -> SequenceParams:
    """A sequence forecaster's network and training settings from the settings file."""
    c = getattr(s, model)
    own = {
        k: getattr(c, k)
        for k in ("hidden", "layers", "patch_len", "d_model", "n_layers", "n_heads")
        if hasattr(c, k)
    }
    return SequenceParams(
        kind=model,
        seq_len=c.seq_len,
        horizon=c.horizon,
        n_channels=len(c.channels),
        lr=c.lr,
        batch_size=c.batch_size,
        max_epochs=c.max_epochs,
        patience=c.patience,
        val_frac=c.val_frac,
        stop_frac=c.stop_frac,
        seed=c.seed,
        device=device,
        **own,
    )


def version_key(model: str, s: Settings, window: tuple[str, str]) -> str:
    """The version key of `model` trained on `window` (first and last session): its settings,
    the data source that defines the universe, the window and the code version."""
    section = getattr(s, model)
    payload = {
        "model": model,
        "settings": section.model_dump(mode="json"),
        "data": s.data.model_dump(mode="json"),
        "window": list(window),
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
