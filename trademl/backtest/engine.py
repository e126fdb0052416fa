"""Deterministic daily backtest, vectorized over symbols and sessions.

Conventions (a decision at session d's close trades at session d+lag):

- Book: constant notional `capital`. Weights are fractions of capital; each session's P&L is
  swept to cash, so daily returns are P&L / capital and the equity index compounds them
  (equity_t = ∏(1 + net)). Costs use the dollar size of the book only through impact, where
  the traded shares Q = |Δweight|·capital / price are compared with ADV (shares).
- Holdings drift: between trades a name keeps its shares, so its weight drifts with its price;
  turnover at a trade is |target − drifted weight|, at the execution price.
- Targets: row d of `weights` is decided at d's close and executed at session d+lag at the
  open (price="open") or close (price="close"); lag=0 needs price="close". A NaN target means
  no target: keep the shares ("hold") or, with nan_target="flat", go to 0. A target is skipped
  (shares held) where the execution price is missing, since nothing trades there.
- Prices: missing or non-positive prices are filled forward along the session's
  open → close → next open path, so a name without a bar has no return that session.
- Costs of a trade at session t use ADV and σ of the decision row t−lag (known at decision
  time) and are paid at t; fills are auction fills (opening/closing auction) when
  auction_fills. Borrow: a short held at a session's close pays one session of borrow at its
  tier (CostModel.days_per_year day count), tiers from that row's dollar-ADV terciles
  (ADV × close) unless `borrow_tiers` are given. Cash (1 − net exposure at the previous close)
  earns cash_rate / periods_per_year per session.

Work proceeds in blocks of `chunk_sessions` rows carrying the last prices and shares across
blocks, so temporaries stay at block size; there is no per-session Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import polars as pl

from trademl.costs import CostModel, cost_breakdown, liquidity_tiers

__all__ = ["BacktestParams", "BacktestResult", "run_backtest"]


@dataclass(frozen=True)
class BacktestParams:
    """Execution and accounting settings; see the module docstring for the conventions."""

    lag: int = 1
    price: Literal["open", "close"] = "open"
    capital: float = 10_000_000.0
    cash_rate: float = 0.0
    nan_target: Literal["hold", "flat"] = "hold"
    auction_fills: bool = True
    periods_per_year: float = 252.0
    chunk_sessions: int = 64

    def __post_init__(self) -> None:
        if self.price not in ("open", "close"):
            raise ValueError(f"BacktestParams.price must be 'open' or 'close', got {self.price!r}")
        if self.lag < 0 or (self.lag == 0 and self.price == "open"):
            raise ValueError(
                f"BacktestParams.lag must be >= 1 with price='open' and >= 0 with 'close' "
                f"(a decision at d's close cannot trade at d's open), got lag={self.lag}"
            )
        if self.nan_target not in ("hold", "flat"):
            raise ValueError(
                f"BacktestParams.nan_target must be 'hold' or 'flat', got {self.nan_target!r}"
            )
        if not (np.isfinite(self.capital) and self.capital > 0):
            raise ValueError(f"BacktestParams.capital must be > 0, got {self.capital!r}")
        if not np.isfinite(self.cash_rate) or self.periods_per_year <= 0:
            raise ValueError("BacktestParams.cash_rate must be finite, periods_per_year > 0")
        if self.chunk_sessions < 1:
            raise ValueError("BacktestParams.chunk_sessions must be >= 1")


@dataclass(frozen=True)
class BacktestResult:
    """Per-session outputs, each an array of length n_sessions (fractions of capital).

    equity is the index after each session (1.0 before the first); turnover is one-way traded
    notional; cost columns are positive amounts; exposures are at the session's close;
    participation_* are over the names traded that session (traded shares / ADV, 0 when none,
    names without ADV skipped).
    """

    equity: np.ndarray
    gross_returns: np.ndarray
    net_returns: np.ndarray
    turnover: np.ndarray
    fee: np.ndarray
    spread: np.ndarray
    impact: np.ndarray
    auction: np.ndarray
    borrow: np.ndarray
    cash_interest: np.ndarray
    long_exposure: np.ndarray
    short_exposure: np.ndarray
    gross_exposure: np.ndarray
    net_exposure: np.ndarray
    participation_max: np.ndarray
    participation_mean: np.ndarray
    sessions: pl.Series | None = None

    @property
    def costs(self) -> np.ndarray:
        """Total trading and borrow cost per session."""
        return self.fee + self.spread + self.impact + self.auction + self.borrow

    def to_frame(self) -> pl.DataFrame:
        """All series as a polars frame (with a `date` column when sessions are known)."""
        cols = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sessions"}
        cols["costs"] = self.costs
        df = pl.DataFrame(cols)
        if self.sessions is not None:
            df = df.insert_column(0, self.sessions.alias("date"))
        return df


def _ffill_rows(arr: np.ndarray) -> None:
    """Forward-fill NaNs down the rows of C-contiguous `arr` in place (row 0 seeds; a NaN
    with no value above stays NaN).

    Works on the NaN cells only: each hole points at the cell above; pointer jumping
    (⌈log2 rows⌉ rounds) follows runs of holes to the first value above them.
    """
    flat = arr.reshape(-1)
    holes = np.flatnonzero(np.isnan(flat))
    if holes.size == 0:
        return
    above = holes - arr.shape[1]
    pos = np.minimum(np.searchsorted(holes, above), holes.size - 1)
    far = np.where((above >= 0) & (holes[pos] == above), pos, np.arange(holes.size))
    while True:  # at most ⌈log2(rows)⌉ rounds
        nxt = far[far]
        if np.array_equal(nxt, far):
            break
        far = nxt
    src = above[far]  # the cell above the top hole of each run
    ok = src >= 0
    flat[holes[ok]] = flat[src[ok]]


def _all_valid_prices(x: np.ndarray) -> bool:
    """True when every price is finite and > 0 (two reductions, no temporaries)."""
    return x.size == 0 or bool(x.min() > 0 and x.max() < np.inf)


def _valid_price(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x)
        ok &= x > 0
    return ok


def _marks(
    o_blk: np.ndarray | None, c_blk: np.ndarray, mark: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Filled (open, close) marks of a block and the raw validity masks (None: all valid).

    Missing prices take the last price along open → close → next open, seeded by `mark` (the
    previous close); 0 before a name's first price (no shares can be held there).
    """
    if _all_valid_prices(c_blk) and (o_blk is None or _all_valid_prices(o_blk)):
        return o_blk, c_blk, None, None
    c_ok = _valid_price(c_blk)
    o_ok = None if o_blk is None else _valid_price(o_blk)
    m, n = c_blk.shape
    step = 1 if o_blk is None else 2
    path = np.empty((step * m + 1, n))
    path[0] = mark
    path[step::step] = np.where(c_ok, c_blk, np.nan)
    if o_blk is not None:
        path[1::2] = np.where(o_ok, o_blk, np.nan)
    _ffill_rows(path)
    path[np.isnan(path)] = 0.0
    return (None if o_blk is None else path[1::2]), path[step::step], o_ok, c_ok


def _shifted(mat: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo..hi−1 of `mat`, NaN for negative row numbers."""
    if lo >= 0:
        return mat[lo:hi]
    pad = np.full((min(-lo, hi - lo), mat.shape[1]), np.nan)
    return np.vstack([pad, mat[max(lo, 0) : max(hi, 0)]])


def _as_matrix(x: np.ndarray | None, name: str, shape: tuple[int, int]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (sessions × symbols), got {a.shape}")
    return a


def _label(sessions: pl.Series | None, symbols: pl.Series | None, t: int, j: int) -> str:
    s = sessions[int(t)] if sessions is not None else int(t)
    y = symbols[int(j)] if symbols is not None else int(j)
    return f"session {s} symbol {y!r}"


def run_backtest(
    weights: np.ndarray,
    open_: np.ndarray | None,
    close: np.ndarray,
    adv: np.ndarray,
    sigma: np.ndarray,
    *,
    params: BacktestParams | None = None,
    costs: CostModel | None = None,
    borrow_tiers: np.ndarray | None = None,
    sessions: pl.Series | None = None,
    symbols: pl.Series | None = None,
) -> BacktestResult:
    """Simulate target weights with costs and borrow; session-major (sessions × symbols) inputs.

    Parameters
    ----------
    weights
        Target weights decided at each session's close (fractions of capital); NaN = no target.
    open_, close
        Prices (adjusted); open_ may be None when params.price == "close".
    adv, sigma
        Average daily volume in shares and daily return volatility known at each session's
        close; NaN allowed (impact then charged at CostModel.unknown_impact_bps).
    params, costs
        Execution settings and the cost model (defaults: BacktestParams(), CostModel()).
    borrow_tiers
        Optional integer tiers, shape (n_symbols,) or (n_sessions, n_symbols), instead of
        dollar-ADV terciles.
    sessions, symbols
        Optional labels used in error messages and BacktestResult.sessions.

    Raises ValueError on mismatched shapes or an infinite weight (naming session and symbol).
    """
    p = params or BacktestParams()
    cm = costs or CostModel()
    w_all = np.asarray(weights, dtype=np.float64)
    if w_all.ndim != 2:
        raise ValueError(f"weights must be 2-D (sessions × symbols), got shape {w_all.shape}")
    shape = w_all.shape
    t_len, n = shape
    c_all = _as_matrix(close, "close", shape)
    if open_ is None and p.price == "open":
        raise ValueError("open_ prices are required with price='open'")
    o_all = None if open_ is None else _as_matrix(open_, "open_", shape)
    adv_all = _as_matrix(adv, "adv", shape)
    sig_all = _as_matrix(sigma, "sigma", shape)
    tiers_all = None
    if borrow_tiers is not None:
        tiers_all = np.broadcast_to(np.asarray(borrow_tiers, dtype=np.int64), shape)
    if sessions is not None and len(sessions) != t_len:
        raise ValueError(f"sessions has {len(sessions)} labels for {t_len} sessions")
    bad = np.isinf(w_all)
    if bad.any():
        t, j = np.argwhere(bad)[0]
        raise ValueError(f"weights is infinite at {_label(sessions, symbols, t, j)}")

    names = ["gross", "turnover", "fee", "spread", "impact", "auction", "borrow", "cash",
             "long", "short", "pmax", "pmean"]  # fmt: skip
    out = {k: np.zeros(t_len) for k in names}
    mark = np.full(n, np.nan)  # last filled price: the previous session's close
    s_prev = np.zeros(n)  # shares per unit of capital held before the block
    net_prev = 0.0  # net exposure at the previous close
    rates = np.asarray(cm.borrow_bps_tiers) * 1e-4 / cm.days_per_year
    for a in range(0, t_len if n else 0, p.chunk_sessions):  # no symbols: cash only
        b = min(a + p.chunk_sessions, t_len)
        m, rows = b - a, slice(a, b)
        o_f, c_f, o_ok, c_ok = _marks(None if o_all is None else o_all[rows], c_all[rows], mark)
        px_f, px_ok = (o_f, o_ok) if p.price == "open" else (c_f, c_ok)
        # Shares per unit of capital after each session's trade; row 0 = held before the block.
        s_ext = np.empty((m + 1, n))
        s_ext[0] = s_prev
        tgt = _shifted(w_all, a - p.lag, b - p.lag)
        if p.nan_target == "flat":
            tgt = np.where(np.isnan(tgt), 0.0, tgt)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(tgt, px_f, out=s_ext[1:])
        if px_ok is not None:
            s_ext[1:][~px_ok] = np.nan  # no price to trade at: hold
        _ffill_rows(s_ext)
        s, s_lag = s_ext[1:], s_ext[:-1]
        ds = s - s_lag
        np.abs(ds, out=ds)
        notional = ds * px_f
        ds *= p.capital  # traded shares
        cb = cost_breakdown(
            cm,
            notional,
            ds,
            _shifted(adv_all, a - p.lag, b - p.lag),
            _shifted(sig_all, a - p.lag, b - p.lag),
            auction=p.auction_fills,
            reduce_axis=1,
        )
        out["turnover"][rows] = notional.sum(1)
        for key in ("fee", "spread", "impact", "auction"):
            out[key][rows] = getattr(cb, key)
        part = cb.participation  # traded shares / ADV: 0 without a trade, NaN without ADV
        if np.isnan(part.max()):
            part = np.where(np.isnan(part), 0.0, part)
        out["pmax"][rows] = part.max(1)
        out["pmean"][rows] = part.sum(1) / np.maximum(np.count_nonzero(part, axis=1), 1)
        # P&L per unit of capital: shares × price change, overnight then intraday.
        last = np.nan_to_num(mark, nan=0.0)
        lo_px = o_f if p.price == "open" else c_f
        g = np.empty(m)
        g[:1] = np.einsum("ij,ij->i", s_lag[:1], lo_px[:1] - last)
        g[1:] = np.einsum("ij,ij->i", s_lag[1:], lo_px[1:] - c_f[:-1])
        if p.price == "open":
            g += np.einsum("ij,ij->i", s, c_f - o_f)
        out["gross"][rows] = g
        val = s * c_f  # holdings at the close
        net_exp = val.sum(1)
        neg = np.minimum(val, 0.0, out=val)
        short = -neg.sum(1)
        out["short"][rows], out["long"][rows] = short, net_exp + short
        if rates.min() == rates.max():
            out["borrow"][rows] = short * rates[0]
        else:
            tier = (
                tiers_all[rows]
                if tiers_all is not None
                else liquidity_tiers(adv_all[rows] * c_f, cm.n_tiers)  # dollar-ADV terciles
            )
            out["borrow"][rows] = -np.einsum("ij,ij->i", neg, cm.borrow_daily_rate(tier))
        prev = np.concatenate([[net_prev], net_exp[:-1]])
        out["cash"][rows] = (1.0 - prev) * (p.cash_rate / p.periods_per_year)
        net_prev = float(net_exp[-1])
        mark, s_prev = c_f[-1].copy(), s[-1].copy()
        mark[mark == 0] = np.nan

    if n == 0:
        out["cash"][:] = p.cash_rate / p.periods_per_year
    cost = out["fee"] + out["spread"] + out["impact"] + out["auction"] + out["borrow"]
    net = out["gross"] + out["cash"] - cost
    return BacktestResult(
        equity=np.cumprod(1.0 + net),
        gross_returns=out["gross"],
        net_returns=net,
        turnover=out["turnover"],
        fee=out["fee"],
        spread=out["spread"],
        impact=out["impact"],
        auction=out["auction"],
        borrow=out["borrow"],
        cash_interest=out["cash"],
        long_exposure=out["long"],
        short_exposure=out["short"],
        gross_exposure=out["long"] + out["short"],
        net_exposure=out["long"] - out["short"],
        participation_max=out["pmax"],
        participation_mean=out["pmean"],
        sessions=sessions,
    )
