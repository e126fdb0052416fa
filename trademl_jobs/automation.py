"""Automation for every sleeve: a retrain request per sleeve whose live quality decayed, a
re-score of the latest session when a champion moves, and ingestion of the sessions a files
source gained or changed.

Each sensor keeps a cursor, so a tick never asks twice for what an earlier tick asked for,
and its run keys name what they request (the daemon drops a repeated key too). None of them
trades: re-scoring runs the `rescore` job (no report, no orders); ingestion runs `daily`,
and only a run of the latest single session is followed by `trade`
(`trade_after_daily_sensor`)."""

import datetime as dt
import json

import dagster as dg
import polars as pl

from resources.lake import Lake, LakeError, LakeResource
from resources.settings import SettingsResource
from trademl.config import Settings
from trademl.data.drift import feature_drift
from trademl.data.files import DataSourceError, FilesSource
from trademl.data.sources import open_source
from trademl.data.watch import changes, dumps, loads
from trademl.models.equities.monitor import live_rank_ic
from trademl.models.policy.monitor import sizing_contribution
from trademl_assets.partitions import CALENDAR, SESSIONS
from trademl_assets.registry import ALPHA, SIZING, STACKER
from trademl_assets.sleeves import SleeveSpec
from trademl_jobs.jobs import alpha_train_job, daily_job, rescore_job, sizing_train_job

RANGE_START, RANGE_END = (
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)


def _written(lake: Lake, asset: str, keys: list[str]) -> list[str]:
    have = set(lake.partitions(asset))
    return [k for k in keys if k in have]


def alpha_quality(lake: Lake, spec: SleeveSpec, s: Settings, keys: list[str]) -> tuple[float, int]:
    """Live rank IC of the sleeve's champion scores (the stacker's: the served alpha where
    the stacker served it) over the `keys` with labels; NaN, 0 without enough of them."""
    table = "alpha_scores" if spec.kind == "stacker" else spec.scores_key
    window = [k for k in _written(lake, table, keys) if k in set(lake.partitions("labels"))]
    if len(window) < max(2, len(keys) // 2):
        return float("nan"), 0
    scores = lake.scan(table, window)
    scores = (
        scores.filter(pl.col("path") == "stacker")
        if spec.kind == "stacker"
        else scores.filter(pl.col("role") == "champion")
    )
    return live_rank_ic(
        scores.collect(), lake.scan("labels", window).collect(), label=s.equities.label
    )


def sizing_quality(lake: Lake, spec: SleeveSpec, s: Settings, keys: list[str]) -> tuple[float, int]:
    """t-stat of what the sizing champion's sizes added to the traded book (bps per session,
    gross) over the `keys`; NaN, 0 where it sized fewer than half of them."""
    window = _written(lake, "sized_weights", keys)
    bars = _written(lake, "bars", keys)
    if len(window) < max(2, len(keys) // 2):
        return float("nan"), 0
    sized = lake.scan("sized_weights", window).collect()
    b = lake.scan("bars", bars).select("date", "symbol", "open", "close").collect()
    _, t, n = sizing_contribution(
        sized, b, price=s.backtest.price, lag=s.backtest.execution_lag, sizer=spec.name
    )
    return (t, n) if n >= len(keys) // 2 else (float("nan"), 0)


def input_drift(lake: Lake, s: Settings, keys: list[str]) -> str | None:
    """Why the features drifted (recent window vs the reference before it), or None: more
    than `automation.drift_share` of them with a PSI above `automation.drift_psi`."""
    a = s.automation
    recent = keys[-a.drift_window :]
    reference = keys[-(a.drift_window + a.drift_reference) : -a.drift_window]
    have = set(lake.partitions("features"))
    recent, reference = [k for k in recent if k in have], [k for k in reference if k in have]
    if len(recent) < a.drift_window // 2 or len(reference) < a.drift_reference // 2:
        return None
    now = lake.scan("features", recent).collect()
    cols = [c for c, t in now.schema.items() if t.is_numeric()]
    psis = feature_drift(lake.scan("features", reference).select(cols).collect(), now, cols)
    drifted = {c: v for c, v in psis.items() if v > a.drift_psi}
    if not psis or len(drifted) <= a.drift_share * len(psis):
        return None
    worst = max(drifted, key=drifted.__getitem__)
    return (
        f"inputs drifted: {len(drifted)} of {len(psis)} features with PSI > {a.drift_psi} "
        f"(worst {worst}: {drifted[worst]:.2f})"
    )


def _selection(spec: SleeveSpec) -> list[dg.AssetKey]:
    keys = [spec.model_key, *([spec.oof_key] if spec.kind == "alpha" else []), spec.champion_key]
    return [dg.AssetKey(k) for k in keys]


@dg.sensor(
    jobs=[alpha_train_job, sizing_train_job],
    minimum_interval_seconds=3600,
    default_status=dg.DefaultSensorStatus.STOPPED,
)
def sleeve_retrain_sensor(
    context: dg.SensorEvaluationContext, lake_store: LakeResource, settings: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    """Per sleeve, a retrain as of the latest session when its live quality fell below its
    floor: an alpha sleeve's (and the stacker's) live rank IC < `equities.live_ic_floor`
    over `equities.live_ic_window` sessions; a sizing sleeve's live contribution t-stat <
    `automation.sizing_t_floor` over `automation.sizing_window`. The alpha sleeves and the
    stacker also retrain when their inputs drift (`input_drift`). One request per sleeve
    and session (cursor: the session each sleeve was last asked for)."""
    s = settings.get()
    lake = lake_store.lake
    asked: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    all_keys = SESSIONS.get_partition_keys()
    latest = all_keys[-1]
    requests, notes = [], []
    specs = [*ALPHA, *([STACKER] if STACKER else []), *SIZING]
    drift = None
    try:
        drift = input_drift(lake, s, all_keys)
    except LakeError as exc:
        notes.append(f"input drift: {exc}")
    for spec in specs:
        if asked.get(spec.name) == latest:
            notes.append(f"{spec.name}: already asked for {latest}")
            continue
        try:
            if spec.kind == "sizing":
                value, n = sizing_quality(lake, spec, s, all_keys[-s.automation.sizing_window :])
                floor, what = s.automation.sizing_t_floor, "live sizing contribution t"
            else:
                value, n = alpha_quality(lake, spec, s, all_keys[-s.equities.live_ic_window :])
                floor, what = s.equities.live_ic_floor, "live rank IC"
        except LakeError as exc:
            notes.append(f"{spec.name}: {exc}")
            continue
        decayed = n > 0 and value < floor
        if not decayed and (spec.kind == "sizing" or drift is None):
            notes.append(f"{spec.name}: {what} {value:.3f} over {n} sessions (floor {floor})")
            continue
        reason = (
            f"{spec.name}: {what} {value:.3f} < {floor} ({n} sessions)"
            if decayed
            else f"{spec.name}: {drift}"
        )
        asked[spec.name] = latest
        job = sizing_train_job if spec.kind == "sizing" else alpha_train_job
        requests.append(
            dg.RunRequest(
                run_key=f"retrain-{spec.name}-{latest}",
                job_name=job.name,
                asset_selection=_selection(spec),
                partition_key=latest,
                tags={"trademl/reason": reason},
            )
        )
    context.log.info("; ".join(notes) or "no sleeve checked")
    if not requests:
        return dg.SkipReason("; ".join(notes) or "no sleeve to check")
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(asked, sort_keys=True))


#: The champion assets whose promotions re-score the latest session.
CHAMPIONS = [
    dg.AssetKey(sp.champion_key) for sp in [*ALPHA, *([STACKER] if STACKER else []), *SIZING]
]


@dg.sensor(
    job=rescore_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED
)
def promotion_rescore_sensor(
    context: dg.SensorEvaluationContext,
) -> dg.SensorResult | dg.SkipReason:
    """A champion promoted as of the latest session → re-score that session (the sleeves'
    scores, the served alpha, the book and its shadows) with it. A promotion of an earlier
    session (a backfill) re-scores nothing; nothing trades. Cursor: the last event seen."""
    after = int(context.cursor) if context.cursor else 0
    latest = SESSIONS.get_last_partition_key()
    newest, hits = after, []
    for key in CHAMPIONS:
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, after_storage_id=after or None), limit=1000
        ).records
        for r in records:
            newest = max(newest, r.storage_id)
            if r.partition_key == latest:
                hits.append((r.storage_id, key.to_user_string()))
    if not hits:
        why = f"no promotion as of {latest} after event {after}"
        return dg.SensorResult(skip_reason=why, cursor=str(newest))
    storage_id, names = max(hits)[0], sorted({n for _, n in hits})
    request = dg.RunRequest(
        run_key=f"rescore-{latest}-{storage_id}",
        partition_key=latest,
        tags={"trademl/reason": f"promoted: {', '.join(names)}"},
    )
    return dg.SensorResult(run_requests=[request], cursor=str(newest))


@dg.sensor(
    job=daily_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED
)
def new_files_sensor(
    context: dg.SensorEvaluationContext, lake_store: LakeResource, settings: SettingsResource
) -> dg.SensorResult | dg.SkipReason:
    """A files source gained, changed or lost files → run `daily` over the sessions they
    span (one session: that partition; more: a single-run range). The first tick also
    ingests the source's sessions the lake has no bars for. Cursor: each file's mtime, size
    and date range, so unchanged files are not read again."""
    s = settings.get()
    if s.data.source != "files" or not s.data.path:
        return dg.SkipReason("data.source is not files: nothing to watch")
    source = open_source(s.data, CALENDAR)
    assert isinstance(source, FilesSource)
    try:
        found = changes(source, loads(context.cursor))
    except DataSourceError as exc:
        return dg.SkipReason(f"{s.data.path}: {exc}")
    if found.first is None or found.last is None:
        if context.cursor is None or found.changed:
            return dg.SensorResult(skip_reason="no dated rows changed", cursor=dumps(found.state))
        return dg.SkipReason(f"{s.data.path}: no file changed")
    keys = _sessions_between(found.first, found.last)
    if context.cursor is None:  # first look: what the lake has no bars for yet
        have = set(lake_store.lake.partitions("bars"))
        keys = [k for k in keys if k not in have]
    if not keys:
        return dg.SensorResult(skip_reason="every session is ingested", cursor=dumps(found.state))
    tags = {"trademl/reason": f"{len(found.changed)} file(s) changed under {s.data.path}"}
    if len(keys) == 1:
        request = dg.RunRequest(
            run_key=f"files-{keys[0]}-{found.digest}", partition_key=keys[0], tags=tags
        )
    else:
        request = dg.RunRequest(
            run_key=f"files-{keys[0]}-{keys[-1]}-{found.digest}",
            tags={**tags, RANGE_START: keys[0], RANGE_END: keys[-1]},
        )
    return dg.SensorResult(run_requests=[request], cursor=dumps(found.state))


def _sessions_between(first: dt.date, last: dt.date) -> list[str]:
    """The partition keys from `first` to `last` (both ISO-comparable), clipped to SESSIONS."""
    return [k for k in SESSIONS.get_partition_keys() if str(first) <= k <= str(last)]


#: Evaluates the champions' automation condition (`trademl_assets.champion`) — off until
#: turned on, like every sensor here.
champion_automation_sensor = dg.AutomationConditionSensorDefinition(
    "champion_automation_sensor",
    target=dg.AssetSelection.assets(
        *[sp.champion_key for sp in (*ALPHA, *SIZING, *([STACKER] if STACKER else []))]
    ),
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="A model of the latest session materialized on its own → its champion "
    "decision follows (Dagster's eager condition on every `<sleeve>_champion`).",
)
