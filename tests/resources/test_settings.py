"""Settings that shape the graph are fixed at load; a changed file is refused, naming the key."""

from __future__ import annotations

import json

import pytest

from resources.settings import SettingsResource
from trademl.config import ConfigError, fixed_at_load, load_settings


def test_a_run_whose_file_changed_a_lookback_since_load_is_refused(tmp_path):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("extends: local\nequities: {train_sessions: 300, n_trials: 2}\n")
    loaded = json.dumps(fixed_at_load(load_settings(cfg)))
    res = SettingsResource(config_path=str(cfg), fixed=loaded)
    assert res.get().equities.train_sessions == 300
    # a run-time setting may change between runs ...
    cfg.write_text("extends: local\nequities: {train_sessions: 300, n_trials: 3}\n")
    assert res.get().equities.n_trials == 3
    # ... a lookback window may not: the partition mappings were built with the old one
    cfg.write_text("extends: local\nequities: {train_sessions: 400, n_trials: 3}\n")
    with pytest.raises(ConfigError, match=r"equities.train_sessions is 400 .* loaded 300.*reload"):
        res.get()
    assert SettingsResource(config_path=str(cfg)).get().equities.train_sessions == 400
