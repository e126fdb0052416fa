"""The code location's shape: assets, groups, partitions, lookbacks, checks, jobs, resources.

A deliberate change updates the snapshot: TRADEML_UPDATE_SNAPSHOT=1 pytest this file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from trademl_jobs.definitions import defs

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _partitions(pd: dg.PartitionsDefinition | None) -> dict[str, object] | None:
    if pd is None:
        return None
    assert isinstance(pd, dg.TimeWindowPartitionsDefinition)
    return {
        "cron": pd.cron_schedule,
        "timezone": pd.timezone,
        "fmt": pd.fmt,
        "start": pd.start.date().isoformat(),
        "end_offset": pd.end_offset,
        "excludes_holidays": bool(pd.exclusions),
    }


def snapshot() -> dict[str, object]:
    graph = defs.resolve_asset_graph()
    checks: dict[dg.AssetKey, list[tuple[str, bool]]] = {}
    for a in defs.assets or []:
        for spec in getattr(a, "check_specs", []):
            checks.setdefault(spec.asset_key, []).append((spec.name, spec.blocking))
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        deps = {}
        for parent in sorted(node.parent_keys, key=lambda k: k.to_user_string()):
            mapping = graph.get_partition_mapping(key, parent)
            deps[parent.to_user_string()] = (
                {"start_offset": mapping.start_offset, "end_offset": mapping.end_offset}
                if isinstance(mapping, dg.TimeWindowPartitionMapping)
                else type(mapping).__name__
            )
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitions": _partitions(node.partitions_def),
            "backfill_policy": str(node.backfill_policy.policy_type)
            if node.backfill_policy
            else None,
            "deps": deps,
            "checks": sorted(checks.get(key, [])),
            "partition_column": node.metadata.get("partition_column"),
            "automation": node.automation_condition.get_label()
            if node.automation_condition
            else None,
        }
    repo = defs.get_repository_def()
    return {
        "assets": assets,
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": {
            s.name: {"cron": s.cron_schedule, "job": s.job_name, "tz": s.execution_timezone}
            for s in repo.schedule_defs
        },
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(defs.resources),
    }


def test_definitions_match_snapshot():
    current = json.loads(json.dumps(snapshot(), default=list))
    if os.environ.get("TRADEML_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert current == expected


#: Per-session side effects (reports, orders at a broker): one run per session, never a range.
PER_SESSION = {
    "daily_report",
    "orders",
    "blotter",
    "lstm_snapshot",
    "patchtst_snapshot",
    *(f"{a}_{f}_agent" for a in ("ppo", "sac") for f in ("lstm", "patchtst")),
}


def test_every_partitioned_asset_can_backfill_in_one_run():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.partitions_def is None:
            continue
        if key.to_user_string() in PER_SESSION:
            assert node.backfill_policy == dg.BackfillPolicy.multi_run(1), key
        else:
            assert node.backfill_policy == dg.BackfillPolicy.single_run(), key
