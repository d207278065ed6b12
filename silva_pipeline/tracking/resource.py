"""MLflow as a Pythonic resource: where runs are tracked, logging into the active run, and the
released head's registration."""

from __future__ import annotations

import contextlib
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import dagster as dg
import numpy as np
from pydantic import Field

from silva_pipeline.resources.workspace import InWorkspace
from silva_pipeline.tracking.registry import REGISTERED_MODEL
from silva_pipeline.tracking.store import StoreError, open_store

HEALTH_TIMEOUT_S = 5.0


class MlflowTracking(InWorkspace):
    """MLflow as a Pythonic resource (dagster-mlflow is still a legacy resource). The embedded
    default is a SQLite backend with artifacts pinned under the workspace's data root."""

    SETTING: ClassVar[dict[str, str]] = {"tracking_uri": "tracking_uri"}
    tracking_uri: str = Field(
        default="", description="a tracking server; empty: as set up, else <data>/mlflow.db"
    )
    experiment: str = "silva"
    artifact_location: str = Field(
        default="",
        description="empty: <data>/mlartifacts with the local backend, the server's own store with a "
        "tracking server (new experiments only)",
    )

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Fail in seconds, naming the URI, when a tracking server does not answer: MLflow's own
        client would retry a refused port for minutes before it gives up."""
        uri = self.uri()
        if not self.is_server():
            try:
                open_store(uri)
            except StoreError as e:
                raise dg.Failure(str(e)) from e
            return
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as r:
                r.read()
        except (OSError, ValueError) as e:
            raise dg.Failure(
                f"the MLflow tracking server at {uri} does not answer ({e}); start it, or unset "
                "MLFLOW_TRACKING_URI to track in the local SQLite file"
            ) from e

    def uri(self) -> str:
        return str(self.setting("tracking_uri")[0]) or f"sqlite:///{self.workspace.home().mlflow_db}"

    def is_server(self) -> bool:
        return self.uri().startswith(("http://", "https://"))

    def client(self):
        import mlflow

        open_store(self.uri())
        mlflow.set_tracking_uri(self.uri())
        return mlflow.MlflowClient(self.uri())

    def experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        # A tracking server stores artifacts itself (`--artifacts-destination`), so a run pod on
        # another machine needs no path of ours; only the local backend is pinned to <data>.
        local = None if self.is_server() else self.workspace.home().mlflow_artifacts.as_uri()
        return client.create_experiment(self.experiment, artifact_location=self.artifact_location or local)

    @contextlib.contextmanager
    def run(
        self, run_name: str | None = None, run_id: str | None = None, tags: dict[str, str] | None = None
    ) -> Iterator[object]:
        """Start (or resume, with run_id) an MLflow run and always end it, even on failure."""
        import mlflow

        exp = self.experiment_id()
        with mlflow.start_run(
            run_id=run_id, run_name=run_name, experiment_id=None if run_id else exp, tags=tags
        ) as run:
            yield run

    def log_params(self, params: dict[str, object]) -> None:
        import mlflow

        mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=step)

    def log_files(self, files: dict[str, bytes], artifact_path: str) -> None:
        """Files given by name and content, as artifacts of the active run."""
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            self.log_folder(tmp, artifact_path)

    def log_folder(self, folder: str | Path, artifact_path: str) -> None:
        import mlflow

        mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def log_release_model(self, release: Path, embed_dim: int) -> str:
        """The release folder as a pyfunc model of the active run, registered as a new version of
        REGISTERED_MODEL through the client (which, unlike `registered_model_name=`, prints
        nothing); returns the version."""
        import mlflow
        from mlflow.exceptions import MlflowException

        from silva_pipeline.tracking.pyfunc_model import code_paths, model_code, pip_requirements, signature

        info = mlflow.pyfunc.log_model(
            name="silva_head",
            python_model=model_code(),
            artifacts={"release": str(release)},
            signature=signature(embed_dim),
            input_example=np.zeros((1, embed_dim), np.float32),
            pip_requirements=pip_requirements(),
            code_paths=code_paths(),
        )
        client = self.client()
        try:
            client.create_registered_model(REGISTERED_MODEL)
        except MlflowException as e:
            if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        run_id = mlflow.active_run().info.run_id
        version = client.create_model_version(
            REGISTERED_MODEL, source=info.model_uri, run_id=run_id, model_id=info.model_id
        )
        return str(version.version)

    def crown(self, client, version: str, description: str, tags: dict[str, str]) -> None:
        """Describe and tag a registered version and point `champion` at it."""
        client.update_model_version(REGISTERED_MODEL, version, description=description)
        for key, value in tags.items():
            client.set_model_version_tag(REGISTERED_MODEL, version, key, value)
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", version)

    def run_link(self, run_id: str) -> str:
        if self.is_server():
            return f"{self.uri().rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"
        db = self.uri().removeprefix("sqlite:///")
        return f"mlflow ui --backend-store-uri sqlite:///{Path(db)}  (run {run_id})"
