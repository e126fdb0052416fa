"""Scores → target weights per session: rank z-score, fractional Kelly, vol target, caps.

The steps, in this order, each per session (all sessions at once, grouped in polars):

1. Valid names: finite score and finite sigma > 0; every other row gets weight 0.
2. z = Φ⁻¹((rank − ½)/n): the cross-sectional rank (average ranks for ties) mapped to a
   standard normal score, so outliers in the raw score cannot dominate.
3. Expected daily return μ = ic·σ·z (Grinold: alpha = IC × volatility × score).
4. Fractional Kelly w = f·μ/σ² = f·ic·z/σ (diagonal risk).
5. Long-short: both legs rescaled to half the Kelly gross, so Σw = 0; a session without both a
   long and a short gets no position. Long-only: negative weights set to 0.
6. Volatility target: the book is scaled so its forecast annual vol √(ppy·Σw²σ²) equals
   vol_target (skipped when None, leaving the Kelly size). With a vol target the Kelly step sets
   the shape of the book (w ∝ μ/σ²) and the target sets its size.
7. Sleeve confidence c ∈ [0, 1] multiplies the book.
8. Per-name cap: clip to ±name_cap.
9. Long-short only: the heavier leg is scaled down to the lighter leg's gross (clipping can
   break neutrality; scaling down never breaks the name cap).
10. Gross cap: scaled down to Σ|w| ≤ gross_cap.

Steps 8–10 only clip or scale down, so the per-name cap, the gross cap and dollar neutrality
all hold in the output; when a cap binds, the book's vol falls below the target (caps win).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

__all__ = ["PortfolioParams", "enforce_caps", "forecast_vol", "kelly_weights", "target_weights"]

_KEYS = ["date", "symbol"]


@dataclass(frozen=True)
class PortfolioParams:
    """Sizing parameters.

    Parameters
    ----------
    ic
        Information coefficient linking the z-score to expected return: μ = ic·σ·z.
    kelly_fraction
        Fraction f of full Kelly, in [0.5, 1.0].
    vol_target
        Target annualized volatility of the book from forecast risk; None disables targeting.
    name_cap
        Largest |weight| of one name.
    gross_cap
        Largest Σ|w| of the book.
    long_only
        True: no shorts; False: dollar-neutral long-short.
    periods_per_year
        Sessions per year used to annualize the daily σ (252).
    """

    ic: float = 0.05
    kelly_fraction: float = 0.5
    vol_target: float | None = 0.10
    name_cap: float = 0.05
    gross_cap: float = 1.0
    long_only: bool = False
    periods_per_year: float = 252.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ic) and self.ic > 0):
            raise ValueError(f"PortfolioParams.ic must be > 0, got {self.ic!r}")
        if not 0.5 <= self.kelly_fraction <= 1.0:
            raise ValueError(
                f"PortfolioParams.kelly_fraction must be in [0.5, 1.0], got {self.kelly_fraction!r}"
            )
        if self.vol_target is not None and not (
            math.isfinite(self.vol_target) and self.vol_target > 0
        ):
            raise ValueError(
                f"PortfolioParams.vol_target must be > 0 or None, got {self.vol_target!r}"
            )
        for name in ("name_cap", "gross_cap", "periods_per_year"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"PortfolioParams.{name} must be > 0, got {v!r}")


def kelly_weights(mu: np.ndarray, sigma: np.ndarray, fraction: float) -> np.ndarray:
    """Fractional Kelly weight f·μ/σ² of independent bets (μ, σ per period, same horizon)."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    return fraction * mu / (sigma * sigma)


def _first_bad(df: pl.DataFrame, mask: pl.Expr, what: str) -> None:
    bad = df.filter(mask)
    if bad.height:
        row = bad.row(0, named=True)
        raise ValueError(f"{what} at session {row['date']} (symbol {row['symbol']!r})")


def _check_frame(df: pl.DataFrame, value: str, frame: str) -> pl.DataFrame:
    """Columns present and typed, keys non-null and unique; value cast to Float64."""
    missing = [c for c in [*_KEYS, value] if c not in df.columns]
    if missing:
        raise ValueError(f"{frame} is missing column(s) {missing}; expected date, symbol, {value}")
    dtype = df.schema[value]
    if not (dtype.is_numeric() or dtype == pl.Null):
        raise ValueError(f"{frame} column {value!r} must be numeric, got {dtype}")
    if not (df.schema["date"] == pl.Date or isinstance(df.schema["date"], pl.Datetime)):
        raise ValueError(f"{frame} column 'date' must be a date, got {df.schema['date']}")
    for c in _KEYS:
        if df.get_column(c).null_count():
            raise ValueError(f"{frame} column {c!r} holds nulls")
    out = df.select(
        pl.col("date"), pl.col("symbol").cast(pl.String), pl.col(value).cast(pl.Float64)
    )
    _first_bad(out, pl.struct(_KEYS).is_duplicated(), f"{frame} has duplicate (date, symbol) rows")
    return out


def _confidence(confidence: float | pl.DataFrame, dates: pl.DataFrame) -> pl.DataFrame:
    """(date, confidence) for every session; missing or NaN confidence → 0 (fail closed)."""
    if isinstance(confidence, pl.DataFrame):
        conf = _check_frame(
            confidence.with_columns(pl.lit("*").alias("symbol")), "confidence", "confidence"
        ).drop("symbol")
    else:
        conf = dates.with_columns(pl.lit(float(confidence)).alias("confidence"))
    c = pl.col("confidence")
    _first_bad(
        conf.with_columns(pl.lit("*").alias("symbol")),
        c.is_not_nan() & ((c < 0) | (c > 1)),
        "confidence must lie in [0, 1]",
    )
    return dates.join(conf, on="date", how="left").with_columns(c.fill_nan(None).fill_null(0.0))


def target_weights(
    scores: pl.DataFrame,
    sigmas: pl.DataFrame,
    params: PortfolioParams | None = None,
    *,
    confidence: float | pl.DataFrame = 1.0,
) -> pl.DataFrame:
    """Target weights (date, symbol, weight) from scores and daily vol forecasts.

    Parameters
    ----------
    scores
        (date, symbol, score); higher score = higher expected return. One row per name and
        session; NaN/null scores get weight 0.
    sigmas
        (date, symbol, sigma): forecast daily return volatility (fraction). Rows without a
        matching score are ignored; a score without a finite sigma gets weight 0.
    params
        Sizing parameters (PortfolioParams() by default).
    confidence
        Sleeve confidence in [0, 1]: a scalar, or a (date, confidence) frame; a session missing
        from the frame, or NaN, gets confidence 0 (no position).

    Returns one row per score row, sorted by date then symbol, weight Float64 (0 where no
    position). Raises ValueError naming the frame, column and session on bad input: missing
    columns, duplicate keys, infinite scores, non-positive or infinite sigmas, confidence
    outside [0, 1]. The steps and their order are in the module docstring.
    """
    p = params or PortfolioParams()
    s = _check_frame(scores, "score", "scores")
    v = _check_frame(sigmas, "sigma", "sigmas")
    _first_bad(s, pl.col("score").is_infinite(), "scores column 'score' is infinite")
    sig = pl.col("sigma")
    _first_bad(v, sig.is_infinite() | (sig <= 0), "sigmas column 'sigma' must be finite and > 0")
    df = s.join(v, on=_KEYS, how="left").sort(_KEYS)
    if df.height == 0:
        return df.select(*_KEYS, pl.lit(0.0).alias("weight"))
    conf = _confidence(confidence, df.select("date").unique(maintain_order=True))
    df = df.join(conf, on="date", how="left")

    score, sigma, w = pl.col("score"), pl.col("sigma"), pl.col("w")
    valid = score.is_not_nan().fill_null(False) & sigma.is_not_nan().fill_null(False)
    df = df.with_columns(valid.alias("valid")).with_columns(
        pl.when("valid").then(score).rank("average").over("date").alias("rank"),
        pl.col("valid").sum().over("date").alias("n"),
    )
    u = ((df.get_column("rank") - 0.5) / df.get_column("n")).fill_null(0.5).to_numpy()
    sig_np = df.get_column("sigma").fill_null(np.nan).to_numpy()
    from scipy.special import ndtri  # here: scipy costs every CLI start otherwise

    z = ndtri(u)
    kelly = kelly_weights(p.ic * sig_np * z, sig_np, p.kelly_fraction)
    kelly = np.where(df.get_column("valid").to_numpy(), kelly, 0.0)
    df = df.with_columns(pl.Series("w", kelly))

    by = "date"
    pos, neg = pl.when(w > 0).then(w).otherwise(0.0), pl.when(w < 0).then(-w).otherwise(0.0)
    if p.long_only:
        df = df.with_columns(pos.alias("w"))
    else:
        half = (pos.sum() + neg.sum()).over(by) / 2.0
        df = df.with_columns(
            pl.when((pos.sum().over(by) > 0) & (neg.sum().over(by) > 0))
            .then(
                pl.when(w > 0)
                .then(w * half / pos.sum().over(by))
                .otherwise(w * half / neg.sum().over(by))
            )
            .otherwise(0.0)
            .alias("w")
        )
    if p.vol_target is not None:
        ann = (
            (w * w * sigma.fill_nan(0.0).fill_null(0.0) ** 2).sum().over(by) * p.periods_per_year
        ).sqrt()
        df = df.with_columns(
            pl.when(ann > 0).then(w * p.vol_target / ann).otherwise(0.0).alias("w")
        )
    df = df.with_columns((w * pl.col("confidence")).alias("w"))
    return enforce_caps(df, p)


def enforce_caps(df: pl.DataFrame, p: PortfolioParams) -> pl.DataFrame:
    """Steps 8–10 on a frame (date, symbol, w): clip to ±name_cap, long-short legs scaled
    down to the lighter leg's gross, then the gross cap; returns (date, symbol, weight).

    They only clip or scale down, so whatever sized `w` (Kelly, a sizing policy) the caps and
    dollar neutrality hold in the output."""
    by, w = "date", pl.col("w")
    pos, neg = pl.when(w > 0).then(w).otherwise(0.0), pl.when(w < 0).then(-w).otherwise(0.0)
    df = df.with_columns(w.clip(-p.name_cap, p.name_cap).alias("w"))
    if not p.long_only:
        lo, sh = pos.sum().over(by), neg.sum().over(by)
        m = pl.min_horizontal(lo, sh)
        df = df.with_columns(
            pl.when(w > 0)
            .then(w * (m / lo))
            .when(w < 0)
            .then(w * (m / sh))
            .otherwise(0.0)
            .alias("w")
        )
    gross = w.abs().sum().over(by)
    df = df.with_columns(
        pl.when(gross > p.gross_cap).then(w * (p.gross_cap / gross)).otherwise(w).alias("weight")
    )
    return df.select(*_KEYS, pl.col("weight").fill_nan(0.0).fill_null(0.0) + 0.0)


def forecast_vol(
    weights: pl.DataFrame, sigmas: pl.DataFrame, periods_per_year: float = 252.0
) -> pl.DataFrame:
    """Annualized forecast vol √(ppy·Σw²σ²) of each session's book under diagonal risk.

    Returns (date, vol) sorted by date; names without a finite sigma contribute nothing.
    """
    df = weights.join(sigmas, on=_KEYS, how="left")
    return (
        df.group_by("date")
        .agg(
            (
                (pl.col("weight") ** 2 * pl.col("sigma").fill_nan(0.0).fill_null(0.0) ** 2).sum()
                * periods_per_year
            )
            .sqrt()
            .alias("vol")
        )
        .sort("date")
    )
