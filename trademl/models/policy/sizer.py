"""`GRPOSizer`: the scikit-learn-shaped estimator around the GRPO trainer.

fit(frame) splits the sessions in time order (train, embargo, validation), fits the state
standardization on the training rows only, trains with `grpo_update` and keeps the epoch with
the best validation Sharpe; act/positions score new frames with the deterministic policy.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl
import torch

from trademl.models.policy.data import (
    BASE_FEATURES,
    check_frame,
    finite_rows,
    previous_index,
    session_codes,
    session_mean_pnl,
    time_split,
)
from trademl.models.policy.grpo import (
    Batch,
    GRPOParams,
    grpo_update,
    init_generator,
    make_optimizer,
    numpy_state,
    previous_reference,
    reference_concentrations,
)
from trademl.models.policy.network import BetaPolicyNet
from trademl.validation.metrics import sharpe

__all__ = ["GRPOSizer", "NotFittedError"]


class NotFittedError(RuntimeError):
    """The sizer was used before fit (or load)."""


@contextlib.contextmanager
def _torch_settings(num_threads: int | None) -> Iterator[None]:
    """torch.use_deterministic_algorithms (and num_threads if given) for the duration,
    restored afterwards."""
    was, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)
        torch.set_num_threads(threads)


class GRPOSizer:
    """Position sizer trained by GRPO on out-of-sample forecasts.

    The position a size applies to is `size · exposure` when the frame has an `exposure`
    column (e.g. a book's target weight: the policy then sizes the book per name), else
    `size · sign(y_hat)`.

    Parameters
    ----------
    params : GRPOParams, the training hyperparameters.
    extra_features : state columns beyond (y_hat, vol, trend), appended in this order.

    Fitted attributes: policy_ (BetaPolicyNet, eval mode), feature_names_, state_mean_ and
    state_std_ (of the oriented state, see `orient`), vol_target_ (median training vol, the
    vol-target baseline's default), best_epoch_ (0 = the initial constant-size policy),
    best_val_sharpe_, history_ (one dict per epoch), n_train_, n_val_, train_end_ /
    val_start_ / val_end_ (sessions).
    """

    def __init__(
        self, *, params: GRPOParams | None = None, extra_features: Sequence[str] = ()
    ) -> None:
        self.params = params if params is not None else GRPOParams()
        self.extra_features = tuple(extra_features)

    @property
    def features(self) -> tuple[str, ...]:
        return (*BASE_FEATURES, *self.extra_features)

    # ------------------------------------------------------------------------------ fit

    def fit(self, frame: pl.DataFrame) -> GRPOSizer:
        """Train on `frame` (session, symbol, features, y); rows with a non-finite feature or y
        are dropped. Returns self."""
        p = self.params
        feats = self.features
        check_frame(frame, feats, need_y=True)
        frame = frame.filter(pl.Series(finite_rows(frame, [*feats, "y", *_exposure_col(frame)])))
        codes, sessions = session_codes(frame)
        train_m, val_m = time_split(codes, len(sessions), p.val_frac, p.val_embargo)
        train, val = frame.filter(pl.Series(train_m)), frame.filter(pl.Series(val_m))
        mean, std = BetaPolicyNet.orient_stats(train.select(feats).to_numpy())

        with _torch_settings(p.num_threads):
            gen = init_generator(p)
            net = BetaPolicyNet(
                len(feats), p.hidden, state_mean=mean, state_std=std, generator=gen
            ).to(p.device)
            opt = make_optimizer(net, p)
            t = self._tensors(train)
            ref_a, ref_b = reference_concentrations(net, t["state"])
            val_eval = self._val_evaluator(val)
            best_sharpe, best_epoch = val_eval(net), 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
            history: list[dict[str, float]] = [{"epoch": 0, "val_sharpe": best_sharpe}]
            stale = 0
            for epoch in range(1, p.epochs + 1):
                if p.cost_reference == "previous":
                    prev = previous_reference(net, t["state"], t["sign"], t["prev_idx"])
                else:
                    prev = torch.zeros_like(t["y"])
                perm = torch.randperm(len(train), generator=gen, device=p.device)
                sums: dict[str, float] = {}
                n_batches = 0
                for lo in range(0, len(train), p.batch_size):
                    i = perm[lo : lo + p.batch_size]
                    b = Batch(
                        t["state"][i],
                        t["y"][i],
                        t["vol"][i],
                        t["sign"][i],
                        prev[i],
                        ref_a[i],
                        ref_b[i],
                    )
                    stats = grpo_update(net, opt, b, p, gen)
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + float(v)
                    n_batches += 1
                score = val_eval(net)
                history.append(
                    {"epoch": epoch, "val_sharpe": score}
                    | {k: v / n_batches for k, v in sums.items()}
                )
                if score > best_sharpe or (math.isnan(best_sharpe) and not math.isnan(score)):
                    best_sharpe, best_epoch, stale = score, epoch, 0
                    best_state = {k: v.clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                    if stale >= p.patience:
                        break
            net.load_state_dict(best_state)

        self.policy_ = net.eval()
        self.feature_names_ = feats
        self.state_mean_, self.state_std_ = mean, std
        self.vol_target_ = float(np.median(train.get_column("vol").to_numpy()))
        self.best_epoch_, self.best_val_sharpe_ = best_epoch, float(best_sharpe)
        self.history_ = history
        self.n_train_, self.n_val_ = len(train), len(val)
        self.train_end_ = train.get_column("session").max()
        self.val_start_ = val.get_column("session").min()
        self.val_end_ = val.get_column("session").max()
        return self

    def _tensors(self, frame: pl.DataFrame) -> dict[str, torch.Tensor]:
        dev = self.params.device
        return {
            "state": numpy_state(frame.select(self.features).to_numpy(), dev),
            "y": numpy_state(frame.get_column("y").to_numpy(), dev),
            "vol": numpy_state(frame.get_column("vol").to_numpy(), dev),
            "sign": numpy_state(exposure(frame), dev),
            "prev_idx": torch.as_tensor(previous_index(frame).copy(), device=dev),
        }

    def _val_evaluator(self, val: pl.DataFrame) -> Any:
        """Closure: annualized Sharpe of the deterministic policy's session PnL on `val`."""
        p = self.params
        state = numpy_state(val.select(self.features).to_numpy(), p.device)
        base, y = exposure(val), val.get_column("y").to_numpy()
        prev_idx = previous_index(val)
        codes, sessions = session_codes(val)

        def evaluate(net: BetaPolicyNet) -> float:
            with torch.inference_mode():
                action = net(state).double().cpu().numpy()
            pnl, _ = session_mean_pnl(action * base, y, prev_idx, codes, len(sessions), p.cost_bps)
            return sharpe(pnl, p.periods_per_year)

        return evaluate

    # --------------------------------------------------------------------------- scoring

    def _check_fitted(self) -> None:
        if not hasattr(self, "policy_"):
            raise NotFittedError("GRPOSizer is not fitted: call fit or load_policy first")

    def act_array(self, state: np.ndarray) -> np.ndarray:
        """Deterministic size 2·α/(α+β) ∈ (0, 2) for raw states [n, n_features] (float64 out;
        NaN where a state value is not finite)."""
        self._check_fitted()
        state = np.asarray(state)
        if state.ndim != 2 or state.shape[1] != len(self.feature_names_):
            raise ValueError(
                f"state must be [n, {len(self.feature_names_)}] ({self.feature_names_}), "
                f"got shape {state.shape}"
            )
        with torch.inference_mode():
            x = numpy_state(state, self.params.device)
            return self.policy_(x).double().cpu().numpy()

    def act(self, frame: pl.DataFrame) -> np.ndarray:
        """Deterministic size per row of `frame` (its feature columns), in row order."""
        self._check_fitted()
        for col in self.feature_names_:
            if col not in frame.columns:
                raise ValueError(f"frame is missing state column {col!r}")
        return self.act_array(frame.select(self.feature_names_).to_numpy().astype(np.float64))

    def positions(self, frame: pl.DataFrame) -> np.ndarray:
        """Signed positions size·exposure (or size·sign(y_hat)) per row of `frame`."""
        return self.act(frame) * exposure(frame)


def _exposure_col(frame: pl.DataFrame) -> list[str]:
    return ["exposure"] if "exposure" in frame.columns else []


def exposure(frame: pl.DataFrame) -> np.ndarray:
    """What a size of 1 holds per row: the `exposure` column, else sign(y_hat)."""
    if "exposure" in frame.columns:
        return frame.get_column("exposure").cast(pl.Float64).to_numpy()
    return np.sign(frame.get_column("y_hat").cast(pl.Float64).to_numpy())
