"""Rotten-apple OOS forecast signals: PatchTST + NHITS (NeuralForecast) on open-to-open returns.

Series: unique_id = symbol, ds = session ordinal (freq=1), y = r_s = open_s/open_{s−1} − 1.
A decision at d's close earns r_{d+lag+1}, so forecasts use h = lag + 1 and keep step h.
`oos_forecasts` builds the walk-forward OOS frame; `fit_forecasters` / `live_forecasts`
serve the same models; `ensemble` blends both paths identically.

The weekly-return sequence forecasters the training service trains (the LSTM and the
multichannel PatchTST, registered `lstm` and `patchtst`, as yearly snapshots) live beside
them: `weekly` (samples), `sequence` (training, gate, persistence), `lstm`, `patchtst`
(networks), `snapshot` (version keys).

Names resolve lazily (PEP 562): importing this package, `ensemble` or the params never
imports neuralforecast/torch (5–10 s); the modules that train import it on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trademl.lazy import lazy_exports

if TYPE_CHECKING:
    from trademl.models.forecasts.blend import ensemble, ensemble_weights
    from trademl.models.forecasts.live import (
        Forecasters,
        fit_forecasters,
        live_forecasts,
        load_forecasters,
        save_forecasters,
    )
    from trademl.models.forecasts.oos import oos_forecasts
    from trademl.models.forecasts.params import EnsembleParams, ForecastParams, model_version
    from trademl.models.forecasts.series import add_context, realized_target, returns_panel

_EXPORTS: dict[str, str] = {
    "ensemble": "blend",
    "ensemble_weights": "blend",
    "Forecasters": "live",
    "fit_forecasters": "live",
    "live_forecasts": "live",
    "load_forecasters": "live",
    "save_forecasters": "live",
    "oos_forecasts": "oos",
    "EnsembleParams": "params",
    "ForecastParams": "params",
    "model_version": "params",
    "add_context": "series",
    "realized_target": "series",
    "returns_panel": "series",
}

__all__ = [
    "EnsembleParams",
    "ForecastParams",
    "Forecasters",
    "add_context",
    "ensemble",
    "ensemble_weights",
    "fit_forecasters",
    "live_forecasts",
    "load_forecasters",
    "model_version",
    "oos_forecasts",
    "realized_target",
    "returns_panel",
    "save_forecasters",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
