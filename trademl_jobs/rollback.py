"""Roll a sleeve's champion back to `previous_champion`:
``python -m trademl_jobs.rollback <sleeve> [--as-of SESSION] [--reason TEXT]``.

Materializes ``<sleeve>_champion`` for the session (default: the latest) with
``rollback: true`` on the Dagster instance in force (``DAGSTER_HOME``), so the rollback is a
run in the UI like any promotion: the registry's `champion` alias moves back, the demoted
version is tagged ``rollback.*`` with the reason, and the promotion history gets the row that
makes the restored version the champion as of that session — what scoring reads. With
`promotion_rescore_sensor` on, the session is then re-scored with it; without, run the
`rescore` job. The same run can be launched from the UI: materialize ``<sleeve>_champion``
with the run config ``{ops: {<sleeve>_champion: {config: {rollback: true}}}}``.
"""

import argparse
import sys
from collections.abc import Sequence

import dagster as dg

from trademl_assets.partitions import SESSIONS
from trademl_assets.registry import ALPHA, SIZING, STACKER


def main(argv: Sequence[str] | None = None) -> int:
    specs = {sp.name: sp for sp in [*ALPHA, *([STACKER] if STACKER else []), *SIZING]}
    p = argparse.ArgumentParser(prog="python -m trademl_jobs.rollback", description=__doc__)
    p.add_argument("sleeve", choices=sorted(specs))
    p.add_argument("--as-of", help="the session the rollback takes effect (default: latest)")
    p.add_argument("--reason", default="rolled back by hand")
    a = p.parse_args(argv)
    keys = SESSIONS.get_partition_keys()
    as_of = a.as_of or keys[-1]
    if as_of not in set(keys):
        p.error(f"--as-of {as_of} is not a session partition ({keys[0]} … {keys[-1]})")
    from trademl_jobs.definitions import ASSETS, defs

    key = specs[a.sleeve].champion_key
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            ASSETS,
            selection=[key],
            partition_key=as_of,
            run_config={"ops": {key: {"config": {"rollback": True, "reason": a.reason}}}},
            instance=instance,
            resources=defs.resources,
            tags={"trademl/reason": f"rollback: {a.reason}"},
            raise_on_error=False,
        )
    if not result.success:
        failure = next(
            (e.step_failure_data.error for e in result.all_events if e.is_step_failure), None
        )
        why = failure.message.strip() if failure else "see the run in the Dagster UI"
        print(f"rollback of {a.sleeve} failed: {why}", file=sys.stderr)
        return 1
    (out,) = [e for e in result.get_asset_materialization_events()]
    version = out.materialization.metadata["champion"].value
    print(f"{a.sleeve}: champion is v{version} as of {as_of} (run {result.run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
