from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
from pydantic import Field

from silva_model.paths import data_dir
from silva_pipeline.resources.env import env_field

HEALTH_TIMEOUT_S = 5.0


class MlflowTracking(dg.ConfigurableResource):
    """MLflow as a Pythonic resource (dagster-mlflow is still a legacy resource). The embedded
    default is a SQLite backend with artifacts pinned under the project's data folder."""

    tracking_uri: str = env_field("MLFLOW_TRACKING_URI", "", "empty: sqlite:///<data>/mlflow.db")
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
        return self.tracking_uri or f"sqlite:///{data_dir() / 'mlflow.db'}"

    def is_server(self) -> bool:
        return self.uri().startswith(("http://", "https://"))

    def client(self):
        import mlflow

        mlflow.set_tracking_uri(self.uri())
        return mlflow.MlflowClient(self.uri())

    def experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return exp.experiment_id
        # A tracking server stores artifacts itself (`--artifacts-destination`), so a run pod on
        # another machine needs no path of ours; only the local backend is pinned to <data>.
        local = None if self.is_server() else (data_dir() / "mlartifacts").as_uri()
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

    def run_link(self, run_id: str) -> str:
        if self.is_server():
            return f"{self.uri().rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"
        db = self.uri().removeprefix("sqlite:///")
        return f"mlflow ui --backend-store-uri sqlite:///{Path(db)}  (run {run_id})"
