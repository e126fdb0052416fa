"""Order planning: hand-worked share counts, lot rounding, minimum notional, deterministic ids."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from trademl.execution.orders import (
    MAX_CLIENT_ORDER_ID,
    Order,
    PlanParams,
    gross_exposure,
    limit_price_for,
    orders_frame,
    plan_orders,
    planned_turnover,
)

SESSION = dt.date(2024, 3, 5)
PRICES = {
    "AAA": 50.0,
    "BBB": 20.0,
    "CCC": 7.0,
    "DDD": 100.0,
    "EEE": 30.0,
    "FFF": 3.0,
    "GGG": 3.0,
    "HHH": 10.0,
    "III": 10.0,
}
TARGETS = {
    "AAA": 0.10,  # 10,000 / 50 = 200 sh; hold 100 -> buy 100
    "BBB": 0.05,  # 5,000 / 20 = 250 sh -> buy 250
    "CCC": -0.021,  # -2,100 / 7 = -300 sh; hold +300 -> flip: sell 300 (close) + sell 300 (open)
    "DDD": 0.0004,  # 40 / 100 = 0.4 sh -> 0 whole lots -> nothing
    "FFF": 0.0012,  # 120 / 3 = 40 sh, $120 >= $100 min -> buy 40
    "GGG": 0.0009,  # 90 / 3 = 30 sh, $90 < $100 min -> skipped
    "HHH": 0.0125,  # 1,250 / 10 = 125 sh -> lot 10 toward zero -> 120
    "III": -0.0125,  # -125 sh -> -120
}
POSITIONS = {"AAA": 100, "CCC": 300, "EEE": 10}  # EEE not targeted -> sell 10 ($300)


def _plan(**kw: object) -> list[Order]:
    params = PlanParams(lot_size=10, min_notional=100.0, **kw)  # type: ignore[arg-type]
    return plan_orders(TARGETS, POSITIONS, PRICES, 100_000.0, session=SESSION, params=params)


def test_hand_worked_plan() -> None:
    got = [(o.symbol, o.side, o.qty, o.part) for o in _plan()]
    assert got == [
        ("CCC", "sell", 300, 0),
        ("CCC", "sell", 300, 1),
        ("EEE", "sell", 10, 0),
        ("III", "sell", 120, 0),
        ("AAA", "buy", 100, 0),
        ("BBB", "buy", 250, 0),
        ("FFF", "buy", 40, 0),
        ("HHH", "buy", 120, 0),
    ]


def test_flip_in_one_order_when_not_split() -> None:
    ccc = [o for o in _plan(split_flips=False) if o.symbol == "CCC"]
    assert [(o.side, o.qty) for o in ccc] == [("sell", 600)]


def test_positions_end_on_targets_after_the_plan() -> None:
    orders = _plan()
    after = dict.fromkeys(PRICES, 0.0) | {k: float(v) for k, v in POSITIONS.items()}
    for o in orders:
        after[o.symbol] += o.signed_qty
    assert after["AAA"] == 200 and after["CCC"] == -300 and after["EEE"] == 0
    assert after["HHH"] == 120 and after["III"] == -120
    assert after["GGG"] == 0 and after["DDD"] == 0  # below lot / below min notional


def test_no_zero_orders_and_nothing_when_on_target() -> None:
    assert all(o.qty > 0 for o in _plan())
    on_target = {"AAA": 200, "BBB": 250}
    orders = plan_orders({"AAA": 0.10, "BBB": 0.05}, on_target, PRICES, 100_000.0, session=SESSION)
    assert orders == []


def test_lot_rounding_is_toward_zero() -> None:
    for lot, expected in [(1, 125), (10, 120), (25, 125), (100, 100), (200, 0)]:
        orders = plan_orders(
            {"HHH": 0.0125},
            {},
            PRICES,
            100_000.0,
            session=SESSION,
            params=PlanParams(lot_size=lot, min_notional=0.0),
        )
        assert sum(o.qty for o in orders) == expected, lot


def test_ids_are_deterministic_and_short() -> None:
    a, b = _plan(), _plan()
    assert [o.client_order_id for o in a] == [o.client_order_id for o in b]
    ids = [o.client_order_id for o in a]
    assert len(set(ids)) == len(ids)
    assert all(len(i) <= MAX_CLIENT_ORDER_ID for i in ids)
    assert ids[4].startswith("tml-20240305-AAA-b-")


def test_id_depends_on_order_fields_not_reference_price() -> None:
    base = _plan()[4]
    moved = dataclasses.replace(base, ref_price=50.02, client_order_id="")
    assert moved.client_order_id == base.client_order_id
    bigger = dataclasses.replace(base, qty=base.qty + 1, client_order_id="")
    other_day = dataclasses.replace(base, session=dt.date(2024, 3, 6), client_order_id="")
    assert len({base.client_order_id, bigger.client_order_id, other_day.client_order_id}) == 3


def test_long_symbol_and_prefix_stay_within_alpaca_limit() -> None:
    sym = "VERY/LONG-SYMBOL.NAME.XYZ"
    orders = plan_orders(
        {sym: 0.5},
        {},
        {sym: 1.0},
        100.0,
        session=SESSION,
        params=PlanParams(id_prefix="ABCDEFGH"),
    )
    (o,) = orders
    assert len(o.client_order_id) <= MAX_CLIENT_ORDER_ID
    assert o.client_order_id.count("-") == 4  # the symbol token never adds separators


def test_limit_orders_price_against_us_on_the_tick() -> None:
    assert limit_price_for("buy", 100.0, 10) == pytest.approx(100.10)
    assert limit_price_for("sell", 100.0, 10) == pytest.approx(99.90)
    assert limit_price_for("buy", 33.333, 10) == pytest.approx(33.37)  # 33.3663 up to the cent
    assert limit_price_for("sell", 33.333, 10) == pytest.approx(33.29)  # 33.2997 down
    assert limit_price_for("buy", 0.5, 10) == pytest.approx(0.5005)  # sub-dollar tick 0.0001
    orders = _plan(order_type="limit")
    assert all(o.order_type == "limit" and o.limit_price is not None for o in orders)


def test_turnover_and_gross() -> None:
    orders = _plan()
    notional = 300 * 7 * 2 + 10 * 30 + 120 * 10 + 100 * 50 + 250 * 20 + 40 * 3 + 120 * 10
    assert planned_turnover(orders, 100_000.0) == pytest.approx(notional / 100_000.0)
    assert gross_exposure({"a": 0.5, "b": -0.25}) == pytest.approx(0.75)
    frame = orders_frame(orders)
    assert frame.height == len(orders) and frame["notional"].sum() == pytest.approx(notional)


@pytest.mark.parametrize(
    ("targets", "positions", "prices", "equity", "needle"),
    [
        ({"AAA": 0.1}, {}, {}, 1e5, "no price for 'AAA'"),
        ({"AAA": float("nan")}, {}, PRICES, 1e5, "target weight for 'AAA'"),
        ({"AAA": 0.1}, {}, {"AAA": 0.0}, 1e5, "price for 'AAA' is 0.0"),
        ({"AAA": 0.1}, {}, PRICES, 0.0, "equity must be > 0"),
        ({}, {"ZZZ": 5}, PRICES, 1e5, "no price for 'ZZZ'"),
    ],
)
def test_bad_inputs_name_the_problem(
    targets: dict[str, float],
    positions: dict[str, float],
    prices: dict[str, float],
    equity: float,
    needle: str,
) -> None:
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        plan_orders(targets, positions, prices, equity, session=SESSION)


def test_order_validation() -> None:
    with pytest.raises(ValueError, match="positive int"):
        Order(session=SESSION, symbol="X", side="buy", qty=0)
    with pytest.raises(ValueError, match="side"):
        Order(session=SESSION, symbol="X", side="hold", qty=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limit"):
        Order(session=SESSION, symbol="X", side="buy", qty=1, order_type="limit")
