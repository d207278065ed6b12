"""The Dagster instance config, built here for every place silva runs: SQLite under DAGSTER_HOME
(the demo, `silva-run`, `silva-ui`), a local PostgreSQL (`silva-ui --postgres`) and a Kubernetes
cluster (`deploy/dagster.yaml`, which a test keeps equal to `kubernetes_instance()`).

Run monitoring marks a launched run whose process died as failed and frees its pool slots (CLI
runs are reaped by the next run: `dead_runs`). Every pool holds one step at a time until told
otherwise (`gpu`: one slot per GPU, `ensure_gpu_pool`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from silva_model.atomic import atomic_write_text

_QUEUED = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}


def _common(start_timeout: int, poll: int, runs: int | None = None, **monitoring: Any) -> dict[str, Any]:
    concurrency: dict[str, Any] = {"pools": {"default_limit": 1}}
    if runs is not None:
        concurrency = {"runs": {"max_concurrent_runs": runs}, **concurrency}
    return {
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": start_timeout,
            **monitoring,
            "poll_interval_seconds": poll,
            "free_slots_after_run_end_seconds": poll,
        },
        "concurrency": concurrency,
        "telemetry": {"enabled": False},
    }


def sqlite_instance() -> dict[str, Any]:
    """Dagster's default storage (SQLite files under DAGSTER_HOME), runs in their own process."""
    return _common(start_timeout=180, poll=30)


def postgres_instance(postgres_url: str, max_concurrent_runs: int = 2) -> dict[str, Any]:
    """Run, event log and schedule storage in PostgreSQL; runs queue and start as their own
    processes, at most `max_concurrent_runs` at once."""
    return {
        "storage": {"postgres": {"postgres_url": postgres_url}},
        "run_coordinator": _QUEUED,
        "run_launcher": {"module": "dagster.core.launcher", "class": "DefaultRunLauncher"},
        **_common(start_timeout=180, poll=30, runs=max_concurrent_runs),
    }


def kubernetes_instance() -> dict[str, Any]:
    """The cluster's instance: managed PostgreSQL from the pods' environment, one Kubernetes Job
    per run with one GPU, at most 16 runs at once. deploy/dagster.yaml is this, with comments."""
    pg = {
        "hostname": {"env": "DAGSTER_PG_HOST"},
        "username": {"env": "DAGSTER_PG_USER"},
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"},
        "port": 5432,
    }
    launcher = {
        "job_namespace": "silva",
        "instance_config_map": "silva-dagster-instance",
        "service_account_name": "silva-runs",
        "image_pull_policy": "IfNotPresent",
        "load_incluster_config": True,
        "env_secrets": ["silva-postgres", "silva-hub"],
        "env_vars": [
            "SILVA_HOME=/data/silva",
            "MLFLOW_TRACKING_URI=http://mlflow.silva.svc:5000",
            "HF_HOME=/data/hf",
        ],
        "volume_mounts": [{"name": "silva-data", "mountPath": "/data"}],
        "volumes": [{"name": "silva-data", "persistentVolumeClaim": {"claimName": "silva-data"}}],
        "run_k8s_config": {
            "container_config": {
                "resources": {
                    "limits": {"nvidia.com/gpu": 1, "memory": "24Gi"},
                    "requests": {"cpu": "16", "memory": "16Gi"},
                }
            }
        },
    }
    return {
        "storage": {"postgres": {"postgres_db": pg}},
        "run_coordinator": _QUEUED,
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        **_common(start_timeout=600, poll=60, runs=16, max_resume_run_attempts=0),
    }


def write_instance_yaml(home: str | Path, config: dict[str, Any]) -> Path:
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))
    return path


def ensure_instance(home: Path) -> Path:
    """A Dagster instance at `home`, and DAGSTER_HOME pointing there for this process and what
    it starts: a SQLite instance config is written the first time; one the person wrote is kept."""
    os.environ["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").exists():
        write_instance_yaml(home, sqlite_instance())
    return home


def size_gpu_pool(instance, gpus: int) -> None:
    """One `gpu` slot per GPU: that many embedding steps run at once, one per device."""
    instance.event_log_storage.set_concurrency_slots("gpu", max(1, gpus))


def ensure_gpu_pool(instance) -> int:
    """Size the `gpu` pool to this host's GPUs, unless a limit was set for it already (one set
    with `dagster instance concurrency set gpu N` is kept). Returns the pool's slots."""
    info = instance.event_log_storage.get_concurrency_info("gpu")
    if not info.using_default_limit:
        return info.slot_count
    import torch

    gpus = max(1, torch.cuda.device_count())
    size_gpu_pool(instance, gpus)
    return gpus
