"""The one data root: every file silva writes (assets, embedding cache, releases, ratings log,
demo data, MLflow files, local services) lives under `Home.root`, so one setting moves it all.

`SILVA_HOME` names it, else the project-local `.data`. It is read here and nowhere else, by the
commands a person runs (and where Dagster loads the Definitions), and handed on from there.
Dagster's own instance lives in the data root's `dagster/` too, unless DAGSTER_HOME says otherwise.

The demo has a workspace of its own (`SILVA_DEMO_HOME`, else `.demo`: its data root and its
Dagster instance), so nothing the demo writes is ever read by the person's runs, and the other way
round. `use_demo_workspace()` points this process at it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOME_VARIABLE = "SILVA_HOME"
DEMO_VARIABLE = "SILVA_DEMO_HOME"


@dataclass(frozen=True)
class Home:
    """Where each kind of file goes. Folders are made on first use."""

    root: Path

    def _dir(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def asset(self, *key: str) -> Path:
        """Where the pipeline's IO manager stores an asset's values (one file per run)."""
        return self._dir("assets").joinpath(*key)

    @property
    def embeddings(self) -> Path:
        """The content-addressed embedding cache, one folder per backbone and preprocessing."""
        return self._dir("embeddings")

    @property
    def releases(self) -> Path:
        return self._dir("releases")

    def latest(self, name: str) -> Path:
        """The fixed place where the pipeline publishes the newest value of a table the person's
        side reads (`manifest`, `library_scores`, `rating_queue`), whichever run made it."""
        return self._dir("latest") / f"{name}.parquet"

    def published(self, name: str, remedy: str) -> Path:
        """`latest(name)`, which the person's side needs: when the pipeline has not published it
        yet, a FileNotFoundError that says so and what to do (`remedy`)."""
        path = self.latest(name)
        if not path.exists():
            raise FileNotFoundError(f"no {name.replace('_', ' ')} in the workspace at {self.root}: {remedy}")
        return path

    @property
    def thumbnails(self) -> Path:
        """Small JPEGs of library images, content-addressed (the gallery's cache)."""
        return self._dir("thumbnails")

    @property
    def ratings_log(self) -> Path:
        return self.root / "ratings-log.sqlite"

    @property
    def demo(self) -> Path:
        """The synthetic demo's embeddings and library."""
        return self._dir("demo")

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self._dir("mlartifacts")

    @property
    def mlflow_server_artifacts(self) -> Path:
        return self._dir("mlflow-server-artifacts")

    @property
    def postgres(self) -> Path:
        """pgserver's cluster when the pipeline runs on a local PostgreSQL."""
        return self.root / "postgres"

    @property
    def gpu_leases(self) -> Path:
        return self._dir("gpu-leases")

    @property
    def dagster(self) -> Path:
        """Where the workspace's Dagster instance lives unless DAGSTER_HOME says otherwise."""
        return self.root / "dagster"


def silva_home() -> Home:
    root = Path(os.environ.get(HOME_VARIABLE) or PROJECT_ROOT / ".data").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return Home(root)


def dagster_home(home: Home | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The Dagster instance silva's commands use: DAGSTER_HOME (of `env`, else this process's
    environment), else the workspace's own."""
    where = (os.environ if env is None else env).get("DAGSTER_HOME")
    return Path(where).expanduser().resolve() if where else (home or silva_home()).dagster


def demo_root(env: Mapping[str, str] | None = None) -> Path:
    """The demo's workspace: `data/` (its data root) and `dagster/` (its Dagster instance)."""
    where = (os.environ if env is None else env).get(DEMO_VARIABLE)
    return Path(where or PROJECT_ROOT / ".demo").expanduser().resolve()


def use_demo_workspace() -> Path:
    """Point this process (and what it starts) at the demo's workspace instead of the person's:
    its data root, its Dagster instance and its MLflow store (the SQLite file in its data root)."""
    root = demo_root()
    os.environ[HOME_VARIABLE] = str(root / "data")
    os.environ["DAGSTER_HOME"] = str(root / "dagster")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return root
