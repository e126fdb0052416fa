"""The Kubernetes deployment's step settings (`configs/k8s.yaml`): the dagster-k8s executor's
config and the pod settings of a GPU step, each checked against dagster-k8s' schema when
dagster-k8s is installed (a misspelled key is an error here, not a pod that ignores it)."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from trademl.config import CONFIG_DIR

#: The tag dagster-k8s reads a step's pod settings from.
K8S_TAG = "dagster-k8s/config"
#: The keys dagster-k8s accepts under that tag (`UserDefinedDagsterK8sConfig`).
STEP_KEYS = frozenset(
    {
        "container_config",
        "pod_template_spec_metadata",
        "pod_spec_config",
        "job_config",
        "job_metadata",
        "job_spec_config",
        "merge_behavior",
    }
)


@cache
def k8s_settings() -> dict[str, Any]:
    """`configs/k8s.yaml` as a mapping (read once)."""
    path = CONFIG_DIR / "k8s.yaml"
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or set(data) != {"executor", "gpu_step"}:
        raise ValueError(f"{path}: expected exactly the keys executor and gpu_step")
    return data


def validate_step_config(cfg: dict[str, Any], where: str, *, schema: bool = True) -> dict[str, Any]:
    """`cfg` as dagster-k8s reads a step's pod settings; raises naming the bad key.

    schema : also parse it with dagster-k8s (where installed). Off where the definitions
        load outside Kubernetes: importing dagster-k8s (and the kubernetes client) costs
        every CLI start ≈ 0.8 s; the prod executor checks the same settings in full.
    """
    unknown = set(cfg) - STEP_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected {sorted(STEP_KEYS)}")
    if not schema:
        return cfg
    try:
        from dagster_k8s.job import UserDefinedDagsterK8sConfig
    except ImportError:  # the core install: checked where dagster-k8s is (prod, the tests)
        return cfg
    try:
        UserDefinedDagsterK8sConfig.from_dict(cfg)
    except Exception as exc:
        raise ValueError(f"{where}: {exc}") from exc
    return cfg


def validate_executor_config(cfg: dict[str, Any], where: str) -> dict[str, Any]:
    """`cfg` checked against the unconfigured `k8s_job_executor`'s schema."""
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    result = process_config(k8s_job_executor.config_schema.config_type, cfg)
    if not result.success:
        raise ValueError(f"{where}: " + "; ".join(e.message for e in result.errors or []))
    steps = {"step_k8s_config": cfg.get("step_k8s_config")}
    steps |= {f"per_step_k8s_config.{k}": v for k, v in cfg.get("per_step_k8s_config", {}).items()}
    for key, step in steps.items():
        if step is not None:
            validate_step_config(step, f"{where} {key}")
    return cfg


def gpu_step_tags() -> dict[str, Any]:
    """Op tags of a step in the `gpu` pool: its pod asks for one GPU on a GPU node."""
    cfg = k8s_settings()["gpu_step"]
    return {K8S_TAG: validate_step_config(cfg, "configs/k8s.yaml gpu_step", schema=False)}
