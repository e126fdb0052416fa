"""What identifies an allocation agent's version: its name (`<algo>_<forecaster>`), the mode
(full or finetune), the settings, the data window, the forecaster snapshots its state reads,
the version it started from and the code version — the version key the `<name>_agent` asset
tags a registered version with and the training service looks up."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from trademl.config import Settings
from trademl.models.agents.train import AgentParams
from trademl.models.forecasts.snapshot import MODELS as FORECASTERS
from trademl.provenance import source_hash

__all__ = ["AGENTS", "MODES", "agent_params", "code_version", "split_name", "version_key"]

ALGOS = ("ppo", "sac")
#: Registered agent names: ppo_lstm, ppo_patchtst, sac_lstm, sac_patchtst.
AGENTS = tuple(f"{a}_{f}" for a in ALGOS for f in FORECASTERS)
MODES = ("full", "finetune")
_SOURCES = ("env.py", "panel.py", "train.py", "export.py", "snapshot.py")


def split_name(name: str) -> tuple[str, str]:
    """("ppo", "lstm") of "ppo_lstm"; an unknown name is an error listing the known ones."""
    if name not in AGENTS:
        raise ValueError(f"no agent {name!r}; agents are {', '.join(AGENTS)}")
    algo, forecaster = name.split("_", 1)
    return algo, forecaster


@cache
def code_version() -> str:
    """A hash of the agents' own source files."""
    return source_hash(Path(__file__).resolve().parent, _SOURCES)


def agent_params(s: Settings, algo: str, mode: str, device: str = "cpu") -> AgentParams:
    """Training settings of a `mode` run: full = `full_steps` at `full_lr`; finetune =
    `finetune_steps` at `finetune_lr`. The env's cost is the cost model's linear part."""
    a = s.agents
    if mode not in MODES:
        raise ValueError(f"agent mode must be one of {MODES}, got {mode!r}")
    full = mode == "full"
    return AgentParams(
        algo=algo,  # type: ignore[arg-type]
        steps=a.full_steps if full else a.finetune_steps,
        lr=a.full_lr if full else a.finetune_lr,
        gamma=a.gamma,
        net_arch=tuple(a.net_arch),
        seed=a.seed,
        episode_weeks=a.episode_weeks,
        temperature=a.temperature,
        cost_bps=s.costs.fee_bps + s.costs.half_spread_bps,
        device=device,
    )


def version_key(
    name: str,
    mode: str,
    s: Settings,
    window: tuple[str, str],
    snapshots: Mapping[str, str],
    init_version: str | None,
) -> str:
    """The version key of agent `name` trained in `mode` on `window`, its state read from the
    forecaster `snapshots` (year → version), started from `init_version` (finetune)."""
    _, forecaster = split_name(name)
    payload = {
        "name": name,
        "mode": mode,
        "agents": s.agents.model_dump(mode="json"),
        "forecaster": getattr(s, forecaster).model_dump(mode="json"),
        "costs": s.costs.model_dump(mode="json"),
        "data": s.data.model_dump(mode="json"),
        "window": list(window),
        "snapshots": dict(sorted(snapshots.items())),
        "init": init_version,
        "code": code_version(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
