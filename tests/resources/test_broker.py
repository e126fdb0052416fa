"""BrokerResource: dry run by default, Alpaca via env-var names, credentials never in config."""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from resources.broker import BrokerResource
from tests.trademl.execution.fake_alpaca import FakeAlpaca
from trademl.execution.alpaca_broker import AlpacaBroker, LiveTradingRefused
from trademl.execution.brokers import DryRunBroker, submit_all
from trademl.execution.orders import Order

KEY = "PKRESOURCE4K7Q2W9ZM1"
SECRET = "res0urce-secret/Zq8Xy7Wv6Ut5Sr4Qp3On2Ml1"
SESSION = dt.date(2024, 3, 5)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAlpaca]:
    monkeypatch.setenv("TEST_BROKER_KEY", KEY)
    monkeypatch.setenv("TEST_BROKER_SECRET", SECRET)
    with FakeAlpaca(key=KEY, secret=SECRET, cash=50_000.0) as f:
        yield f


def _order(symbol: str = "AAPL") -> Order:
    return Order(session=SESSION, symbol=symbol, side="buy", qty=5, ref_price=190.0)


def test_default_is_a_dry_run_recording_to_the_blotter_dir(tmp_path: Path) -> None:
    res = BrokerResource()
    broker = res.get_broker(tmp_path)
    assert isinstance(broker, DryRunBroker) and broker.account().equity == 100_000.0
    assert [r.status for r in submit_all(broker, [_order()])] == ["submitted"]
    again = res.get_broker(tmp_path)  # a re-run of the same session
    assert [r.status for r in submit_all(again, [_order()])] == ["already_present"]


def test_alpaca_reads_keys_at_call_time_from_named_env_vars(
    fake: FakeAlpaca, tmp_path: Path
) -> None:
    res = BrokerResource(
        kind="alpaca",
        base_url=fake.url,
        key_env="TEST_BROKER_KEY",
        secret_env="TEST_BROKER_SECRET",
    )
    broker = res.get_broker(tmp_path)
    assert isinstance(broker, AlpacaBroker) and not broker.is_live
    assert broker.account().cash == pytest.approx(50_000.0)
    assert [r.status for r in submit_all(broker, [_order()])] == ["submitted"]
    assert len(fake.orders) == 1
    config_text = repr(res) + str(res.model_dump()) + repr(broker)
    assert KEY not in config_text and SECRET not in config_text


def test_live_without_opt_in_is_refused(fake: FakeAlpaca) -> None:
    env = {"key_env": "TEST_BROKER_KEY", "secret_env": "TEST_BROKER_SECRET"}
    with pytest.raises(LiveTradingRefused, match="allow_live"):
        BrokerResource(kind="alpaca", paper=False, **env).get_broker()
    with pytest.raises(LiveTradingRefused, match="live endpoint"):
        BrokerResource(
            kind="alpaca", paper=False, allow_live=True, base_url=fake.url, **env
        ).get_broker()


def test_secrets_stay_out_of_a_dagster_run(fake: FakeAlpaca, tmp_path: Path) -> None:
    @dg.asset
    def orders(context: dg.AssetExecutionContext, broker: BrokerResource) -> None:
        b = broker.get_broker(tmp_path)
        results = submit_all(b, [_order("SPY")])
        context.add_output_metadata({"statuses": [r.status for r in results], "broker": repr(b)})

    res = BrokerResource(
        kind="alpaca", base_url=fake.url, key_env="TEST_BROKER_KEY", secret_env="TEST_BROKER_SECRET"
    )
    result = dg.materialize([orders], resources={"broker": res})
    assert result.success and len(fake.orders) == 1
    texts = [str(result.dagster_run.run_config)]
    texts += [str(e) for e in result.all_events]
    assert any("submitted" in t for t in texts)
    assert not [t for t in texts if KEY in t or SECRET in t]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [
        p for p in files if KEY.encode() in p.read_bytes() or SECRET.encode() in p.read_bytes()
    ]
