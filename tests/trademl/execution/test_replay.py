"""The historical paper replay: next-session fills, refusals, idempotency, persistence, and a
year of daily replays reconciled with the backtest engine.

The year runs on a hand-built market: 4 names over the 250 XNYS sessions of 2023, a seeded
random walk with overnight gaps, and deterministic sinusoidal long/short weights.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from trademl.backtest.frames import backtest_frames
from trademl.costs import CostModel
from trademl.data.calendar import get_calendar
from trademl.execution.brokers import Broker, BrokerError, submit_all
from trademl.execution.orders import Order, PlanParams
from trademl.execution.reconcile import reconcile_broker
from trademl.execution.replay import ReplayBroker, ReplayParams
from trademl.execution.replay_run import (
    FrameSource,
    ReplaySetup,
    backtest_on_fills,
    reconcile,
    reconcile_to_targets,
    replay_range,
    rounding_bound,
)
from trademl.execution.tripwires import TripwireLimits

CAL = get_calendar("XNYS", dt.date(2022, 1, 3))
YEAR = CAL.sessions_in_range(dt.date(2023, 1, 3), dt.date(2023, 12, 29))
SYMS = ["AAA", "BBB", "CCC", "DDD"]
CAPITAL = 1_000_000.0
D0, D1, D2 = YEAR[:3]  # 2023-01-03, -04, -05


def _bars(rows: list[tuple]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["date", "symbol", "open", "close"], orient="row")
    return frame.with_columns(
        high=pl.max_horizontal("open", "close"), low=pl.min_horizontal("open", "close"), volume=1e6
    )


def _market() -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(42)
    close = np.array([20.0, 45.0, 80.0, 130.0])
    bars, weights = [], []
    for i, d in enumerate(YEAR):
        open_ = close * np.exp(0.005 * rng.standard_normal(4))
        close = open_ * np.exp(0.015 * rng.standard_normal(4))
        for j, s in enumerate(SYMS):
            bars.append((d, s, float(open_[j]), float(close[j])))
            w = 0.25 * np.sin(2 * np.pi * (i / 37 + j / 4))
            adv = 1e5 * (1 + j) * (1 + 0.5 * np.sin(i / 10))  # tiers change over the year
            weights.append((d, s, float(w), float(adv), 0.015))
    w = pl.DataFrame(weights, schema=["date", "symbol", "weight", "adv", "sigma"], orient="row")
    return _bars(bars), w


COSTS = CostModel(fee_bps=0.5, half_spread_bps=5.0, auction_slippage_bps=1.0)
PARAMS = ReplayParams(capital=CAPITAL, cash_rate=0.03)
LIMITS = TripwireLimits(max_turnover=1.1, max_gross=1.05)


def _setup(folder: Path, bars: pl.DataFrame, **kw: object) -> ReplaySetup:
    kw = {"params": PARAMS, "costs": COSTS, "plan": PlanParams(min_notional=0.0)} | kw
    return ReplaySetup(folder, FrameSource(bars), CAL, limits=LIMITS, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory) -> dict:
    bars, weights = _market()
    setup = _setup(tmp_path_factory.mktemp("replay"), bars)
    out = replay_range(setup, weights, YEAR[:-1], qc=dict.fromkeys(YEAR, "GREEN"), through=YEAR[-1])
    return {"bars": bars, "weights": weights, "setup": setup, "out": out}


def test_a_year_of_daily_replays_reconciles_with_the_backtest(year: dict) -> None:
    bars, weights, setup = year["bars"], year["weights"], year["setup"]
    assert not [o.halts for o in year["out"] if o.halts]
    assert all(r.status == "submitted" for o in year["out"] for r in o.results)
    view = setup.open(None)
    pnl = view.pnl()
    assert pnl.height == len(YEAR) and pnl.get_column("date").to_list() == YEAR
    # The first session holds nothing: only cash interest on C, C·3%/252 = 119.0476…
    assert pnl.row(0, named=True)["net"] == pytest.approx(CAPITAL * 0.03 / 252, rel=1e-12)
    assert pnl.get_column("equity")[-1] == pytest.approx(CAPITAL + pnl.get_column("net").sum())
    # Shares after the fills at YEAR[1]'s open: w·C/open truncated to whole shares (lot 1).
    w0 = weights.filter(pl.col("date") == YEAR[0]).select("symbol", "weight").rows()
    open1 = dict(bars.filter(pl.col("date") == YEAR[1]).select("symbol", "open").rows())
    first = view.blotter().filter(pl.col("session") == YEAR[0])
    held = {
        s: q if side == "buy" else -q for s, side, q in first.select("symbol", "side", "qty").rows()
    }
    assert held == {s: int(w * CAPITAL / open1[s]) for s, w in w0 if int(w * CAPITAL / open1[s])}

    # 1. Exact: the engine on the weights the filled shares imply gives the same daily P&L.
    risk = weights.select("date", "symbol", "adv", "sigma")
    exact = reconcile(pnl, backtest_on_fills(view, bars, risk, CAL), CAPITAL)
    assert exact.get_column("diff").abs().max() < 1e-6  # dollars, per session
    assert abs(exact.get_column("cum_diff")[-1]) < 1e-6
    assert abs(exact.get_column("replay_cum")[-1]) > 10_000  # a P&L worth reconciling

    # 2. To rounding: the engine on the target weights differs by share rounding only.
    rec, bound = reconcile_to_targets(
        pnl,
        weights,
        bars,
        risk,
        YEAR,
        params=PARAMS,
        costs=COSTS,
        plan=setup.plan,
        capital=CAPITAL,
    )
    diff = rec.get_column("diff").to_numpy()
    assert (np.abs(diff) <= bound + 1e-9).all()
    assert abs(rec.get_column("cum_diff")[-1]) <= bound.sum()
    assert 0 < bound.sum() < 0.02 * abs(rec.get_column("replay_cum")[-1])  # a tight tolerance
    # The tolerance has teeth: filling at the close instead of the open breaks it.
    wrong = backtest_frames(
        weights,
        bars,
        risk,
        params=ReplayParams(CAPITAL, "close", cash_rate=0.03).backtest_params("flat"),
        costs=COSTS,
        sessions=YEAR,
    )
    assert abs(reconcile(pnl, wrong, CAPITAL).get_column("cum_diff")[-1]) > bound.sum()


def test_the_rounding_bound_on_a_hand_worked_session() -> None:
    """One name, w = 0.5 of C = 1000 at row 0; fills at row 1's open 30 (close row 0: 29,
    row 1: 31), lot 10, min_notional 0, costs 5 bps spread, no impact, no borrow, no cash.
    e(1) = 10 shares; gross: e(0)=0, e(1)·|31 − 30| = 10; costs: ΔQ = 10 → 10·30·5e-4 = 0.15."""
    w = np.array([[0.5], [np.nan]])
    o, c = np.array([[28.0], [30.0]]), np.array([[29.0], [31.0]])
    costs = CostModel(half_spread_bps=5.0, impact_coef=0.0, borrow_bps_tiers=(0.0,))
    got = rounding_bound(
        w,
        o,
        c,
        np.full((2, 1), 1e6),
        np.full((2, 1), 0.02),
        params=ReplayParams(capital=1000.0),
        costs=costs,
        plan=PlanParams(lot_size=10, min_notional=0.0),
    )
    assert got.tolist() == pytest.approx([0.0, 10.15])


def _tiny(folder: Path, bars: pl.DataFrame, session: dt.date, **kw: object) -> ReplayBroker:
    return ReplayBroker(
        folder,
        source=FrameSource(bars),
        calendar=CAL,
        session=session,
        risk={"A": (1e6, 0.02)},
        params=ReplayParams(capital=10_000.0),
        costs=CostModel(half_spread_bps=5.0, impact_coef=0.0),
        **kw,
    )


TINY = _bars(
    [
        (D0, "A", 99.0, 100.0),
        (D1, "A", 101.0, 103.0),
        (D2, "A", 104.0, 102.0),
        (D0, "B", 10.0, 10.0),
        (D1, "B", 10.0, 10.0),
    ]
)


def test_orders_fill_at_the_next_sessions_open_and_book_hand_worked_pnl(tmp_path: Path) -> None:
    broker = _tiny(tmp_path, TINY, D0)
    assert isinstance(broker, Broker)
    assert broker.sizing_prices() == {"A": 101.0, "B": 10.0}  # D1's opens
    [res] = submit_all(broker, [Order(session=D0, symbol="A", side="buy", qty=10)])
    assert res.status == "submitted" and res.broker_order is not None
    assert (res.broker_order.status, res.broker_order.filled_avg_price) == ("filled", 101.0)
    assert broker.positions() == {}  # at D0's close; the fill is at D1's open
    day1 = _tiny(tmp_path, TINY, D1)
    assert day1.positions() == {"A": 10.0}
    row = day1.pnl().row(-1, named=True)
    # gross 10·(103 − 101) = 20; spread 5 bps of 1010 = 0.505; net 19.495
    assert (row["date"], row["gross"], row["spread"]) == (D1, 20.0, pytest.approx(0.505))
    assert row["net"] == pytest.approx(19.495)
    day2 = _tiny(tmp_path, TINY, D2)
    assert day2.pnl().row(-1, named=True)["gross"] == pytest.approx(10 * (102.0 - 103.0))
    assert day2.account().equity == pytest.approx(10_000.0 + 19.495 - 10.0)
    assert day2.account().cash == pytest.approx(day2.account().equity - 10 * 102.0)


def test_a_session_without_a_next_session_bar_is_refused_by_name(tmp_path: Path) -> None:
    broker = _tiny(tmp_path, TINY, D1)  # B has no bar on D2
    [res] = submit_all(broker, [Order(session=D1, symbol="B", side="buy", qty=5)])
    assert res.status == "rejected"
    assert f"session {D1} B: no open price on {D2}" in res.reason
    assert "position is held" in res.reason
    last = _tiny(tmp_path, TINY, D2)  # the data ends at D2: nothing to fill at
    [res] = submit_all(last, [Order(session=D2, symbol="A", side="sell", qty=5)])
    assert res.status == "rejected" and f"session {D2} A" in res.reason
    assert f"no bars at all for {CAL.next_session(D2)}" in res.reason
    assert last.list_orders() == [] and last.positions() == {}


def test_resubmitting_a_client_order_id_is_already_present(tmp_path: Path) -> None:
    order = Order(session=D0, symbol="A", side="buy", qty=10)
    broker = _tiny(tmp_path, TINY, D0)
    assert broker.submit(order).status == "submitted"
    assert broker.submit(order).status == "already_present"
    again = _tiny(tmp_path, TINY, D0)  # a re-run of the session plans the same order
    assert [r.status for r in submit_all(again, [order])] == ["already_present"]
    assert again.blotter().height == 1
    assert _tiny(tmp_path, TINY, D1).positions() == {"A": 10.0}  # filled once


def test_state_survives_reopening_the_folder(tmp_path: Path) -> None:
    broker = _tiny(tmp_path, TINY, D0)
    submit_all(broker, [Order(session=D0, symbol="A", side="buy", qty=10)])
    day1 = _tiny(tmp_path, TINY, D1)
    view = ReplayBroker(tmp_path)  # read-only, no source: what a user opens later
    assert (view.as_of, view.booked) == (D1, D1)
    assert view.positions() == day1.positions() == {"A": 10.0}
    assert view.account() == day1.account()
    assert view.pnl().equals(day1.pnl()) and view.blotter().equals(day1.blotter())
    assert view.get_order(broker.list_orders()[0].client_order_id) is not None
    with pytest.raises(BrokerError, match=f"is at session {D1}; session {D0} is earlier"):
        _tiny(tmp_path, TINY, D0)
    with pytest.raises(BrokerError, match="replay into a new folder"):
        ReplayBroker(tmp_path, params=ReplayParams(capital=5.0))


def test_the_morning_blotter_reconciles_with_the_replays_fills(tmp_path: Path) -> None:
    order = Order(session=D0, symbol="A", side="buy", qty=10)
    results = submit_all(_tiny(tmp_path, TINY, D0), [order])
    frame = reconcile_broker(
        ReplayBroker(tmp_path), [order], positions_before={}, results=results, session=D0
    )
    assert frame.get_column("mismatch").to_list() == [""]
    assert frame.row(0, named=True)["position_after"] == 10.0


def test_a_limit_order_not_marketable_at_the_open_expires(tmp_path: Path) -> None:
    broker = _tiny(tmp_path, TINY, D0)
    lim = Order(session=D0, symbol="A", side="buy", qty=10, order_type="limit", limit_price=100.0)
    res = broker.submit(lim)
    assert res.broker_order is not None and res.broker_order.status == "expired"
    assert _tiny(tmp_path, TINY, D1).positions() == {}
