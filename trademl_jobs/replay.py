"""Replay history through the order path: ``python -m trademl_jobs.replay --start A --end B``.

Runs the daily execution loop (plan at the fill price on the book's capital → tripwires →
submit) for every session from A to B through the `ReplayBroker`, which fills each session's
orders at the next session's bars of the configured data source, then books the session
after B and prints the reconciliation with the backtest engine (a folder already replayed
past A resumes where it stopped: earlier sessions are not replayed twice):

- exact: the engine on the weights the filled shares imply (must agree to float precision);
- to rounding: the engine on the target weights themselves, beside the share-rounding bound
  (the bound holds when no session was halted and every order filled).

Weights come from ``--weights`` (parquet or CSV: date, symbol, weight[, adv, sigma]) or, by
default, the lake's ``sized_weights`` table written by the ``daily`` job. QC statuses come
from the data source through the same QC as the ``bars`` asset; feature drift is not judged
here (no features are read). State goes to ``--folder`` (default
``$TRADEML_HOME/broker/replay``, the replay broker's folder in the ``trade`` job).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from resources.settings import MarketDataResource
from trademl.config import Settings, load_settings
from trademl.data.bars import load_session_bars
from trademl.execution.orders import PlanParams
from trademl.execution.replay import ReplayBroker, ReplayParams
from trademl.execution.replay_run import (
    FrameSource,
    ReplaySetup,
    backtest_on_fills,
    reconcile,
    reconcile_to_targets,
    replay_range,
)
from trademl.params import backtest_params, cost_model, tripwire_limits

#: The exact reconciliation's tolerance, dollars per session (float noise on a book's P&L).
EXACT_TOL = 1e-6


def read_weights(path: str | None, s: Settings) -> pl.DataFrame:
    """Weights from a parquet/CSV file, else the lake's sized_weights table."""
    if path is None:
        from resources.lake import Lake

        frame = Lake(s.lake_root).scan_all("sized_weights").collect()
    elif path.endswith(".csv"):
        frame = pl.read_csv(path, try_parse_dates=True)
    else:
        frame = pl.read_parquet(path)
    missing = {"date", "symbol", "weight"} - set(frame.columns)
    if missing:
        raise SystemExit(f"weights {path or 'sized_weights'} lack column(s) {sorted(missing)}")
    keep = [c for c in ("date", "symbol", "weight", "adv", "sigma") if c in frame.columns]
    return frame.select(keep).with_columns(pl.col("date").cast(pl.Date))


def run(start: dt.date, end: dt.date, weights: pl.DataFrame, s: Settings, folder: Path) -> dict:
    """Replay start..end, book the session after, and reconcile; a JSON-able summary."""
    market = MarketDataResource.from_settings(s)
    cal = market.calendar()
    sessions = cal.sessions_in_range(start, end)
    if not sessions:
        raise SystemExit(f"no {cal.exchange} session between {start} and {end}")
    after = cal.next_session(sessions[-1])
    lookback = cal.sessions[max(0, cal.index(sessions[0]) - 60)]
    bars = market.open().load(lookback, after)
    source = FrameSource(bars)
    has_after = bars.filter(pl.col("date") == after).height > 0
    qc = {q.session: str(q.status) for q in load_session_bars(source, cal, sessions, s.qc).qc}
    e = s.execution
    setup = ReplaySetup(
        folder,
        source,
        cal,
        params=ReplayParams.from_backtest(backtest_params(s), e.capital),
        costs=cost_model(s),
        plan=PlanParams(lot_size=e.lot_size, min_notional=e.min_notional),
        limits=tripwire_limits(s),
    )
    done = ReplayBroker(folder).as_of if (folder / "replay.json").exists() else None
    todo = [d for d in sessions if done is None or d >= done]  # resume where it stopped
    out = replay_range(setup, weights, todo, qc=qc, through=after if has_after else None)
    view = setup.open(None)
    pnl = view.pnl()
    risk_cols = [c for c in ("adv", "sigma") if c in weights.columns]
    risk = weights.select("date", "symbol", *risk_cols).with_columns(
        *[pl.lit(None, pl.Float64).alias(c) for c in ("adv", "sigma") if c not in risk_cols]
    )
    exact = reconcile(pnl, backtest_on_fills(view, bars, risk, cal), e.capital)
    grid = cal.sessions_in_range(pnl["date"].min(), pnl["date"].max())  # type: ignore[arg-type]
    w = weights.filter(pl.col("date").is_in(pl.Series(grid, dtype=pl.Date)))
    b = bars.filter(pl.col("date").is_in(pl.Series(grid, dtype=pl.Date)))
    r = risk.filter(pl.col("date").is_in(pl.Series(grid, dtype=pl.Date)))
    target, bound = reconcile_to_targets(
        pnl,
        w,
        b,
        r,
        grid,
        params=setup.params,
        costs=setup.costs,
        plan=setup.plan,
        capital=e.capital,
    )
    statuses = [x.status for o in out for x in o.results]
    blotter = view.blotter()
    return {
        "sessions": len(sessions),
        "replayed_now": len(todo),
        "booked_through": str(view.booked),
        "orders": blotter.height,
        "filled": blotter.filter(pl.col("status") == "filled").height,
        "halted_sessions": sum(bool(o.halts) for o in out),
        "rejected": statuses.count("rejected"),
        "replay_pnl": float(pnl["net"].sum()),
        "equity": view.account().equity,
        "positions": view.positions(),
        "backtest_on_fills_pnl": float(exact["backtest_cum"][-1]),
        "exact_max_abs_diff": float(exact["diff"].abs().max()),  # type: ignore[arg-type]
        "backtest_on_targets_pnl": float(target["backtest_cum"][-1]),
        "rounding_diff": float(target["cum_diff"][-1]),
        "rounding_bound": float(bound.sum()),
        "folder": str(folder),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, replay, print the summary; 1 when the exact reconciliation fails."""
    ap = argparse.ArgumentParser(prog="python -m trademl_jobs.replay", description=__doc__)
    ap.add_argument("--start", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--end", type=dt.date.fromisoformat, required=True)
    ap.add_argument("--weights", help="parquet/CSV of date, symbol, weight[, adv, sigma]")
    ap.add_argument("--folder", type=Path, help="replay state folder")
    args = ap.parse_args(argv)
    s = load_settings()
    folder = args.folder or s.home / "broker" / "replay"
    summary = run(args.start, args.end, read_weights(args.weights, s), s, folder)
    print(json.dumps(summary, indent=2, sort_keys=True))
    ok = summary["exact_max_abs_diff"] <= EXACT_TOL
    print("reconciled with the backtest" if ok else "NOT reconciled: see exact_max_abs_diff")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
