"""Execution: order planning, Almgren–Chriss/TWAP schedules, tripwires, brokers, reconciliation.

`AlpacaBroker` is imported lazily (alpaca-py takes a second to import): use
``from trademl.execution.alpaca_broker import AlpacaBroker``.
"""

from trademl.execution.brokers import (
    Account,
    Broker,
    BrokerError,
    BrokerOrder,
    DryRunBroker,
    SubmitResult,
    results_frame,
    submit_all,
)
from trademl.execution.orders import (
    MAX_CLIENT_ORDER_ID,
    Order,
    PlanParams,
    client_order_id,
    gross_exposure,
    orders_frame,
    plan_orders,
    planned_turnover,
)
from trademl.execution.reconcile import (
    BLOTTER_SCHEMA,
    blotter_summary,
    reconcile,
    reconcile_broker,
    write_blotter,
)
from trademl.execution.schedule import (
    ACParams,
    ChildOrder,
    Schedule,
    almgren_chriss,
    integer_trades,
    slice_order,
    twap,
)
from trademl.execution.tripwires import SessionFacts, TripwireLimits, check_tripwires

__all__ = [
    "BLOTTER_SCHEMA",
    "MAX_CLIENT_ORDER_ID",
    "ACParams",
    "Account",
    "Broker",
    "BrokerError",
    "BrokerOrder",
    "ChildOrder",
    "DryRunBroker",
    "Order",
    "PlanParams",
    "Schedule",
    "SessionFacts",
    "SubmitResult",
    "TripwireLimits",
    "almgren_chriss",
    "blotter_summary",
    "check_tripwires",
    "client_order_id",
    "gross_exposure",
    "integer_trades",
    "orders_frame",
    "plan_orders",
    "planned_turnover",
    "reconcile",
    "reconcile_broker",
    "results_frame",
    "slice_order",
    "submit_all",
    "twap",
    "write_blotter",
]
