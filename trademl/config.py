"""Typed settings: one YAML file per deployment, loaded once.

`TRADEML_CONFIG` picks the YAML file (default: ``configs/<TRADEML_ENV>.yaml``),
`TRADEML_HOME` roots the lake, Dagster home and MLflow store (default
``./.trademl``), `TRADEML_ENV` picks the deployment wiring (local/gpu/prod).
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
DEPLOYMENTS = ("local", "gpu", "prod")


class ConfigError(ValueError):
    """A settings file is missing, unreadable or holds an invalid value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlphaConfig(_Strict):
    """The planted cross-sectional signal of the synthetic market."""

    mode: Literal["planted", "noise"] = "planted"
    feature: Literal["mom_20"] = "mom_20"
    horizon: int = Field(5, ge=1, le=60)
    target_ic: float = Field(0.05, ge=0.0, le=0.5)
    #: A second planted signal: short-term reversal (the last 5 sessions' losers earn more).
    reversal_ic: float = Field(0.0, ge=0.0, le=0.5)


class DataConfig(_Strict):
    """Where bars come from."""

    source: Literal["synthetic", "files"] = "synthetic"
    path: str | None = None
    start: dt.date = dt.date(2019, 1, 2)
    end: dt.date | None = None
    symbols: int | list[str] = 100
    seed: int = 7
    missing_bar_rate: float = Field(0.002, ge=0.0, le=0.5)
    alpha: AlphaConfig = AlphaConfig()
    #: Extra channels for the sequence forecasters (news sentiment, fundamentals, …): a
    #: parquet or CSV file in long format — columns date, symbol, channel, value — each value
    #: known at that session's close. Name them in `patchtst.channels` / `lstm.channels`.
    channels_path: str | None = None

    @field_validator("end")
    @classmethod
    def _no_end(cls, v: dt.date | None) -> dt.date | None:
        if v is not None:
            raise ValueError(
                "not supported: partitions run to the latest completed session; to stop a "
                "backfill at a date, give it a --partition-range (or trim the files)"
            )
        return v

    @model_validator(mode="after")
    def _symbols_match_source(self) -> DataConfig:
        if self.source == "synthetic" and isinstance(self.symbols, list):
            raise ValueError(
                "data.symbols: the synthetic market takes a number of names (e.g. 100); a list "
                "of tickers needs data.source: files"
            )
        return self

    @field_validator("symbols")
    @classmethod
    def _symbols_ok(cls, v: int | list[str]) -> int | list[str]:
        if isinstance(v, int) and v < 2:
            raise ValueError("data.symbols must be at least 2 (a cross-section needs two names)")
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError("data.symbols lists a symbol twice")
        return v


class CalendarConfig(_Strict):
    """Exchange sessions define the partitions."""

    exchange: str = "XNYS"
    partitions_start: dt.date | None = None


class QCConfig(_Strict):
    """Thresholds of the bars quality checks (fractions of the session's rows)."""

    universe_lookback: int = Field(10, ge=1)
    coverage_yellow: float = 0.97
    coverage_red: float = 0.80
    zero_volume_red: float = 0.05
    gap_lookback: int = Field(20, ge=2)
    gap_symbols_red: float = 0.10
    gap_min_names_red: int = Field(3, ge=1)
    #: Data-realism checks (YELLOW): the share of names that must look unrealistic for a
    #: warning, and the trailing sessions a constant volume is judged over.
    realism_share: float = Field(0.9, gt=0.0, le=1.0)
    realism_lookback: int = Field(20, ge=3)
    #: The rank IC a real signal plausibly has: a universe whose noise floor over the
    #: training window exceeds it cannot reach the promotion bars (a warning says so).
    plausible_rank_ic: float = Field(0.05, gt=0.0, le=1.0)


class FeatureConfig(_Strict):
    """Feature store settings."""

    ffill_limit: int = Field(5, ge=0, le=20)
    cross_sectional: list[str] = [
        "mom_5",
        "mom_20",
        "mom_60",
        "mom_126",
        "mom_12_1",
        "rvol_20",
        "dd_252",
        "bb_pos_20",
        "beta_60",
        "dollar_vol_20",
    ]


class TripleBarrierConfig(_Strict):
    """AFML triple barrier: multiples of daily σ, holding limit in sessions."""

    tp: float = Field(2.0, gt=0)
    sl: float = Field(1.0, gt=0)
    max_holding: int = Field(10, ge=1)
    vol_window: int = Field(20, ge=2)
    vertical_label: Literal["sign", "zero"] = "sign"


class LabelConfig(_Strict):
    """Forward-return and triple-barrier labels."""

    horizon: int = Field(5, ge=1)
    execution_lag: int = Field(1, ge=0)
    price: Literal["open", "close"] = "open"
    triple_barrier: TripleBarrierConfig = TripleBarrierConfig()


class PromotionConfig(_Strict):
    """Bars a challenger must clear before `champion` moves (missing/NaN fails closed)."""

    min_path_sharpe: float = 1.0
    max_drawdown: float = 0.20
    min_dsr: float = 0.95
    max_pbo: float = 0.05
    ic_margin_vs_champion: float = 0.0
    ic_margin_vs_baseline: float = 0.005
    #: Sessions a challenger must have traded in the shadow before it may be promoted.
    min_shadow_sessions: int = Field(0, ge=0)


#: A training window: a number of sessions (≥ 60) or `all` the history there is.
TrainWindow = Annotated[int, Field(ge=60)] | Literal["all"]
#: The training window per source when the settings name none: 3 years of the synthetic
#: market; all of the user's own history.
DEFAULT_TRAIN_SESSIONS: dict[str, int | Literal["all"]] = {"synthetic": 756, "files": "all"}


class EquitiesConfig(_Strict):
    """The CPCV alpha sleeves (one per model kind) and the split layout every CPCV sleeve
    shares: training window, label, groups, embargo, HPO budget, retraining."""

    #: One sleeve per kind (`equities_lgbm`, `equities_catboost`), trained when listed.
    models: list[Literal["lgbm", "catboost"]] = ["lgbm", "catboost"]
    #: The feature columns a kind's sleeve sees (a kind not listed sees every feature).
    features: dict[Literal["lgbm", "catboost"], list[str]] = {}
    label: str = "fwd_ret_5"
    objective: Literal["regression", "classification"] = "regression"
    class_label: str = "tb_label"
    #: Sessions per training window: a number, `all` (every session the lake holds up to
    #: `max_train_sessions`), or one of those per data source.
    train_sessions: TrainWindow | dict[Literal["synthetic", "files"], TrainWindow] = dict(
        DEFAULT_TRAIN_SESSIONS
    )
    #: The cap on `all`: 10 years of sessions.
    max_train_sessions: int = Field(2520, ge=60)
    n_groups: int = Field(8, ge=3)
    n_test_groups: int = Field(2, ge=1)
    embargo: int = Field(10, ge=0)
    n_trials: int = Field(10, ge=1)
    n_estimators: int = Field(200, ge=10)
    half_life_months: float | None = 24.0
    spread_bps: float = Field(5.0, ge=0)
    baseline_feature: str = "mom_12_1"
    #: Give the model the market-vol regime (mkt_rvol_20) as an input; it is always used to
    #: report rank IC per regime (calm / high-vol).
    regime_feature: bool = False
    live_ic_window: int = Field(60, ge=5)
    live_ic_floor: float = 0.0
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="before")
    @classmethod
    def _no_single_model(cls, data: object) -> object:
        if isinstance(data, dict) and "model" in data:
            raise ValueError(
                "equities.model was replaced by equities.models, a list of the sleeves to "
                f"train (e.g. models: [{data['model']}] or [lgbm, catboost])"
            )
        return data

    @field_validator("models")
    @classmethod
    def _models_unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("equities.models lists a model twice")
        return v


class LinearConfig(_Strict):
    """The regularized linear sleeve on the same features and CPCV layout as equities."""

    enabled: bool = True
    #: The feature columns it sees (null: every feature).
    features: list[str] | None = None
    #: Penalties searched (each once; all recorded for DSR/PBO); l1_ratio 0 is ridge.
    alphas: list[float] = [0.001, 0.01, 0.1, 1.0, 10.0]
    l1_ratio: float = Field(0.0, ge=0.0, le=1.0)
    clip: float = Field(5.0, gt=0.0)
    promotion: PromotionConfig = PromotionConfig()

    @field_validator("alphas")
    @classmethod
    def _alphas_ok(cls, v: list[float]) -> list[float]:
        if not v or min(v) < 0 or len(set(v)) != len(v):
            raise ValueError("linear.alphas must be distinct non-negative penalties")
        return v


class StackerPromotionConfig(_Strict):
    """The stacker's bars: its median-path OOS rank IC beats the best single sleeve's by a
    margin; its PBO and DSR are no worse than that sleeve's — or clear `max_pbo` / `min_dsr`,
    the bars every sleeve clears; and it beats its own champion as of the session."""

    ic_margin_vs_best_sleeve: float = 0.0
    max_pbo: float = 0.05
    min_dsr: float = 0.95
    ic_margin_vs_champion: float = 0.0
    min_shadow_sessions: int = Field(0, ge=0)


class StackerConfig(_Strict):
    """The meta-model over the alpha sleeves' out-of-fold predictions."""

    method: Literal["nnls", "positive_ridge", "lgbm_monotone"] = "nnls"
    #: Alpha sleeves it may combine (those whose snapshot as of the session passed its gate).
    sleeves: list[str] = ["equities_lgbm", "equities_catboost", "linear", "forecasts"]
    ridge_alpha: float = Field(0.1, ge=0.0)
    lgbm_trees: int = Field(50, ge=1)
    promotion: StackerPromotionConfig = StackerPromotionConfig()


class RouterConfig(_Strict):
    """How `alpha_scores` serves a session: the stacker champion when every sleeve it needs
    scored; else a promoted stacker on the sleeves present; else `fallback_weights` over the
    sleeves present (missing or empty: equal weights); with no sleeve champion at all, the
    fit-free `portfolio.fallback_feature`."""

    stacker_enabled: bool = True
    fallback_weights: dict[str, float] = {}

    @field_validator("fallback_weights")
    @classmethod
    def _weights_ok(cls, v: dict[str, float]) -> dict[str, float]:
        if any(w < 0 for w in v.values()):
            raise ValueError("router.fallback_weights must be non-negative")
        return v


class PortfolioConfig(_Strict):
    """Scores → target weights: z-score, fractional Kelly, vol target, caps."""

    long_short: bool = True
    name_cap: float = Field(0.05, gt=0.0, le=1.0)
    gross_cap: float = Field(1.0, gt=0.0, le=10.0)
    kelly_fraction: float = Field(0.5, ge=0.5, le=1.0)
    vol_target: float = Field(0.10, gt=0.0, le=2.0)
    expected_ic: float = Field(0.05, ge=0.0, le=1.0)
    confidence: float = Field(1.0, ge=0.0, le=1.0)
    #: Fit-free signal traded on sessions without a champion alpha (null: no positions then).
    fallback_feature: str | None = "mom_12_1"


class CostsConfig(_Strict):
    """One cost model for the backtest and the order planner (bps of traded notional)."""

    fee_bps: float = Field(0.0, ge=0.0)
    half_spread_bps: float = Field(5.0, ge=0.0)
    impact_coef: float = Field(1.0, ge=0.0)
    borrow_bps_tiers: list[float] = [50.0, 100.0, 200.0]
    auction_slippage_bps: float = Field(0.0, ge=0.0)


class BacktestConfig(_Strict):
    """Each backtest partition replays the trailing `sessions` of target weights."""

    sessions: int = Field(252, ge=5)
    execution_lag: int = Field(1, ge=1)
    price: Literal["open", "close"] = "open"
    initial_capital: float = Field(1_000_000.0, gt=0.0)


class ExecutionConfig(_Strict):
    """Order planning, slicing, tripwires and the broker (dry-run unless told otherwise)."""

    #: replay: fill past sessions at the next session's bars (`trademl.execution.replay`);
    #: dry_run and alpaca refuse any session but the latest.
    broker: Literal["dry_run", "alpaca", "replay"] = "dry_run"
    paper: bool = True
    allow_live: bool = False
    base_url: str | None = None
    capital: float = Field(1_000_000.0, gt=0.0)
    lot_size: int = Field(1, ge=1)
    min_notional: float = Field(100.0, ge=0.0)
    schedule: Literal["almgren_chriss", "twap"] = "almgren_chriss"
    slices: int = Field(5, ge=1)
    risk_aversion: float = Field(1e-6, ge=0.0)
    max_turnover: float = Field(0.5, gt=0.0)
    max_gross: float = Field(1.05, gt=0.0)
    max_bar_lag_days: int = Field(0, ge=0)
    halt_on_yellow: bool = False
    max_feature_drift_z: float = Field(8.0, gt=0.0)


class EnsembleConfig(_Strict):
    """PatchTST's weight in the PatchTST/NHITS blend, by recent realized vol (daily std)."""

    vol_low: float = Field(0.012, ge=0.0)
    vol_high: float = Field(0.03, gt=0.0)
    w_patchtst_calm: float = Field(0.7, ge=0.0, le=1.0)
    w_patchtst_stressed: float = Field(0.3, ge=0.0, le=1.0)


class ForecastPromotionConfig(_Strict):
    """Bars of a new forecaster on the realized OOS signals (NaN fails closed)."""

    min_oos_rank_ic: float = 0.0
    min_oos_rank_ic_t: float = 2.0
    ic_margin_vs_champion: float = 0.0
    min_shadow_sessions: int = Field(0, ge=0)


class ForecastsConfig(_Strict):
    """NeuralForecast OOS signals ("rotten apples") and the live forecasters.

    `train_end` fixes the first training cutoff (default: `train_sessions` sessions after the
    partitions start), so a session's OOS forecast never changes when data is appended.
    """

    train_end: dt.date | None = None
    train_sessions: int = Field(252, ge=30)
    refit: int = Field(0, ge=0)  # 0: train once at train_end; R: retrain every R sessions
    input_size: int = Field(64, ge=4)
    max_steps: int = Field(300, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(32, ge=1)
    windows_batch_size: int = Field(128, ge=1)
    hidden_size: int = Field(64, ge=2)
    patch_len: int = Field(16, ge=2)
    stride: int = Field(8, ge=1)
    nhits_mlp_units: int = Field(128, ge=2)
    hist_exog: list[str] = ["rvol_20", "mkt_rvol_20", "xs_z_mom_20"]
    vol_window: int = Field(20, ge=2)
    trend_window: int = Field(20, ge=1)
    seed: int = 1
    ensemble: EnsembleConfig = EnsembleConfig()
    promotion: ForecastPromotionConfig = ForecastPromotionConfig()


class PolicyPromotionConfig(_Strict):
    """Bars of a sizing policy: on sessions after its training window, the sized book's net
    Sharpe beats the unsized book's by `min_sharpe_margin`, the daily improvement has a
    t-stat ≥ `min_improvement_t`, the sized Sharpe is ≥ `min_sharpe`, and it beats the
    sizing champion's by `sharpe_margin_vs_champion`."""

    min_sharpe_margin: float = 0.0
    min_improvement_t: float = 2.0
    min_sharpe: float = 0.0
    sharpe_margin_vs_champion: float = 0.0
    min_shadow_sessions: int = Field(0, ge=0)


class PolicyConfig(_Strict):
    """GRPO sizing policy: per-name sizes in [0, 2] of the book's target weights."""

    train_sessions: int = Field(504, ge=20)
    test_frac: float = Field(0.2, gt=0.0, lt=1.0)
    group_size: int = Field(8, ge=2)
    lr: float = Field(3e-3, gt=0.0)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(4096, ge=1)
    clip_eps: float = Field(0.2, gt=0.0)
    kl_beta: float = Field(0.01, ge=0.0)
    entropy_coef: float = Field(0.0, ge=0.0)
    cost_bps: float = Field(5.0, ge=0.0)
    risk_aversion: float = Field(2.0, ge=0.0)
    hidden: list[int] = [32, 32]
    patience: int = Field(5, ge=1)
    seed: int = 0
    #: The trend state of a name (a feature column).
    trend_feature: str = "mom_20"
    promotion: PolicyPromotionConfig = PolicyPromotionConfig()


class OfflineRLPromotionConfig(_Strict):
    """The offline RL gate: on the logged sessions after its training window, the doubly
    robust lower confidence bound beats the behaviour policy's value by `margin` (bps of
    discounted episode return) AND its replay beats the traded book with a t-stat ≥
    `min_improvement_t`, AND its replay beats the sizing champion's by `margin_vs_champion`."""

    margin: float = 0.0
    min_improvement_t: float = 2.0
    margin_vs_champion: float = 0.0
    min_shadow_sessions: int = Field(0, ge=0)


class OfflineRLConfig(_Strict):
    """Offline RL sizing: the logged exploration around the traded book (`rl_trajectories`),
    the reward it is booked with (`trademl.models.offline_rl.env`), the algorithm (d3rlpy,
    the `rl` extra) and the off-policy-evaluation gate."""

    #: size: an action picks a multiplier of the target weight (`buckets`); participation:
    #: a participation rate, the share of the gap to the target traded this session
    #: (`buckets` in (0, 1], 1.0 = the traded book), priced with the cost model's
    #: square-root impact on each name's dollar ADV (the Almgren–Chriss trade-off).
    action: Literal["size", "participation"] = "size"
    #: Size multipliers (or participation rates) an action picks from (1.0: the traded book).
    buckets: list[float] = [0.0, 0.5, 1.0, 1.5]
    #: Probability of a uniformly random bucket instead of 1.0 (the behaviour policy).
    epsilon: float = Field(0.2, gt=0.0, le=1.0)
    seed: int = 0
    #: λ in the reward: the weight of the sized position's loss on top of the loss itself.
    drawdown_penalty: float = Field(0.5, ge=0.0)
    regime_window: int = Field(60, ge=5)
    drawdown_window: int = Field(60, ge=5)
    #: An episode: one decision (session: OPE as a contextual bandit whose state holds the
    #: logged position; importance weights ≤ K/ε, so the DR bound rests on every decision)
    #: or a name's run in the book within a week or a month (weights are products over the
    #: run: a deterministic policy's DR bound rests on a handful of episodes).
    episode: Literal["session", "week", "month"] = "session"
    #: Sessions of logged trajectories a policy as of d learns from and is judged on.
    train_sessions: int = Field(504, ge=20)
    #: cql or iql; dt (a Decision Transformer) is an optional challenger: return-conditioned
    #: behaviour cloning, so it needs one-decision episodes (`episode: session`).
    algo: Literal["cql", "iql", "dt"] = "cql"
    #: dt: the return it is asked for, as a quantile of the logged rewards.
    dt_target_quantile: float = Field(0.9, gt=0.0, lt=1.0)
    #: CQL's conservatism on rewards scaled so the largest is `reward_headroom`.
    cql_alpha: float = Field(0.01, ge=0.0)
    reward_headroom: float = Field(2.5, gt=0.0)
    n_steps: int = Field(3000, ge=10)
    batch_size: int = Field(256, ge=8)
    gamma: float = Field(0.9, ge=0.0, lt=1.0)
    #: Share of the window's last sessions held out for the gate (OPE and replay).
    test_frac: float = Field(0.3, gt=0.0, lt=1.0)
    n_boot: int = Field(1000, ge=50)
    level: float = Field(0.9, gt=0.5, lt=1.0)
    promotion: OfflineRLPromotionConfig = OfflineRLPromotionConfig()

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, v: list[float]) -> list[float]:
        if len(v) < 2 or min(v) < 0 or sorted(set(v)) != v:
            raise ValueError("offline_rl.buckets: ≥ 2 distinct non-negative sizes, ascending")
        return v

    @model_validator(mode="after")
    def _rates(self) -> OfflineRLConfig:
        if self.action == "participation" and (self.buckets[0] <= 0 or self.buckets[-1] != 1.0):
            raise ValueError(
                f"offline_rl.buckets {self.buckets}: with action participation they are "
                "participation rates in (0, 1] ending at 1.0 (trade to the target), e.g. "
                "[0.25, 0.5, 1.0]"
            )
        if self.algo == "dt" and self.episode != "session":
            raise ValueError(
                f"offline_rl.algo dt with episode {self.episode}: the decision transformer is "
                "conditioned on one decision's return; set offline_rl.episode: session"
            )
        return self


class SequencePromotionConfig(_Strict):
    """A sequence forecaster's bars (`trademl.models.forecasts.sequence.forecaster_decision`)."""

    #: Validation MSE must be below the zero baseline's × (1 − min_gain).
    min_gain: float = Field(0.002, ge=0.0, lt=1.0)
    #: t-stat of the per-week rank IC on the validation weeks.
    min_ic_t: float = 2.0


class SequenceConfig(_Strict):
    """What the weekly-return sequence forecasters share; each is trained as yearly snapshots
    (`<model>_snapshot`) and through the training service (`POST /train/<model>`)."""

    #: Sessions a sequence reads and the forward sessions it predicts the return of.
    seq_len: int = Field(64, ge=8)
    horizon: int = Field(5, ge=1)
    #: Input channels: ret, gap, range, volume (from the bars) or extra ones by name
    #: (`data.channels_path`).
    channels: list[str] = ["ret"]
    lr: float = Field(1e-3, gt=0.0)
    batch_size: int = Field(256, ge=8)
    max_epochs: int = Field(40, ge=1)
    patience: int = Field(5, ge=1)
    #: The last share of the weeks validates (chronological split, scaler fit before it).
    val_frac: float = Field(0.2, gt=0.0, lt=1.0)
    #: The last share of the training weeks stops training early (the validation weeks,
    #: which the gate reads, choose nothing).
    stop_frac: float = Field(0.15, gt=0.0, lt=1.0)
    #: Years of history a snapshot trains on, ending at its year end.
    train_years: int = Field(10, ge=1)
    seed: int = 0
    promotion: SequencePromotionConfig = SequencePromotionConfig()

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        if not v or len(set(v)) != len(v):
            raise ValueError("channels: at least one, none twice")
        return v


class LSTMConfig(SequenceConfig):
    """The LSTM weekly-return forecaster (registered ``lstm``)."""

    seq_len: int = Field(60, ge=8)
    hidden: int = Field(32, ge=1)
    layers: int = Field(1, ge=1)


class PatchTSTConfig(SequenceConfig):
    """The multichannel PatchTST forecaster (registered ``patchtst``): OHLCV channels by
    default, plus any extra channel named here and supplied in `data.channels_path`."""

    channels: list[str] = ["ret", "gap", "range", "volume"]
    #: Non-overlapping patches of this many sessions (`seq_len` must be a multiple).
    patch_len: int = Field(8, ge=1)
    d_model: int = Field(32, ge=4)
    n_layers: int = Field(4, ge=1)
    n_heads: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _patches(self) -> PatchTSTConfig:
        if self.seq_len % self.patch_len:
            raise ValueError(
                f"patchtst.seq_len {self.seq_len} must be a multiple of patch_len {self.patch_len}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"patchtst.d_model {self.d_model} must divide by n_heads")
        return self


class AgentPromotionConfig(_Strict):
    """An allocation agent's bars (`trademl.models.agents.train.agent_decision`): they hold for
    a first agent too — nothing is promoted for being first."""

    #: Held-out Sharpe (PPO) or CAGR (SAC) must beat the equal-weight book by this much.
    margin: float = 0.0
    #: Held-out annualized Sharpe floor.
    min_sharpe: float = 0.5


class AgentsConfig(_Strict):
    """The PPO and SAC allocation agents (registered ``ppo_lstm``, ``sac_patchtst``, …): a
    weekly book over the `top_n` most liquid names, state from the forecaster's snapshot of
    the previous year end, trained as of a year end on `train_years` years."""

    top_n: int = Field(15, ge=2)
    #: Years of weeks an agent sees, ending at its year end (the last `held_out_weeks` judge it).
    train_years: int = Field(2, ge=1)
    held_out_weeks: int = Field(26, ge=4)
    #: Sessions of mean dollar volume, ending at the window start, that rank liquidity.
    liquidity_sessions: int = Field(20, ge=1)
    #: `full`: from scratch on every training week.
    full_steps: int = Field(100_000, ge=100)
    full_lr: float = Field(3e-4, gt=0.0)
    #: `finetune`: from the champion's weights on the last `finetune_weeks` training weeks.
    finetune_steps: int = Field(10_000, ge=100)
    finetune_lr: float = Field(1e-4, gt=0.0)
    finetune_weeks: int = Field(26, ge=2)
    gamma: float = Field(0.9, gt=0.0, le=1.0)
    net_arch: list[int] = [64, 64]
    episode_weeks: int = Field(26, ge=2)
    #: Softmax temperature from the action scores to the target weights.
    temperature: float = Field(5.0, gt=0.0)
    seed: int = 0
    promotion: AgentPromotionConfig = AgentPromotionConfig()


class ThesisCondition(_Strict):
    """One condition of a thesis claim: a feature's value (`raw`) or its percentile rank among
    the session's names (`rank`, 0 … 1) compared with `value`."""

    feature: str
    op: Literal[">", "<"]
    value: float
    scale: Literal["raw", "rank"] = "raw"


class ThesisClaim(_Strict):
    """An evidence claim: it holds when every condition holds."""

    name: str
    when: list[ThesisCondition] = Field(min_length=1)


def _default_claims() -> list[ThesisClaim]:
    def c(feature: str, op: str, value: float, scale: str = "raw") -> dict:
        return {"feature": feature, "op": op, "value": value, "scale": scale}

    rules = {
        "long_momentum_up": [c("mom_126", ">", 0.0)],
        "long_momentum_down": [c("mom_126", "<", 0.0)],
        "short_momentum_up": [c("mom_5", ">", 0.0)],
        "short_momentum_down": [c("mom_5", "<", 0.0)],
        "high_volatility": [c("rvol_20", ">", 0.8, "rank")],
        "deep_drawdown": [c("dd_252", "<", 0.2, "rank")],
        "liquid": [c("dollar_vol_20", ">", 0.5, "rank")],
        "divergence_short_up_long_down": [c("mom_5", ">", 0.0), c("mom_126", "<", 0.0)],
    }
    return [ThesisClaim.model_validate({"name": k, "when": v}) for k, v in rules.items()]


class ThesesPromotionConfig(_Strict):
    """The thesis model's gate (`trademl.models.theses.evaluate.thesis_decision`)."""

    #: RFT's mean walk-forward Sharpe must beat SFT's by this much.
    margin: float = 0.0
    min_sharpe: float = 0.5
    #: Share of the test rows whose deterministic thesis passes the JSON Schema.
    min_validity: float = Field(0.9, ge=0.0, le=1.0)


class ThesesConfig(_Strict):
    """The thesis model (registered ``thesis``): structure, claims and decision heads, SFT on
    teacher rules then pairwise ranking RFT on realized returns (`trademl.models.theses`)."""

    enabled: bool = True
    #: Model inputs (cross-sectionally z-scored); None: the claims' features and a few more.
    features: list[str] | None = None
    claims: list[ThesisClaim] = Field(default_factory=_default_claims, min_length=1)
    #: Walk-forward evaluation: `n_folds` spans of `fold_train` then `fold_test` sessions.
    n_folds: int = Field(3, ge=1)
    fold_train: int = Field(320, ge=20)
    fold_test: int = Field(120, ge=10)
    sft_epochs: int = Field(20, ge=1)
    rft_epochs: int = Field(20, ge=0)
    lr: float = Field(1e-3, gt=0.0)
    rft_lr: float = Field(5e-4, gt=0.0)
    batch_size: int = Field(512, ge=8)
    entropy: float = Field(0.01, ge=0.0)
    #: Reward weights: schema validity, decision sign × net forward return (in units of the
    #: training returns' sd), claim consistency with the features.
    w_valid: float = 0.2
    w_return: float = 1.0
    w_claims: float = 0.2
    seed: int = 0
    #: The daily report shows the thesis of this many top longs and top shorts.
    report_top: int = Field(3, ge=0)
    promotion: ThesesPromotionConfig = ThesesPromotionConfig()

    @field_validator("claims")
    @classmethod
    def _unique(cls, v: list[ThesisClaim]) -> list[ThesisClaim]:
        names = [c.name for c in v]
        if len(set(names)) != len(names):
            raise ValueError(f"theses.claims: names must be unique, got {names}")
        return v


class EvaluationConfig(_Strict):
    """The evaluation suite every sleeve's training reports (`trademl.validation.evaluation`)."""

    #: top-k of precision, recall and NDCG per session (capped by the session's names).
    k: int = Field(50, ge=1)
    #: Paired bootstrap of challenger − champion on the same out-of-fold rows.
    n_boot: int = Field(500, ge=50)
    level: float = Field(0.9, gt=0.0, lt=1.0)
    seed: int = 0


class AutomationConfig(_Strict):
    """What the retrain sensors call decay (alpha sleeves use `equities.live_ic_*`)."""

    #: Sessions over which a sizing champion's live contribution to the book is measured.
    sizing_window: int = Field(60, ge=5)
    #: Retrain a sizing sleeve when that contribution's t-stat falls below this.
    sizing_t_floor: float = -2.0
    #: Input drift: the recent `drift_window` sessions of features against the
    #: `drift_reference` sessions before them; the alpha sleeves retrain when more than
    #: `drift_share` of the features have a PSI above `drift_psi`.
    drift_window: int = Field(20, ge=5)
    drift_reference: int = Field(252, ge=20)
    drift_psi: float = Field(0.25, gt=0.0)
    drift_share: float = Field(0.25, ge=0.0, le=1.0)


class MlflowConfig(_Strict):
    """Tracking/registry URIs; empty means sqlite under TRADEML_HOME."""

    tracking_uri: str | None = None
    registry_uri: str | None = None
    experiment: str = "trademl"
    #: Where people open the MLflow UI (`make mlflow`) and the Dagster UI (`make dev`): the
    #: links between a model asset and its MLflow run / version, both ways.
    ui_url: str = "http://127.0.0.1:5000"
    dagster_url: str = "http://127.0.0.1:3000"


class StorageConfig(_Strict):
    """Where the lake lives: empty means $TRADEML_HOME/lake; s3://bucket/prefix works too."""

    lake_root: str | None = None


class Settings(_Strict):
    """Everything configurable, in one typed object."""

    env: Literal["local", "gpu", "prod"] = "local"
    home: Path = Path(".trademl")
    data: DataConfig = DataConfig()
    calendar: CalendarConfig = CalendarConfig()
    qc: QCConfig = QCConfig()
    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    equities: EquitiesConfig = EquitiesConfig()
    linear: LinearConfig = LinearConfig()
    stacker: StackerConfig = StackerConfig()
    router: RouterConfig = RouterConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    costs: CostsConfig = CostsConfig()
    backtest: BacktestConfig = BacktestConfig()
    execution: ExecutionConfig = ExecutionConfig()
    forecasts: ForecastsConfig = ForecastsConfig()
    policy: PolicyConfig = PolicyConfig()
    offline_rl: OfflineRLConfig = OfflineRLConfig()
    lstm: LSTMConfig = LSTMConfig()
    patchtst: PatchTSTConfig = PatchTSTConfig()
    agents: AgentsConfig = AgentsConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    theses: ThesesConfig = ThesesConfig()
    automation: AutomationConfig = AutomationConfig()
    mlflow: MlflowConfig = MlflowConfig()
    storage: StorageConfig = StorageConfig()

    @model_validator(mode="after")
    def _thesis_features(self) -> Settings:
        """Thesis claims and inputs may only read features the feature store computes."""
        from trademl.features import feature_names

        have = set(feature_names(self.features.cross_sectional))
        wanted = {c.feature for claim in self.theses.claims for c in claim.when}
        for name in sorted(wanted | set(self.theses.features or [])):
            if name not in have:
                raise ValueError(
                    f"theses: feature {name!r} (a claim's condition or theses.features) is not "
                    f"computed by the feature store; use one of {sorted(have)}"
                )
        return self

    @property
    def lake_root(self) -> str:
        return (
            os.environ.get("TRADEML_LAKE_ROOT") or self.storage.lake_root or str(self.home / "lake")
        )

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def train_all(self) -> bool:
        """Whether the CPCV sleeves train on all the history there is (up to the cap)."""
        return self._train_setting() == "all"

    @property
    def train_window(self) -> int:
        """Sessions in a training window: the configured number, or the cap when `all`."""
        value = self._train_setting()
        return self.equities.max_train_sessions if value == "all" else value

    def _train_setting(self) -> int | Literal["all"]:
        value = self.equities.train_sessions
        if isinstance(value, dict):
            return value.get(self.data.source, DEFAULT_TRAIN_SESSIONS[self.data.source])
        return value

    @property
    def partitions_start(self) -> dt.date:
        return self.calendar.partitions_start or self.data.start


def _resolve_home() -> Path:
    return Path(os.environ.get("TRADEML_HOME", ".trademl")).expanduser().resolve()


def _resolve_env() -> str:
    env = os.environ.get("TRADEML_ENV", "local")
    if env not in DEPLOYMENTS:
        raise ConfigError(f"TRADEML_ENV={env!r}: expected one of {', '.join(DEPLOYMENTS)}")
    return env


def config_path() -> Path:
    """The YAML file in force: TRADEML_CONFIG, else configs/<TRADEML_ENV>.yaml."""
    explicit = os.environ.get("TRADEML_CONFIG")
    if explicit:
        return Path(explicit).expanduser().resolve()
    return CONFIG_DIR / f"{_resolve_env()}.yaml"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from `path` (or the file in force), cached per file content.

    A file may start from another with a top-level `extends:` — a deployment name
    (`local`, `gpu`, `prod`: a file in configs/) or a path relative to the file — and
    override only the keys it sets (mappings merge key by key; lists and values replace).
    """
    p = Path(path).expanduser().resolve() if path else config_path()
    if not p.exists():
        raise ConfigError(f"{p}: settings file not found (set TRADEML_CONFIG to an existing YAML)")
    text = p.read_text()
    return _parse(str(p), text, _resolve_env(), str(_resolve_home()))


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps dates as text, so a bad date is reported with its key."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _read_yaml(path: Path, text: str | None = None) -> dict:
    """The mapping in `path` (its `text` if given), with any `extends:` chain merged under it."""
    chain: list[Path] = []
    raw = _mapping(path, path.read_text() if text is None else text)
    while "extends" in raw:
        base = raw.pop("extends")
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: extends: expected a deployment name or a YAML path")
        candidate = CONFIG_DIR / f"{base}.yaml" if base in DEPLOYMENTS else Path(base)
        base_path = (path.parent / candidate).resolve()
        if base_path in chain or base_path == path:
            raise ConfigError(f"{path}: extends: {base!r} forms a cycle")
        if not base_path.exists():
            raise ConfigError(f"{path}: extends: {base!r} → {base_path} not found")
        chain.append(path)
        raw = _merge(_mapping(base_path, base_path.read_text()), raw)
        path = base_path
    return raw


def _mapping(path: Path, text: str) -> dict:
    try:
        raw = yaml.load(text, Loader=_Loader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def _merge(base: dict, override: dict) -> dict:
    """`override` on top of `base`: nested mappings merge, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


#: Settings that shape the Dagster graph: the partitions, every lookback window (a
#: `TimeWindowPartitionMapping` is fixed when the definitions load) and which sleeves exist.
#: They are read once, when the code location loads; a run whose settings file changed any
#: of them since is refused (`SettingsResource`) until the code location is reloaded.
FIXED_AT_LOAD = (
    "data.start",
    "calendar.exchange",
    "calendar.partitions_start",
    "features.ffill_limit",
    "labels.horizon",
    "labels.execution_lag",
    "labels.triple_barrier.max_holding",
    "labels.triple_barrier.vol_window",
    "equities.train_sessions",
    "equities.max_train_sessions",
    "equities.models",
    "linear.enabled",
    "theses.enabled",
    "stacker.sleeves",
    "backtest.sessions",
    "forecasts.input_size",
    "forecasts.vol_window",
    "forecasts.trend_window",
    "policy.train_sessions",
    "offline_rl.regime_window",
    "offline_rl.drawdown_window",
    "offline_rl.train_sessions",
)


def fixed_at_load(s: Settings) -> dict[str, str]:
    """The FIXED_AT_LOAD values of `s`, as text (for comparing two settings files)."""
    out = {}
    for key in FIXED_AT_LOAD:
        value: object = s
        for part in key.split("."):
            value = getattr(value, part)
        out[key] = str(value)
    return out


@lru_cache(maxsize=16)
def _parse(path: str, text: str, env: str, home: str) -> Settings:
    raw = _read_yaml(Path(path), text)
    raw.setdefault("env", env)
    raw["home"] = home
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        errors = "; ".join(
            f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {errors}") from exc
