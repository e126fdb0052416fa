"""`bars`: daily bars per session from the configured source, with blocking QC checks."""

import datetime as dt
from collections.abc import Iterator, Sequence

import dagster as dg
import polars as pl

from resources.lake import Lake, LakeResource, session_keys
from resources.settings import MarketDataResource, SettingsResource
from trademl.config import Settings
from trademl.data.bars import load_session_bars
from trademl.data.quality import SessionQC, Status, qc_frame, worst
from trademl.data.synthetic import SyntheticMarket
from trademl_assets.metadata import frame_metadata, markdown_table
from trademl_assets.partitions import CALENDAR, FEATURE_WINDOW, SESSIONS, SINGLE_RUN, sessions_of

QC_CHECK = "quality"
#: Lake table of each session's QC verdict (beside `bars`, not inside it), read by reports
#: and order tripwires.
QC_TABLE = "bars_qc"
#: The synthetic market's ground truth, a JSON file beside the tables.
GROUND_TRUTH = "bars_ground_truth.json"
QC_DESCRIPTION = (
    "Per session: coverage of the active universe, valid prices, consistent OHLC, unique "
    "(date, symbol), valid volume, history gaps, no off-calendar rows. RED blocks downstream."
)


def training_sessions(s: Settings, last: dt.date) -> int:
    """Sessions a training window as of `last` holds: the configured number, or with
    `train_sessions: all` every session since the partitions start with exact features (after
    their warm-up), up to the cap."""
    if not s.train_all:
        return s.train_window
    held = len(CALENDAR.sessions_in_range(s.partitions_start, last))
    return max(1, min(s.train_window, held - FEATURE_WINDOW + 1))


@dg.asset(
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    group_name="data",
    io_manager_key="lake",
    check_specs=[
        dg.AssetCheckSpec(QC_CHECK, asset="bars", blocking=True, description=QC_DESCRIPTION)
    ],
    metadata={"partition_column": "date"},
    kinds={"polars", "delta"},
)
def bars(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    settings: SettingsResource,
    lake_store: LakeResource,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """Adjusted daily OHLCV per (session, symbol) exactly as the source gave them.

    Nothing is dropped or filled: the QC checks flag problems, and a RED session
    stops every downstream asset (blocking checks).
    """
    sessions = sessions_of(context.partition_keys)
    source = market_data.open()
    s = settings.get()
    batch = load_session_bars(
        source,
        market_data.calendar(),
        sessions,
        s.qc,
        training=(training_sessions(s, sessions[-1]), s.labels.horizon),
    )
    meta = frame_metadata(batch.bars, len(sessions))
    statuses = [q.status for q in batch.qc]
    meta["qc_status"] = dg.MetadataValue.text(str(worst(statuses)))
    meta["coverage_last_session"] = dg.MetadataValue.float(batch.qc[-1].results["coverage"].value)
    if isinstance(source, SyntheticMarket):
        truth = source.ground_truth(sessions[-1])
        lake_store.lake.write_json(GROUND_TRUTH, truth)
        meta["ground_truth"] = dg.MetadataValue.json(truth)
    lake_store.lake.write_partitions(
        QC_TABLE, session_qc_table(batch.qc), context.partition_keys, "date"
    )
    yield dg.Output(batch.bars, metadata=meta)

    yield qc_check_result(qc_frame(batch.qc))


def session_qc_table(report: list[SessionQC]) -> pl.DataFrame:
    """One row per session: its worst QC status and the reasons, for reports and tripwires."""
    return pl.DataFrame(
        {
            "date": [q.session for q in report],
            "status": [str(q.status) for q in report],
            "reasons": ["; ".join(q.reasons()) for q in report],
        },
        schema={"date": pl.Date, "status": pl.String, "reasons": pl.String},
    )


def qc_check_result(table: pl.DataFrame) -> dg.AssetCheckResult:
    """One blocking result for the run's sessions: ERROR if any session is RED, WARN if YELLOW."""
    status = worst([Status(s) for s in table.get_column("status").to_list()])
    flagged = table.filter(pl.col("status") != str(Status.GREEN))
    per_rule = {
        name: str(worst([Status(s) for s in grp.get_column("status").to_list()]))
        for (name,), grp in table.group_by("rule", maintain_order=True)
    }
    sessions = table.get_column("session").n_unique()
    red = flagged.filter(pl.col("status") == str(Status.RED))
    red_sessions = red.get_column("session").n_unique()
    desc = f"{status}: {red_sessions} RED of {sessions} sessions"
    shown = red if red.height else flagged  # the reasons, worst first: RED, else YELLOW
    if shown.height:
        desc += "; " + "; ".join(
            f"{r['session']} {r['rule']}: {r['message']}"
            for r in shown.head(3).iter_rows(named=True)
        )
    return dg.AssetCheckResult(
        check_name=QC_CHECK,
        passed=status == Status.GREEN,
        severity=dg.AssetCheckSeverity.ERROR
        if status == Status.RED
        else dg.AssetCheckSeverity.WARN,
        description=desc,
        metadata={
            "status": str(status),
            "rules": dg.MetadataValue.json(per_rule),
            "red_sessions": red_sessions,
            "yellow_sessions": flagged.filter(pl.col("status") == str(Status.YELLOW))
            .get_column("session")
            .n_unique(),
            "flagged": dg.MetadataValue.md(markdown_table(flagged.head(20), n=20)),
        },
    )


def refuse_red_sessions(lake: Lake, sessions: Sequence[dt.date], asset: str) -> None:
    """Fail when a session whose bars `asset` reads was judged RED by QC.

    The blocking check stops downstream steps only in the run that found the problem; this
    keeps later runs (a daily run, a re-run of one asset) from building on the same broken
    bars. Sessions without a recorded verdict pass.
    """
    judged = set(lake.partitions(QC_TABLE)) & set(session_keys(sessions))
    if not judged:
        return
    red = (
        lake.scan(QC_TABLE, sorted(judged))
        .filter(pl.col("status") == str(Status.RED))
        .sort("date")
        .collect()
    )
    if red.height:
        shown = "; ".join(f"{r['date']}: {r['reasons']}" for r in red.head(3).iter_rows(named=True))
        raise dg.Failure(
            description=(
                f"{asset}: {red.height} session(s) of its input bars are RED in quality control "
                f"({shown}). Fix the source data and re-materialize bars for "
                f"{', '.join(str(d) for d in red.get_column('date').head(5))}"
                f"{' …' if red.height > 5 else ''}."
            ),
            allow_retries=False,
        )


def qc_for(lake: Lake, session: str) -> tuple[str, str]:
    """The session's QC verdict as the bars asset recorded it (UNKNOWN when absent)."""
    if session not in lake.partitions(QC_TABLE):
        return "UNKNOWN", "no QC verdict recorded for this session"
    row = lake.scan(QC_TABLE, [session]).collect()
    return (row.item(0, "status"), row.item(0, "reasons")) if row.height else ("UNKNOWN", "")
