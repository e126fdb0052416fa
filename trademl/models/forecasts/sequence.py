"""The weekly-return sequence forecasters — the LSTM (registered ``lstm``) and the
multichannel PatchTST (``patchtst``): one network shared across the universe, reading a name's
last `seq_len` sessions of its channels at a week's end (`weekly.weekly_samples`) and
predicting the log return of the next `horizon` sessions. The networks are in `lstm` and
`patchtst`; training, the gate and persistence are shared here.

Training (`train_forecaster`): chronological split by decision date — the first `1 − val_frac` of
the weeks train, the rest validate; the input scaler is fitted on the training part only; MSE
with Adam; early stopping on the last `stop_frac` of the training weeks (the best epoch's
weights are kept), so the validation weeks the gate reads choose nothing. The baseline
predicts zero. A network may be warm-started from another's weights (a finetune).

The gate (`forecaster_decision`): validation MSE below the zero baseline by `min_gain`, a positive
per-week rank IC with t-stat ≥ `min_ic_t` on the validation weeks, and — with a prior
champion — a validation MSE below the champion's on the same weeks. Fails closed on NaN.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trademl.models.forecasts.weekly import WeeklySamples
from trademl.models.gate import Decision, check

__all__ = [
    "SequenceParams",
    "TrainedForecaster",
    "forecaster_decision",
    "rank_ic",
    "train_forecaster",
]

KINDS = ("lstm", "patchtst")


@dataclass(frozen=True)
class SequenceParams:
    """Network and training settings (see `trademl.config.LSTMConfig` / `PatchTSTConfig`).

    kind : ``"lstm"`` or ``"patchtst"``; n_channels : the input's channels (C of (N, L, C)).
    hidden, layers : the LSTM's width and depth. patch_len, d_model, n_layers, n_heads :
    PatchTST's patches (non-overlapping, `seq_len` a multiple of it) and encoder.
    """

    kind: str = "lstm"
    seq_len: int = 60
    horizon: int = 5
    n_channels: int = 1
    hidden: int = 32
    layers: int = 1
    patch_len: int = 8
    d_model: int = 32
    n_layers: int = 4
    n_heads: int = 4
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5
    val_frac: float = 0.2
    stop_frac: float = 0.15
    seed: int = 0
    device: str = "cpu"


def _network(params: SequenceParams) -> Any:
    if params.kind == "lstm":
        from trademl.models.forecasts.lstm import lstm_network

        return lstm_network(params)
    if params.kind == "patchtst":
        from trademl.models.forecasts.patchtst import patchtst_network

        return patchtst_network(params)
    raise ValueError(f"sequence forecaster: kind must be one of {KINDS}, got {params.kind!r}")


@dataclass
class TrainedForecaster:
    """A trained forecaster: weights, the training part's per-channel scaler, metrics and its
    window."""

    params: SequenceParams
    state: dict[str, Any]
    mean: np.ndarray
    std: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)
    window: tuple[str, str] = ("", "")
    val_dates: tuple[str, str] = ("", "")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forecast log returns for (N, seq_len, C) sequences."""
        import torch

        net = _network(self.params)
        net.load_state_dict(self.state)
        net.eval()
        z = (np.asarray(x, np.float32) - self.mean) / self.std
        with torch.no_grad():
            return net(torch.from_numpy(z)).numpy().astype(np.float64)

    def to_bytes(self) -> bytes:
        """The weights, scaler and settings as one torch file (`from_bytes` reads it)."""
        import dataclasses

        import torch

        buf = io.BytesIO()
        torch.save(
            {
                "params": dataclasses.asdict(self.params),
                "state": self.state,
                "mean": torch.as_tensor(self.mean),
                "std": torch.as_tensor(self.std),
                "metrics": self.metrics,
                "window": list(self.window),
                "val_dates": list(self.val_dates),
            },
            buf,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedForecaster:
        import torch

        obj = torch.load(io.BytesIO(data), weights_only=True)
        return cls(
            SequenceParams(**obj["params"]),
            obj["state"],
            obj["mean"].numpy(),
            obj["std"].numpy(),
            dict(obj["metrics"]),
            tuple(obj["window"]),
            tuple(obj["val_dates"]),
        )


def rank_ic(pred: np.ndarray, y: np.ndarray, dates: np.ndarray) -> tuple[float, float, int]:
    """Mean per-date Spearman correlation, its t-stat and the number of dates (≥ 3 names)."""
    ics = []
    for d in np.unique(dates):
        m = dates == d
        if m.sum() < 3:
            continue
        a = np.argsort(np.argsort(pred[m])).astype(float)
        b = np.argsort(np.argsort(y[m])).astype(float)
        if a.std() > 0 and b.std() > 0:
            ics.append(float(np.corrcoef(a, b)[0, 1]))
    if len(ics) < 2:
        return math.nan, math.nan, len(ics)
    ic = np.asarray(ics)
    sd = ic.std(ddof=1)
    return (
        float(ic.mean()),
        float(ic.mean() / sd * math.sqrt(ic.size)) if sd > 0 else math.nan,
        ic.size,
    )


def split_by_date(samples: WeeklySamples, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the training and validation parts: whole weeks, in time order."""
    weeks = np.unique(samples.date)
    if weeks.size < 5:
        raise ValueError(f"forecaster: {weeks.size} weeks of samples; a split needs at least 5")
    first_val = weeks[min(weeks.size - 1, max(1, math.floor(weeks.size * (1 - val_frac))))]
    return np.flatnonzero(samples.date < first_val), np.flatnonzero(samples.date >= first_val)


def train_forecaster(
    samples: WeeklySamples,
    params: SequenceParams,
    *,
    init: TrainedForecaster | None = None,
    max_epochs: int | None = None,
    lr: float | None = None,
) -> TrainedForecaster:
    """Fit the forecaster on `samples` (see the module docstring); `init` warm-starts it."""
    import torch

    if samples.n == 0:
        raise ValueError(f"{params.kind}: no samples to train on")
    if samples.x.shape[2] != params.n_channels:
        raise ValueError(
            f"{params.kind}: samples have {samples.x.shape[2]} channels, the network "
            f"{params.n_channels}"
        )
    tr, va = split_by_date(samples, params.val_frac)
    fit_i, stop_i = split_by_date(samples.take(tr), params.stop_frac)
    fit, stop = tr[fit_i], tr[stop_i]  # early stopping never sees the validation weeks
    x_tr = samples.x[tr]
    mean = x_tr.mean(axis=(0, 1)).astype(np.float32)
    std = x_tr.std(axis=(0, 1)).astype(np.float32)
    std[~(std > 0)] = 1.0
    if init is not None:  # a finetune keeps the scaler the weights were trained with
        mean, std = init.mean, init.std

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=params.device)

    xt, yt = tensor((samples.x[fit] - mean) / std), tensor(samples.y[fit])
    xs, ys = tensor((samples.x[stop] - mean) / std), tensor(samples.y[stop])
    gen = torch.Generator().manual_seed(params.seed)
    torch.manual_seed(params.seed)
    net = _network(params).to(params.device)
    if init is not None:
        net.load_state_dict(init.state)
    opt = torch.optim.Adam(net.parameters(), lr=lr or params.lr)
    loss_fn = torch.nn.MSELoss()
    best, best_state, bad, epochs = math.inf, None, 0, 0
    for _epoch in range(max_epochs or params.max_epochs):
        net.train()
        order = torch.randperm(xt.shape[0], generator=gen)
        for i in range(0, xt.shape[0], params.batch_size):
            idx = order[i : i + params.batch_size]
            opt.zero_grad()
            loss = loss_fn(net(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            stop_loss = float(loss_fn(net(xs), ys))
        epochs += 1
        if stop_loss < best - 1e-12:
            best, bad = stop_loss, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= params.patience:
                break
    assert best_state is not None
    model = TrainedForecaster(params, best_state, mean, std)
    pred = model.predict(samples.x[va])
    ic, ic_t, n_weeks = rank_ic(pred, samples.y[va], samples.date[va])
    model.metrics = {
        "val_mse": float(np.mean((pred - samples.y[va]) ** 2)),
        "zero_mse": float(np.mean(samples.y[va] ** 2)),
        "val_rank_ic": ic,
        "val_rank_ic_t": ic_t,
        "val_weeks": float(n_weeks),
        "stop_mse": best,
        "n_train": float(fit.size),
        "n_stop": float(stop.size),
        "n_val": float(va.size),
        "epochs": float(epochs),
    }
    model.window = (str(samples.date.min()), str(samples.known.max()))
    model.val_dates = (str(samples.date[va].min()), str(samples.date[va].max()))
    return model


def forecaster_decision(
    metrics: Mapping[str, float],
    champion_val_mse: float | None,
    *,
    min_gain: float,
    min_ic_t: float,
) -> Decision:
    """The forecaster's gate (module docstring); `champion_val_mse` is the prior champion's
    MSE on the same validation weeks (None: no champion yet — the absolute bars decide)."""
    zero = metrics.get("zero_mse", math.nan)
    checks = [
        check("val_mse_vs_zero", metrics.get("val_mse"), zero * (1.0 - min_gain), "<"),
        check("val_rank_ic_t", metrics.get("val_rank_ic_t"), min_ic_t, "≥"),
    ]
    if champion_val_mse is not None:
        checks.append(check("val_mse_vs_champion", metrics.get("val_mse"), champion_val_mse, "<"))
    return Decision(checks)
