"""`<sleeve>_champion`: the promotion history of a sleeve, one partition per session — it
moves `champion` to the versions whose gate passed, or, run with ``rollback: true``, back to
`previous_champion` as of the session (`python -m trademl_jobs.rollback`)."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from resources.lake import LakeResource
from resources.mlflow import MlflowResource
from trademl_assets.history import champion_history, promote_passed, rollback_rows
from trademl_assets.partitions import SESSIONS, SINGLE_RUN, sessions_of

if TYPE_CHECKING:
    from trademl_assets.sleeves import SleeveSpec


#: A model partition of the latest session materialized on its own (from the launchpad, say)
#: → the champion decision of that session follows, once. Declarative: Dagster's `eager`
#: (the latest session only, never while the model is missing or running, and not again
#: until the model changes), evaluated by `champion_automation_sensor`. A training job that
#: runs the champion itself leaves nothing to do; a backfill of past sessions never fires it.
CHAMPION_FOLLOWS_MODEL = dg.AutomationCondition.eager()


class ChampionConfig(dg.Config):
    """Run config of a champion asset (the launchpad or `trademl_jobs.rollback`)."""

    #: Move `champion` back to `previous_champion` as of the run's session, instead of
    #: promoting the versions that passed their gate.
    rollback: bool = False
    #: Why (recorded on the demoted version in the registry).
    reason: str = "rolled back by hand"


def champion_asset(spec: "SleeveSpec") -> dg.AssetsDefinition:
    """`<sleeve>_champion`: moves `champion` to the versions whose gate passed (the old one
    keeps `previous_champion`), or back to `previous_champion` on a rollback; skipped when
    none passed; its partitions are the history scoring reads."""

    @dg.asset(
        name=spec.champion_key,
        partitions_def=SESSIONS,
        backfill_policy=SINGLE_RUN,
        group_name=spec.group,
        io_manager_key="lake",
        deps=[dg.AssetDep(spec.model_key)],
        metadata={"partition_column": "date"},
        kinds={"mlflow"},
        output_required=False,
        automation_condition=CHAMPION_FOLLOWS_MODEL,
        description=f"Moves `champion` of `{spec.name}` to the version that passed its gate "
        "(or, with `rollback: true`, back to `previous_champion`).",
    )
    def _champion(
        context: dg.AssetExecutionContext,
        config: ChampionConfig,
        mlflow: MlflowResource,
        lake_store: LakeResource,
    ) -> Iterator[dg.Output[pl.DataFrame]]:
        lake = lake_store.lake
        history = champion_history(lake, spec.champion_key)
        if config.rollback:
            out = rollback_rows(
                mlflow, spec, history, lake, sessions_of(context.partition_keys), config.reason
            )
            context.log.warning(
                f"{spec.name}: rolled back to v{out.get_column('version')[-1]} as of "
                f"{context.partition_keys[-1]} ({config.reason})"
            )
            yield dg.Output(out, metadata={"champion": out.get_column("version")[-1]})
            return
        model = lake.scan(spec.model_key, context.partition_keys).collect()
        ok = model.filter(pl.col("passed_gate") & pl.col("version").is_not_null())
        if ok.height == 0:
            context.log.info(f"{spec.name}: no version passed its gate; `champion` stays")
            return
        out = promote_passed(context, ok, mlflow, spec.name, history)
        yield dg.Output(out, metadata={"champion": out.get_column("version")[-1]})

    return _champion
