"""The Kubernetes deployment's executor and GPU-step settings (`configs/k8s.yaml`) are what
dagster-k8s accepts — a misspelled key fails here — and every step in the `gpu` pool asks
its pod for a GPU on a GPU node, while no other step does."""

import json

import dagster as dg
import pytest

from trademl_assets.k8s import (
    K8S_TAG,
    k8s_settings,
    validate_executor_config,
    validate_step_config,
)
from trademl_jobs.definitions import ASSETS, executor_for


def test_the_repository_executor_config_is_valid_and_a_misspelling_is_not():
    cfg = k8s_settings()["executor"]
    assert validate_executor_config(cfg, "k8s.yaml") == cfg
    with pytest.raises(ValueError, match="job_namespce"):
        validate_executor_config({**cfg, "job_namespce": "x"}, "k8s.yaml")
    bad_step = {**cfg, "step_k8s_config": {"container_config": {"resourcez": {}}}}
    with pytest.raises(ValueError):
        validate_executor_config(bad_step, "k8s.yaml")


def test_the_gpu_step_config_is_valid_and_misspellings_at_any_depth_fail():
    step = k8s_settings()["gpu_step"]
    assert validate_step_config(step, "gpu_step") == step
    with pytest.raises(ValueError, match="containr_config"):
        validate_step_config({"containr_config": {}}, "gpu_step")
    with pytest.raises(ValueError, match="node_selectr"):
        validate_step_config({"pod_spec_config": {"node_selectr": {"a": "b"}}}, "gpu_step")


def test_gpu_steps_ask_for_a_gpu_and_no_other_step_does():
    gpu, other = [], []
    for a in ASSETS:
        if not isinstance(a, dg.AssetsDefinition) or a.node_def is None:
            continue
        (gpu if a.op.pool == "gpu" else other).append(a)
    assert gpu, "some trainings run in the gpu pool"
    for a in gpu:
        tag = json.loads(a.op.tags[K8S_TAG])  # Dagster stores a mapping tag as JSON
        assert tag["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert tag["pod_spec_config"]["node_selector"]
    assert not [a.op.name for a in other if K8S_TAG in (a.op.tags or {})]


def test_the_prod_executor_is_the_k8s_executor_with_the_repository_config():
    executor = executor_for("prod")
    assert executor.name == "k8s"
    resolved = executor.config_schema.resolve_config({})
    assert resolved.success, resolved.errors
    assert resolved.value["config"]["job_namespace"] == k8s_settings()["executor"]["job_namespace"]
