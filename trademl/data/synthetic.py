"""The built-in synthetic market: realistic daily OHLCV with an optional planted alpha.

Structure: a market factor with calm/stressed volatility regimes, sector factors,
per-name stochastic volatility, Student-t tails, separate overnight and intraday
moves, an intraday range, volume with ADV dispersion that rises with |move|, and
occasional missing bars. In ``planted`` mode the k-session forward return (from
the next session's open) leans on the cross-sectional rank of 20-session
momentum, with a drift calibrated to a target rank IC; optionally a second signal
(short-term reversal: the last 5 sessions' losers earn more, at `reversal_ic`) is
planted beside it; ``noise`` mode has none.

Random draws come in fixed blocks of sessions seeded by (seed, block), so the
history up to any session is identical whatever end date is asked for: the
market is point-in-time by construction.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from trademl.data.calendar import SessionCalendar

BLOCK = 256
N_SECTORS = 11
MOM_LOOKBACK = 20
REVERSAL_LOOKBACK = 5
OVERNIGHT_SHARE = 0.25


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that defines a synthetic market (with the calendar)."""

    n_symbols: int = 100
    seed: int = 7
    start: dt.date = dt.date(2019, 1, 2)
    alpha_mode: str = "planted"
    alpha_feature: str = "mom_20"
    horizon: int = 5
    target_ic: float = 0.05
    missing_bar_rate: float = 0.002
    reversal_ic: float = 0.0

    def __post_init__(self) -> None:
        if self.alpha_mode not in ("planted", "noise"):
            raise ValueError(f"alpha mode {self.alpha_mode!r}: expected 'planted' or 'noise'")
        if self.alpha_feature != "mom_20":
            raise ValueError(f"alpha feature {self.alpha_feature!r}: only 'mom_20' is planted")
        if self.n_symbols < 2:
            raise ValueError("a synthetic market needs at least 2 symbols")

    @property
    def drift_coef(self) -> float:
        """Daily drift per unit of signal, in units of each name's daily vol.

        The label sums k daily drifts of a persistent signal (20-session momentum
        ranks decorrelate by ~1/20 a session) over k days of unit noise, plus ~14%
        more cross-sectional variance from factor exposures.
        """
        return self._drift(self.target_ic)

    @property
    def reversal_coef(self) -> float:
        """Daily drift per unit of the reversal signal (5-session ranks decorrelate faster)."""
        return self._drift(self.reversal_ic, REVERSAL_LOOKBACK)

    def _drift(self, ic: float, lookback: int = MOM_LOOKBACK) -> float:
        if self.alpha_mode == "noise" or ic == 0:
            return 0.0
        k = self.horizon
        persistence = max(k - k * (k - 1) / (2 * lookback), 1.0)
        return ic * math.sqrt(k * 1.14) / (persistence * math.sqrt(1 - ic * ic))


def _symbols(n: int) -> list[str]:
    width = max(4, len(str(n)))
    return [f"S{i:0{width}d}" for i in range(1, n + 1)]


def _rank_z(x: np.ndarray) -> np.ndarray:
    """Cross-sectional ranks scaled to zero mean and unit variance (per row)."""
    order = np.argsort(x, axis=-1)
    n = x.shape[-1]
    ranks = np.empty(order.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, np.broadcast_to(np.arange(n, dtype=np.float64), x.shape), -1)
    return (ranks - (n - 1) / 2) / math.sqrt((n * n - 1) / 12)


class SyntheticMarket:
    """Deterministic synthetic daily bars on an exchange calendar."""

    def __init__(
        self, spec: SyntheticSpec, calendar: SessionCalendar, cache_dir: str | None = None
    ) -> None:
        """`cache_dir`: keep the generated history there (`synthetic_cache`), so a later
        session costs one session of simulation instead of the whole history."""
        self.spec = spec
        self.calendar = calendar
        self.cache_dir = cache_dir
        self.symbols = _symbols(spec.n_symbols)
        rng = np.random.default_rng([spec.seed, 0])
        n = spec.n_symbols
        self.beta = rng.uniform(0.6, 1.4, n)
        self.sector = rng.integers(0, N_SECTORS, n)
        self.idio_vol = np.clip(rng.lognormal(math.log(0.015), 0.35, n), 0.006, 0.05)
        self.price0 = rng.lognormal(math.log(40.0), 0.8, n)
        self.adv = rng.lognormal(math.log(1.5e6), 1.0, n)

    def sessions(self, end: dt.date) -> list[dt.date]:
        return self.calendar.sessions_in_range(self.spec.start, end)

    def load(self, start: dt.date | None = None, end: dt.date | None = None) -> pl.DataFrame:
        """Bars (date, symbol, open, high, low, close, volume) for start ≤ date ≤ end."""
        end = end or self.calendar.latest_completed_session()
        if self.cache_dir:
            from trademl.data.synthetic_cache import cached_generate

            return cached_generate(self, self.cache_dir, start, end)[0]
        bars = _generate(self, end)[0]
        if start is not None:
            bars = bars.filter(pl.col("date") >= start)
        return bars

    def ground_truth(self, end: dt.date | None = None) -> dict[str, object]:
        """The planted alpha's definition and its realized rank IC up to `end`."""
        end = end or self.calendar.latest_completed_session()
        if self.cache_dir:
            from trademl.data.synthetic_cache import cached_generate

            return dict(cached_generate(self, self.cache_dir, end, end)[1])
        return dict(_generate(self, end)[1])

    def __hash__(self) -> int:
        return hash((self.spec, self.calendar.exchange, self.calendar.first))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SyntheticMarket) and hash(self) == hash(other)


@dataclass
class Carry:
    """What the simulation carries into session `t` from the sessions before it: the
    recursion's state, the last `TAIL` sessions of the series it looks back on, and the
    realized rank IC of every session whose label is complete (NaN before the signal)."""

    t: int
    h: np.ndarray
    stressed: bool
    prev_close: np.ndarray
    log_close: np.ndarray
    signal: np.ndarray
    signal2: np.ndarray
    open_: np.ndarray
    ic: np.ndarray
    ic2: np.ndarray

    @staticmethod
    def start(market: SyntheticMarket) -> Carry:
        n = market.spec.n_symbols
        none = np.empty((0, n))
        return Carry(
            0,
            np.zeros(n),
            False,
            np.log(market.price0),
            none,
            none,
            none,
            none,
            np.empty(0),
            np.empty(0),
        )


#: Sessions of history a chunk needs from before it (momentum lookback, IC label window).
TAIL = MOM_LOOKBACK + 8


def simulate(market: SyntheticMarket, carry: Carry, t1: int) -> tuple[dict[str, np.ndarray], Carry]:
    """Sessions carry.t … t1−1 of the market: their rows (open, high, low, close, volume,
    present) and the carry into t1. Chunks glue exactly: simulating 0…t then t…T gives the
    same numbers as 0…T (every draw is keyed by session, every step row by row)."""
    spec, n, t0 = market.spec, market.spec.n_symbols, carry.t
    m = t1 - t0
    blocks = range(t0 // BLOCK, -(-t1 // BLOCK))
    draws = [_block_draws(spec.seed, b, n) for b in blocks]
    skip = t0 - blocks[0] * BLOCK

    def d(name: str) -> np.ndarray:
        return np.concatenate([blk[name] for blk in draws])[skip : skip + m]

    z_m, z_sec, u_reg = d("z_m"), d("z_sec"), d("u_reg")
    e_on, e_id, z_h = d("e_on"), d("e_id"), d("z_h")
    b, b2 = spec.drift_coef, spec.reversal_coef
    s_on, s_id = math.sqrt(OVERNIGHT_SHARE), math.sqrt(1 - OVERNIGHT_SHARE)
    phi, sig_h = 0.98, 0.25
    # series with the carried history in front: row p ↔ session t0 − k + p
    k = carry.log_close.shape[0]
    log_close = np.concatenate([carry.log_close, np.empty((m, n))])
    signal = np.concatenate([carry.signal, np.zeros((m, n))])
    signal2 = np.concatenate([carry.signal2, np.zeros((m, n))])
    log_open, vol, moves = np.empty((m, n)), np.empty((m, n)), np.empty((m, n))
    h, stressed, prev_close = carry.h, carry.stressed, carry.prev_close
    for i in range(m):
        t, p = t0 + i, k + i
        if t > 0:
            stressed = u_reg[i] < (0.95 if stressed else 0.01)
        reg = 1.6 if stressed else 1.0
        sig_m = 0.022 if stressed else 0.008
        h = phi * h + math.sqrt(1 - phi * phi) * sig_h * z_h[i]
        v = market.idio_vol * np.exp(h - sig_h * sig_h / 2) * reg
        vol[i] = v
        factor_on = market.beta * sig_m * z_m[i, 0] + 0.006 * reg * z_sec[i, 0, market.sector]
        factor_id = market.beta * sig_m * z_m[i, 1] + 0.006 * reg * z_sec[i, 1, market.sector]
        on = s_on * (factor_on + v * e_on[i])
        intra = s_id * (factor_id + v * e_id[i])
        if t >= 2:
            on = on + 0.5 * v * (b * signal[p - 2] + b2 * signal2[p - 2])
        if t >= 1:
            intra = intra + 0.5 * v * (b * signal[p - 1] + b2 * signal2[p - 1])
        log_open[i] = prev_close + on
        log_close[p] = log_open[i] + intra
        prev_close = log_close[p]
        moves[i] = (on + intra) / v
        if t >= MOM_LOOKBACK:
            signal[p] = _rank_z(log_close[p] - log_close[p - MOM_LOOKBACK])
            if b2:  # short-term reversal: the last 5 sessions' losers earn more
                signal2[p] = _rank_z(log_close[p - REVERSAL_LOOKBACK] - log_close[p])

    open_, close = np.exp(log_open), np.exp(log_close[k:])
    rng_scale = 0.5 * s_id * vol
    high = np.maximum(open_, close) * np.exp(np.abs(d("z_hi")) * rng_scale)
    low = np.minimum(open_, close) * np.exp(-np.abs(d("z_lo")) * rng_scale)
    volume = market.adv * np.exp(0.35 * d("z_v") - 0.06 + 0.4 * (np.abs(moves) - 0.8))
    open_, close = np.round(open_, 4), np.round(close, 4)
    rows = {
        "open": open_,
        "high": np.maximum(np.round(high, 4), np.maximum(open_, close)),
        "low": np.minimum(np.round(low, 4), np.minimum(open_, close)),
        "close": close,
        "volume": np.round(volume),
        "present": d("u_miss") >= spec.missing_bar_rate,
    }
    opens = np.concatenate([carry.open_, open_])
    ic = _ic_rows(spec, carry.ic.size, t0 - k, t1, signal, opens)
    ic2 = _ic_rows(spec, carry.ic2.size, t0 - k, t1, signal2, opens) if b2 else carry.ic2
    tail = min(TAIL, t1)
    return rows, Carry(
        t1,
        h,
        stressed,
        prev_close,
        log_close[-tail:],
        signal[-tail:],
        signal2[-tail:],
        opens[-tail:],
        np.concatenate([carry.ic, ic]),
        np.concatenate([carry.ic2, ic2]),
    )


def _ic_rows(
    spec: SyntheticSpec, done: int, first: int, t1: int, signal: np.ndarray, opens: np.ndarray
) -> np.ndarray:
    """Realized rank IC of sessions done … (t1 − lag − k − 1), the ones whose label became
    complete by t1; `signal` and `opens` hold sessions first … t1 − 1. NaN before the signal."""
    k, lag = spec.horizon, 1
    stop = max(done, t1 - lag - k)
    out = np.full(stop - done, np.nan)
    lo = max(done, MOM_LOOKBACK)
    if stop > lo:
        rows = slice(lo - first, stop - first)
        fwd = (
            opens[lo - first + lag + k : stop - first + lag + k]
            / opens[lo - first + lag : stop - first + lag]
            - 1
        )
        out[lo - done :] = np.mean(_rank_z(signal[rows]) * _rank_z(fwd), axis=1)
    return out


def bars_frame(market: SyntheticMarket, sessions: list[dt.date], rows: dict[str, np.ndarray]):
    """The rows of `simulate` as bars (date, symbol, open, high, low, close, volume)."""
    n = market.spec.n_symbols
    bars = pl.DataFrame(
        {
            "date": np.repeat(np.array(sessions, dtype="datetime64[D]"), n),
            "symbol": pl.Series(market.symbols * len(sessions), dtype=pl.String),
            **{c: rows[c].ravel() for c in ("open", "high", "low", "close", "volume")},
            "_present": rows["present"].ravel(),
        }
    )
    return bars.with_columns(pl.col("date").cast(pl.Date)).filter("_present").drop("_present")


def truth_of(spec: SyntheticSpec, sessions: list[dt.date], carry: Carry) -> tuple:
    """The ground truth as of the last of `sessions` from the per-session ICs."""
    t_len, k, lag = len(sessions), spec.horizon, 1
    lo, hi = MOM_LOOKBACK, max(MOM_LOOKBACK, t_len - lag - k)
    truth = _ground_truth(spec, sessions, carry.ic[lo:hi])
    if spec.reversal_coef:
        second = _ground_truth(spec, sessions, carry.ic2[lo:hi])
        truth |= {f"reversal_{k}": second[k] for k in ("realized_rank_ic", "realized_t_stat")}
    return tuple(truth.items())


@lru_cache(maxsize=4)
def _generate(market: SyntheticMarket, end: dt.date) -> tuple[pl.DataFrame, tuple]:
    sessions = market.sessions(end)
    if not sessions:
        raise ValueError(f"no sessions between data.start={market.spec.start} and {end}")
    rows, carry = simulate(market, Carry.start(market), len(sessions))
    return bars_frame(market, sessions, rows), truth_of(market.spec, sessions, carry)


def _block_draws(seed: int, block: int, n: int) -> dict[str, np.ndarray]:
    """All random draws of one block of sessions; independent of how many are used."""
    rng = np.random.default_rng([seed, 1, block])
    t4 = 1 / math.sqrt(2)  # a Student-t with 4 dof has variance 2
    return {
        "z_m": rng.standard_normal((BLOCK, 2)),
        "z_sec": rng.standard_normal((BLOCK, 2, N_SECTORS)),
        "u_reg": rng.random(BLOCK),
        "e_on": rng.standard_t(4, (BLOCK, n)) * t4,
        "e_id": rng.standard_t(4, (BLOCK, n)) * t4,
        "z_h": rng.standard_normal((BLOCK, n)),
        "z_hi": rng.standard_normal((BLOCK, n)),
        "z_lo": rng.standard_normal((BLOCK, n)),
        "z_v": rng.standard_normal((BLOCK, n)),
        "u_miss": rng.random((BLOCK, n)),
    }


def _ground_truth(spec: SyntheticSpec, sessions: list[dt.date], arr: np.ndarray) -> dict:
    """The planted signal's realized per-session rank IC (`arr`) vs the open-to-open label."""
    k, lag = spec.horizon, 1
    mean = float(arr.mean()) if arr.size else float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return {
        **{key: str(val) if isinstance(val, dt.date) else val for key, val in asdict(spec).items()},
        "label": f"fwd_ret_{k} from the open {lag} session after the decision",
        "execution_lag": lag,
        "drift_coef": spec.drift_coef,
        "realized_rank_ic": mean,
        "realized_rank_ic_std": std,
        "realized_sessions": int(arr.size),
        "realized_t_stat": mean / std * math.sqrt(arr.size) if arr.size > 1 else float("nan"),
        "first_session": str(sessions[0]),
        "last_session": str(sessions[-1]),
    }
