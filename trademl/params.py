"""Settings → library parameters, in one place.

Each stage's library takes plain typed parameters (dataclasses); the assets call these
functions with the settings in force and never map a setting themselves. Settings that shape
the Dagster graph (partition start, calendar, lookback windows, which sleeves exist) are read
once when the code location loads — see `trademl_assets.partitions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trademl.backtest.engine import BacktestParams
from trademl.config import Settings
from trademl.costs import CostModel
from trademl.execution.tripwires import TripwireLimits
from trademl.models.forecasts.params import EnsembleParams, ForecastParams
from trademl.portfolio.weights import PortfolioParams

if TYPE_CHECKING:
    from trademl.models.offline_rl.env import RewardConfig
    from trademl.models.offline_rl.pipeline import OfflineRLParams
    from trademl.models.policy.grpo import GRPOParams

__all__ = [
    "backtest_params",
    "cost_model",
    "forecast_params",
    "grpo_params",
    "offline_rl_params",
    "portfolio_params",
    "reward_config",
    "sizing_features",
    "tripwire_limits",
]


def portfolio_params(s: Settings) -> PortfolioParams:
    """The sizing parameters of the settings in force."""
    p = s.portfolio
    return PortfolioParams(
        ic=p.expected_ic,
        kelly_fraction=p.kelly_fraction,
        vol_target=p.vol_target,
        name_cap=p.name_cap,
        gross_cap=p.gross_cap,
        long_only=not p.long_short,
    )


def cost_model(s: Settings) -> CostModel:
    """The one cost model of the settings in force (backtest, policy gate, order planner)."""
    c = s.costs
    return CostModel(
        fee_bps=c.fee_bps,
        half_spread_bps=c.half_spread_bps,
        impact_coef=c.impact_coef,
        borrow_bps_tiers=tuple(c.borrow_bps_tiers),
        auction_slippage_bps=c.auction_slippage_bps,
    )


def backtest_params(s: Settings) -> BacktestParams:
    """Execution lag, fill price and capital of the backtests."""
    b = s.backtest
    return BacktestParams(lag=b.execution_lag, price=b.price, capital=b.initial_capital)


def tripwire_limits(s: Settings) -> TripwireLimits:
    """The order tripwires of the settings in force."""
    e = s.execution
    return TripwireLimits(
        max_turnover=e.max_turnover,
        max_gross=e.max_gross,
        max_bar_lag_days=e.max_bar_lag_days,
        halt_on_yellow=e.halt_on_yellow,
    )


def forecast_params(s: Settings) -> ForecastParams:
    """The forecasting models of the settings in force; CUDA on the gpu deployment."""
    f = s.forecasts
    return ForecastParams(
        lag=s.labels.execution_lag,
        input_size=f.input_size,
        max_steps=f.max_steps,
        learning_rate=f.learning_rate,
        batch_size=f.batch_size,
        windows_batch_size=f.windows_batch_size,
        hidden_size=f.hidden_size,
        patch_len=f.patch_len,
        stride=f.stride,
        linear_hidden_size=2 * f.hidden_size,
        nhits_mlp_units=f.nhits_mlp_units,
        seed=f.seed,
        accelerator="gpu" if s.env == "gpu" else "cpu",
        refit=f.refit or False,
        vol_window=f.vol_window,
        trend_window=f.trend_window,
        ensemble=EnsembleParams(**f.ensemble.model_dump()),
    )


def grpo_params(s: Settings) -> GRPOParams:
    """GRPO hyperparameters of the settings in force (CUDA on the gpu deployment)."""
    from trademl.models.policy.grpo import GRPOParams

    p = s.policy
    return GRPOParams(
        group_size=p.group_size,
        lr=p.lr,
        epochs=p.epochs,
        batch_size=p.batch_size,
        clip_eps=p.clip_eps,
        kl_beta=p.kl_beta,
        entropy_coef=p.entropy_coef,
        cost_bps=p.cost_bps,
        risk_aversion=p.risk_aversion,
        hidden=tuple(p.hidden),
        patience=p.patience,
        seed=p.seed,
        device="cuda" if s.env == "gpu" else "cpu",
        num_threads=1,
    )


def reward_config(s: Settings) -> RewardConfig:
    """The offline RL reward of the settings in force: its buckets and penalty, and the cost
    model's one-way rate (fees + half spread)."""
    from trademl.models.offline_rl.env import RewardConfig

    o = s.offline_rl
    return RewardConfig(
        buckets=tuple(o.buckets),
        cost_bps=s.costs.fee_bps + s.costs.half_spread_bps,
        drawdown_penalty=o.drawdown_penalty,
        regime_window=o.regime_window,
        drawdown_window=o.drawdown_window,
        episode=o.episode,
        action=o.action,
        impact_coef=s.costs.impact_coef if o.action == "participation" else 0.0,
        capital=float(s.execution.capital),
    )


def sizing_features(s: Settings) -> list[str]:
    """The feature columns the sizing policies' states read: the trend feature, and each
    name's dollar ADV when offline RL decides participation rates."""
    from trademl.models.offline_rl.trajectories import liquidity_of

    liquidity = liquidity_of(reward_config(s))
    return [s.policy.trend_feature, *([liquidity] if liquidity else [])]


def offline_rl_params(s: Settings) -> OfflineRLParams:
    """Training and gate settings of the offline RL sizing sleeve."""
    from trademl.models.offline_rl.pipeline import OfflineRLParams

    o = s.offline_rl
    return OfflineRLParams(
        algo=o.algo,
        n_steps=o.n_steps,
        batch_size=o.batch_size,
        gamma=o.gamma,
        test_frac=o.test_frac,
        n_boot=o.n_boot,
        level=o.level,
        margin=o.promotion.margin,
        min_improvement_t=o.promotion.min_improvement_t,
        seed=o.seed,
        cql_alpha=o.cql_alpha,
        reward_headroom=o.reward_headroom,
        dt_target_quantile=o.dt_target_quantile,
    )
