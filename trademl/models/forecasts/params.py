"""Frozen settings for the forecast sleeve: the two models, the ensemble and the context signals.

The lead maps trademl/config.py onto these; nothing here reads configuration files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LOSSES", "EnsembleParams", "ForecastParams", "model_version"]

LOSSES = ("mae", "mse", "huber")
_HARDWARE = frozenset({"accelerator", "devices", "cpu_threads"})


@dataclass(frozen=True)
class EnsembleParams:
    """Vol-regime weights of PatchTST in the PatchTST/NHITS blend.

    Recent realized vol (daily std of open-to-open returns) below `vol_low` gives PatchTST
    weight `w_patchtst_calm`; above `vol_high` gives `w_patchtst_stressed`; in between the
    weight is interpolated linearly. NHITS gets one minus that. Unknown vol (too little
    history) gets the midpoint of the two weights.
    """

    vol_low: float = 0.012
    vol_high: float = 0.03
    w_patchtst_calm: float = 0.7
    w_patchtst_stressed: float = 0.3

    def __post_init__(self) -> None:
        if not (0.0 <= self.vol_low < self.vol_high):
            raise ValueError(
                f"ensemble vol thresholds: need 0 <= vol_low < vol_high, "
                f"got vol_low={self.vol_low}, vol_high={self.vol_high}"
            )
        for name in ("w_patchtst_calm", "w_patchtst_stressed"):
            w = getattr(self, name)
            if not (0.0 <= w <= 1.0):
                raise ValueError(f"ensemble weight {name}={w}: expected a value in [0, 1]")


@dataclass(frozen=True)
class ForecastParams:
    """PatchTST + NHITS settings, execution lag, refit cadence and context windows.

    `h = lag + 1`: a decision at session d's close trades at the open `lag` sessions later
    and earns the next open-to-open return, which is step `h` of a forecast cut off at d.
    `refit=False` trains once at the training cutoff; an int R retrains every R sessions
    counted from it. Defaults are sized for daily returns on a CPU; `tiny()` is for tests.
    `cpu_threads` sets torch's intra-op threads while training/predicting on CPU (restored
    afterwards; None leaves torch's setting): these models are small, and on a shared
    2-core box 2 threads ran 7× slower than 1.
    """

    lag: int = 1
    input_size: int = 64
    max_steps: int = 300
    learning_rate: float = 1e-3
    batch_size: int = 32
    windows_batch_size: int = 128
    inference_windows_batch_size: int = 1024
    loss: str = "mae"
    # PatchTST (no exogenous inputs; RevIN normalizes each input window)
    patch_len: int = 16
    stride: int = 8
    hidden_size: int = 64
    n_heads: int = 4
    encoder_layers: int = 2
    linear_hidden_size: int = 128
    dropout: float = 0.1
    # NHITS (takes the features as hist_exog_list; robust per-window scaling)
    nhits_mlp_units: int = 128
    nhits_n_blocks: tuple[int, ...] = (1, 1, 1)
    nhits_pool_kernel_size: tuple[int, ...] = (2, 2, 1)
    nhits_freq_downsample: tuple[int, ...] = (2, 1, 1)
    nhits_scaler_type: str = "robust"
    # Reproducibility and hardware
    seed: int = 1
    accelerator: str = "cpu"
    devices: int = 1
    cpu_threads: int | None = 1
    refit: bool | int = False
    # Context signals and the blend
    vol_window: int = 20
    trend_window: int = 20
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)

    def __post_init__(self) -> None:
        positive = (
            "lag",
            "input_size",
            "max_steps",
            "batch_size",
            "windows_batch_size",
            "inference_windows_batch_size",
            "patch_len",
            "stride",
            "hidden_size",
            "n_heads",
            "encoder_layers",
            "linear_hidden_size",
            "nhits_mlp_units",
            "devices",
        )
        for name in positive:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"forecast param {name}={v!r}: expected a positive integer")
        if self.vol_window < 2 or self.trend_window < 1:
            raise ValueError(
                f"vol_window={self.vol_window} must be >= 2 and "
                f"trend_window={self.trend_window} >= 1"
            )
        if self.patch_len > self.input_size:
            raise ValueError(f"patch_len={self.patch_len} exceeds input_size={self.input_size}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: expected one of {LOSSES}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads={self.cpu_threads}: expected None or >= 1")
        if self.accelerator not in ("cpu", "gpu"):
            raise ValueError(f"accelerator {self.accelerator!r}: expected 'cpu' or 'gpu'")
        if not (self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate}: expected > 0")
        sizes = {
            len(self.nhits_n_blocks),
            len(self.nhits_pool_kernel_size),
            len(self.nhits_freq_downsample),
        }
        if len(sizes) != 1:
            raise ValueError(
                "nhits_n_blocks, nhits_pool_kernel_size and nhits_freq_downsample "
                "must have one entry per NHITS stack"
            )
        if self.refit is not False and (
            not isinstance(self.refit, int) or (self.refit is not True and self.refit < 1)
        ):
            raise ValueError(f"refit={self.refit!r}: expected False or a positive int")

    @property
    def h(self) -> int:
        """Forecast horizon: the step whose return a decision at d earns (lag + 1)."""
        return self.lag + 1

    @property
    def refit_every(self) -> int | None:
        """Sessions between retrains (None = train once); True means every session."""
        if self.refit is False:
            return None
        return 1 if self.refit is True else int(self.refit)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists); `from_dict` inverts it."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ForecastParams:
        """Rebuild from `to_dict` output; unknown keys raise naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown forecast params: {unknown}")
        kw = dict(d)
        for k in ("nhits_n_blocks", "nhits_pool_kernel_size", "nhits_freq_downsample"):
            if k in kw:
                kw[k] = tuple(kw[k])
        if isinstance(kw.get("ensemble"), dict):
            kw["ensemble"] = EnsembleParams(**kw["ensemble"])
        return cls(**kw)

    def fingerprint(self) -> str:
        """Short stable hash of every setting but the hardware ones (accelerator, devices,
        cpu_threads): part of the model version string."""
        d = {k: v for k, v in self.to_dict().items() if k not in _HARDWARE}
        blob = json.dumps(d, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    @classmethod
    def tiny(cls, **overrides: Any) -> ForecastParams:
        """A seconds-fast preset for tests and demos (small nets, few steps)."""
        base: dict[str, Any] = dict(
            input_size=16,
            max_steps=8,
            batch_size=8,
            windows_batch_size=32,
            patch_len=8,
            stride=4,
            hidden_size=16,
            n_heads=2,
            encoder_layers=1,
            linear_hidden_size=16,
            nhits_mlp_units=16,
            vol_window=5,
            trend_window=5,
        )
        base.update(overrides)
        return cls(**base)


def model_version(params: ForecastParams, features: tuple[str, ...], train_end: Any) -> str:
    """'pt+nh-<params hash>-<features hash>@<training cutoff>': one string per trained pair."""
    feats = hashlib.sha256(json.dumps(list(features)).encode()).hexdigest()[:6]
    return f"pt+nh-{params.fingerprint()}-{feats}@{train_end}"
