"""The daily equities report a person reads: picks, weights, expected costs, risk, models, QC.

`session_report` gathers the numbers into one JSON-able dict, `report_markdown` renders it,
and `write_report` writes ``equities_YYYY-MM-DD.json``/``.md`` and the PNG plots atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from trademl.io import write_bytes_atomic

__all__ = ["report_markdown", "session_report", "write_report"]


def _num(x: Any) -> float | None:
    """JSON-safe float: NaN/inf become None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def session_report(
    *,
    session: dt.date,
    weights: pl.DataFrame,
    trade_costs: pl.DataFrame | None,
    backtest_metrics: Mapping[str, float],
    forecast_vol: float,
    model_versions: Mapping[str, str],
    qc_status: str,
    qc_reasons: str = "",
    top_n: int = 10,
    book_capital: float | None = None,
    serving: Mapping[str, Any] | None = None,
    shadow_books: Sequence[Mapping[str, Any]] = (),
    theses: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One session's report as a dict.

    Parameters
    ----------
    weights
        The session's (symbol, weight, score, sigma, source) rows.
    trade_costs
        `trademl.costs.trade_costs` output for the trades that move yesterday's book to
        today's (None when unknown).
    backtest_metrics
        `performance_metrics` of the trailing backtest ending at the session.
    book_capital
        The model book's capital the trades were sized with (the report's costs are the
        model book's move from yesterday's targets, not the broker account's orders).
    serving
        How the session's book was made: the router's `path`, the `models` (sleeve →
        version) behind it, the `sizer`, and `n_trials`.
    shadow_books
        One mapping per book (the served one and each challenger's shadow book): book, role,
        sessions, net_return, sharpe, turnover, rank_ic.
    theses
        The validated thesis documents (JSON) of the top longs and shorts, each with `side`.
    """
    w = weights.filter(pl.col("weight") != 0).sort("weight", descending=True)
    pick = ["symbol", "weight", "score"]
    longs = w.filter(pl.col("weight") > 0).head(top_n).select(pick)
    shorts = w.filter(pl.col("weight") < 0).sort("weight").head(top_n).select(pick)
    costs: dict[str, Any] = {
        "total": None,
        "bps_of_traded": None,
        "traded_notional": None,
        "book_capital": _num(book_capital) if book_capital is not None else None,
    }
    if trade_costs is not None and trade_costs.height:
        traded = float(trade_costs.get_column("notional").abs().sum())
        total = float(trade_costs.get_column("total").sum())
        costs = {
            **costs,
            "total": _num(total),
            "bps_of_traded": _num(total / traded * 1e4) if traded > 0 else None,
            "traded_notional": _num(traded),
            **{
                k: _num(trade_costs.get_column(k).sum())
                for k in ("fee", "spread", "impact", "auction")
                if k in trade_costs.columns
            },
        }
    sources = sorted(set(weights.get_column("source").to_list())) if "source" in weights else []
    return {
        "session": session.isoformat(),
        "qc": {"status": qc_status, "reasons": qc_reasons},
        "models": dict(model_versions),
        "signal_sources": sources,
        "positions": {
            "long": int((weights.get_column("weight") > 0).sum()),
            "short": int((weights.get_column("weight") < 0).sum()),
            "gross": _num(weights.get_column("weight").abs().sum()),
            "net": _num(weights.get_column("weight").sum()),
        },
        "risk": {"forecast_annual_vol": _num(forecast_vol)},
        "expected_costs": costs,
        "top_longs": [
            {k: _num(v) if k != "symbol" else v for k, v in r.items()}
            for r in longs.iter_rows(named=True)
        ],
        "top_shorts": [
            {k: _num(v) if k != "symbol" else v for k, v in r.items()}
            for r in shorts.iter_rows(named=True)
        ],
        "backtest": {k: _num(v) for k, v in backtest_metrics.items()},
        "serving": dict(serving or {}),
        "shadow_books": [
            {k: _num(v) if isinstance(v, float) else _plain(v) for k, v in b.items()}
            for b in shadow_books
        ],
        "theses": [dict(t) for t in theses],
    }


def _plain(v: Any) -> Any:
    """Dates as ISO text; anything else JSON already takes."""
    return v.isoformat() if isinstance(v, dt.date) else v


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.2%}" if pct else f"{v:,.4g}"
    return str(v)


def _money(v: Any) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def _book(costs: Mapping[str, Any]) -> str:
    """Which book the costs are of: the model book (capital × yesterday's → today's targets)."""
    cap = costs.get("book_capital")
    return f" (a {_money(cap)} book, from the previous session's targets)" if cap else ""


def report_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: headline numbers, picks, costs, backtest, models, QC."""
    pos, risk, costs, bt = (
        report["positions"],
        report["risk"],
        report["expected_costs"],
        report["backtest"],
    )
    lines = [
        f"# Equities — {report['session']}",
        "",
        _serving_line(report.get("serving") or {}, report),
        "",
        f"QC: **{report['qc']['status']}**",
        *[f"- {w}" for w in str(report["qc"]["reasons"] or "").split("; ") if w],
        "",
        _versus(bt),
        "",
        "| book | value |",
        "|---|---|",
        f"| longs / shorts | {pos['long']} / {pos['short']} |",
        f"| gross / net | {_fmt(pos['gross'], True)} / {_fmt(pos['net'], True)} |",
        f"| forecast annual vol | {_fmt(risk['forecast_annual_vol'], True)} |",
        f"| expected cost of the model book's trades{_book(costs)} | {_money(costs['total'])} "
        f"({_fmt(costs['bps_of_traded'])} bps of {_money(costs['traded_notional'])} traded) |",
        "",
    ]
    for title, rows in (("Top longs", report["top_longs"]), ("Top shorts", report["top_shorts"])):
        lines += [f"## {title}", "", "| symbol | weight | score |", "|---|---|---|"]
        lines += [
            f"| {r['symbol']} | {_fmt(r['weight'], True)} | {_fmt(r['score'])} |" for r in rows
        ] or ["| — | | |"]
        lines.append("")
    lines += [
        "## Trailing backtest (net of costs and borrow)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    pct = {
        "cagr",
        "ann_vol",
        "max_drawdown",
        "avg_turnover",
        "hit_rate",
        "total_return",
        "benchmark_return",
    }
    lines += [f"| {k} | {_fmt(v, k in pct)} |" for k, v in bt.items()]
    lines += _shadow_lines(report.get("shadow_books") or [])
    lines += _thesis_lines(report.get("theses") or [])
    return "\n".join(lines) + "\n"


def _thesis_lines(theses: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each top pick's thesis: decision, confidence, sections, claims with their evidence."""
    if not theses:
        return []
    lines = [
        "",
        "## Theses of the top picks (validated against the thesis schema)",
        "",
        "Each claim the model asserts, checked against its rule on the features: ✓ holds, ✗ "
        "does not.",
        "",
    ]
    for t in theses:
        claims = "; ".join(
            f"{c['claim']} {'✓' if c.get('holds') else '✗ (does not hold)'} "
            f"({', '.join(f'{k} {v:.3g}' for k, v in c['evidence'].items())})"
            for c in t.get("claims", [])
        )
        lines.append(
            f"- **{t['symbol']}** ({t.get('side', '')}): {t['decision']} at confidence "
            f"{t['confidence']:.2f}, model v{t['model_version']}; sections "
            f"{', '.join(t['sections'])}; claims: {claims or 'none'}"
        )
    return lines


def _versus(bt: Mapping[str, Any]) -> str:
    """The book's trailing net return and Sharpe beside the equal-weight market's."""
    return (
        f"Trailing backtest: the book {_fmt(bt.get('total_return'), True)} net (Sharpe "
        f"{_fmt(bt.get('sharpe'))}) vs the equal-weight market "
        f"{_fmt(bt.get('benchmark_return'), True)} (Sharpe {_fmt(bt.get('benchmark_sharpe'))})"
    )


_PATHS = {
    "stacker": "the stacker champion over its sleeves' champions",
    "stacker_subset": "a promoted stacker over the sleeves that scored (one was missing)",
    "fallback_weights": "the configured fallback weights over the sleeve champions present",
    "fit_free": "the FIT-FREE fallback feature: no model has earned its place yet",
}


def _serving_line(serving: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    """Which path served the book and every model version behind it, in words."""
    if not serving:
        return f"Signal: {', '.join(report['signal_sources']) or 'none'}"
    models = serving.get("models") or {}
    names = (
        ", ".join(
            f"{k} v{v}" if k != "fit_free" else f"feature {v}" for k, v in sorted(models.items())
        )
        or "none"
    )
    path = str(serving.get("path"))
    return (
        f"Served by **{path}** — {_PATHS.get(path, path)} ({names}); sizing: "
        f"**{serving.get('sizer', 'identity')}**; configurations searched behind it: "
        f"{serving.get('n_trials', 1)}"
    )


def _shadow_lines(books: Sequence[Mapping[str, Any]]) -> list[str]:
    """The served book and every challenger's shadow book, side by side."""
    if not books:
        return []
    out = [
        "",
        "## Champion vs challengers (shadow books, same backtest and costs)",
        "",
        "| book | role | since | sessions | net return | Sharpe | turnover | rank IC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for b in books:
        out.append(
            f"| {b['book']} | {b['role']} | {b.get('first_session') or '—'} | {b['sessions']} | "
            f"{_fmt(b.get('net_return'), True)} | {_fmt(b.get('sharpe'))} | "
            f"{_fmt(b.get('turnover'), True)} | {_fmt(b.get('rank_ic'))} |"
        )
    if len(books) == 1:
        out.append("\nNo challenger is registered beside the champions: no shadow book.")
    return out


def write_report(
    directory: str | Path, report: Mapping[str, Any], plots: Mapping[str, bytes]
) -> dict[str, Path]:
    """Write equities_<session>.json, .md and one PNG per plot; returns the paths by kind."""
    d = Path(directory)
    stem = f"equities_{report['session']}"
    paths = {
        "json": write_bytes_atomic(
            d / f"{stem}.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
        ),
        "md": write_bytes_atomic(d / f"{stem}.md", report_markdown(report).encode()),
    }
    for name, png in plots.items():
        paths[name] = write_bytes_atomic(d / f"{stem}_{name}.png", png)
    return paths
