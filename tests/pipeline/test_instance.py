"""The Dagster instance config for SQLite, PostgreSQL and the cluster, and the gpu pool."""

from __future__ import annotations

import re
import shutil

import dagster as dg
import pytest
import yaml
from helpers import ROOT

DEPLOY = ROOT / "deploy"


ENV = {
    "DAGSTER_PG_HOST": "pg",
    "DAGSTER_PG_USER": "u",
    "DAGSTER_PG_PASSWORD": "p",
    "DAGSTER_PG_DB": "dagster",
}


def _key(k: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower()


def _snake(d):
    """The chart passes camelCase values to the launcher's snake_case config."""
    if isinstance(d, dict):
        return {_key(k): _snake(v) for k, v in d.items()}
    return [_snake(v) for v in d] if isinstance(d, list) else d


def _process(config_type, value):
    from dagster._config import process_config

    result = process_config(config_type, value)
    assert result.success, [e.message for e in result.errors]
    return result.value


def test_the_cluster_instance_config_validates(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # the whole file, against the instance schema
    assert config["run_launcher"]["class"] == "K8sRunLauncher"
    launcher = _process(K8sRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launcher["run_k8s_config"]["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    storage = _process(PostgresRunStorage.config_type(), config["storage"]["postgres"])
    assert storage["postgres_db"]["hostname"] == "pg"


def test_the_helm_values_give_the_launcher_a_valid_config():
    from dagster_k8s import K8sRunLauncher

    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    chart = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = _snake({k: v for k, v in chart.items() if k not in ("runK8sConfig", "envSecrets")})
    launcher["env_secrets"] = [s["name"] for s in chart["envSecrets"]]
    launcher["run_k8s_config"] = {_key(k): v for k, v in chart["runK8sConfig"].items()}
    launcher["instance_config_map"] = "silva-dagster-instance"  # the chart renders this ConfigMap
    cfg = _process(K8sRunLauncher.config_type(), launcher)
    assert cfg["run_k8s_config"]["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == 1
    user = values["dagster-user-deployments"]["deployments"][0]
    assert user["dagsterApiGrpcArgs"] == ["-m", "silva_pipeline.definitions"]


@pytest.mark.parametrize("option", ["--backend-store-uri", "--artifacts-destination", "--host"])
def test_the_mlflow_server_command_names_its_stores(option):
    from click.testing import CliRunner
    from mlflow.cli import server

    script = (DEPLOY / "mlflow-server.sh").read_text()
    assert option in script
    assert CliRunner().invoke(server, ["--help"]).output.count(option) >= 1  # a real option of MLflow's


def test_the_gpu_pool_is_sized_to_the_hosts_gpus_unless_set_by_hand(tmp_path, monkeypatch):
    import torch

    from silva_pipeline.instance import ensure_gpu_pool, ensure_instance, size_gpu_pool

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    ensure_instance(tmp_path / "home")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with dg.DagsterInstance.get() as instance:
        assert ensure_gpu_pool(instance) == 4
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 4
        size_gpu_pool(instance, 2)  # what `dagster instance concurrency set gpu 2` does
        assert ensure_gpu_pool(instance) == 2
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2


def test_the_project_instance_monitors_runs_and_limits_pools(tmp_path, monkeypatch):
    from silva_pipeline.instance import ensure_instance

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    ensure_instance(tmp_path / "home")
    with dg.DagsterInstance.get() as instance:
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
