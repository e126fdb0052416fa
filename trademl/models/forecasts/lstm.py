"""The LSTM weekly-return forecaster (registered ``lstm``): one network shared across the
universe, reading a name's last `seq_len` daily returns at a week's end and predicting the log
return of the next `horizon` sessions.

Training (`train_lstm`): chronological split by decision date — the first `1 − val_frac` of
the weeks train, the rest validate; the input scaler is fitted on the training part only; MSE
with Adam; early stopping on the validation loss (the best epoch's weights are kept). The
baseline predicts zero. A network may be warm-started from another's weights (a finetune).

The gate (`lstm_decision`): validation MSE below the zero baseline by `min_gain`, a positive
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

__all__ = ["LSTMParams", "TrainedLSTM", "lstm_decision", "rank_ic", "train_lstm"]


@dataclass(frozen=True)
class LSTMParams:
    """Network and training settings (see `trademl.config.LSTMConfig`)."""

    seq_len: int = 60
    horizon: int = 5
    hidden: int = 32
    layers: int = 1
    lr: float = 1e-3
    batch_size: int = 256
    max_epochs: int = 40
    patience: int = 5
    val_frac: float = 0.2
    seed: int = 0
    device: str = "cpu"


def _network(params: LSTMParams) -> Any:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(1, params.hidden, params.layers, batch_first=True)
            self.head = torch.nn.Linear(params.hidden, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(x)
            return self.head(out[:, -1, :]).squeeze(-1)

    return Net()


@dataclass
class TrainedLSTM:
    """A trained forecaster: weights, the training part's scaler, metrics and its window."""

    params: LSTMParams
    state: dict[str, Any]
    mean: float
    std: float
    metrics: dict[str, float] = field(default_factory=dict)
    window: tuple[str, str] = ("", "")
    val_dates: tuple[str, str] = ("", "")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Forecast log returns for (N, seq_len, 1) sequences."""
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
                "mean": self.mean,
                "std": self.std,
                "metrics": self.metrics,
                "window": list(self.window),
                "val_dates": list(self.val_dates),
            },
            buf,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedLSTM:
        import torch

        obj = torch.load(io.BytesIO(data), weights_only=True)
        return cls(
            LSTMParams(**obj["params"]),
            obj["state"],
            float(obj["mean"]),
            float(obj["std"]),
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
        raise ValueError(f"lstm: {weeks.size} weeks of samples; a split needs at least 5")
    first_val = weeks[min(weeks.size - 1, max(1, math.floor(weeks.size * (1 - val_frac))))]
    return np.flatnonzero(samples.date < first_val), np.flatnonzero(samples.date >= first_val)


def train_lstm(
    samples: WeeklySamples,
    params: LSTMParams,
    *,
    init: TrainedLSTM | None = None,
    max_epochs: int | None = None,
    lr: float | None = None,
) -> TrainedLSTM:
    """Fit the forecaster on `samples` (see the module docstring); `init` warm-starts it."""
    import torch

    if samples.n == 0:
        raise ValueError("lstm: no samples to train on")
    tr, va = split_by_date(samples, params.val_frac)
    x_tr = samples.x[tr]
    mean, std = float(x_tr.mean()), float(x_tr.std()) or 1.0
    if init is not None:  # a finetune keeps the scaler the weights were trained with
        mean, std = init.mean, init.std

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=params.device)

    xt, yt = tensor((x_tr - mean) / std), tensor(samples.y[tr])
    xv, yv = tensor((samples.x[va] - mean) / std), tensor(samples.y[va])
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
            val = float(loss_fn(net(xv), yv))
        epochs += 1
        if val < best - 1e-12:
            best, bad = val, 0
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= params.patience:
                break
    assert best_state is not None
    model = TrainedLSTM(params, best_state, mean, std)
    pred = model.predict(samples.x[va])
    ic, ic_t, n_weeks = rank_ic(pred, samples.y[va], samples.date[va])
    model.metrics = {
        "val_mse": float(np.mean((pred - samples.y[va]) ** 2)),
        "zero_mse": float(np.mean(samples.y[va] ** 2)),
        "val_rank_ic": ic,
        "val_rank_ic_t": ic_t,
        "val_weeks": float(n_weeks),
        "n_train": float(tr.size),
        "n_val": float(va.size),
        "epochs": float(epochs),
    }
    model.window = (str(samples.date.min()), str(samples.known.max()))
    model.val_dates = (str(samples.date[va].min()), str(samples.date[va].max()))
    return model


def lstm_decision(
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
