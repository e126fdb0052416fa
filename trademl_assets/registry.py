"""Every sleeve of the platform in one place: a new sleeve is one library package, one asset
module (its `SleeveSpec`) and one entry here. Which sleeves exist is read from the settings
when the code location loads (`equities.models`, `linear.enabled`, `theses.enabled`,
`stacker.sleeves`)."""

import dagster as dg

from trademl.config import ConfigError, Settings
from trademl_assets import equities, forecasts, linear, offline_rl, policy, stacker, theses
from trademl_assets.champion import champion_asset
from trademl_assets.partitions import SETTINGS
from trademl_assets.sleeves import SleeveSpec, model_assets, scores_asset

#: Every alpha sleeve a config may name (stacker.sleeves, router.fallback_weights).
ALPHA_NAMES = ("equities_lgbm", "equities_catboost", "linear", "forecasts", "thesis")


def alpha_sleeves(s: Settings) -> list[SleeveSpec]:
    """The alpha sleeves the settings enable, in a fixed order."""
    specs = [
        equities.equities_spec(kind) for kind in ("lgbm", "catboost") if kind in s.equities.models
    ]
    if s.linear.enabled:
        specs.append(linear.SPEC)
    specs.append(forecasts.SPEC)
    if s.theses.enabled:
        specs.append(theses.SPEC)
    return specs


def stacker_sleeve(s: Settings, alpha: list[SleeveSpec]) -> SleeveSpec | None:
    """The stacker over the configured `stacker.sleeves` that exist (None with fewer than 2)."""
    unknown = sorted(set(s.stacker.sleeves) - set(ALPHA_NAMES))
    unknown += sorted(set(s.router.fallback_weights) - set(ALPHA_NAMES))
    if unknown:
        raise ConfigError(
            f"stacker.sleeves / router.fallback_weights name unknown sleeves {unknown}; "
            f"the alpha sleeves are {list(ALPHA_NAMES)}"
        )
    names = [sp.name for sp in alpha if sp.name in s.stacker.sleeves]
    return stacker.spec(names) if len(names) >= 2 else None


ALPHA = alpha_sleeves(SETTINGS)
STACKER = stacker_sleeve(SETTINGS, ALPHA)
SIZING = [policy.GRPO, offline_rl.OFFLINE_RL]


def sleeve_assets() -> list[dg.AssetsDefinition]:
    """Training, champion and scoring assets of every sleeve, and the sized book."""
    out: list[dg.AssetsDefinition] = []
    for spec in ALPHA:
        out += [model_assets(spec), champion_asset(spec), scores_asset(spec)]
    for spec in [*([STACKER] if STACKER else []), *SIZING]:
        out += [model_assets(spec), champion_asset(spec)]
    out.append(policy.sizing_sleeves(SIZING))
    if any(sp.name == "thesis" for sp in ALPHA):
        out.append(theses.theses)
    return out
