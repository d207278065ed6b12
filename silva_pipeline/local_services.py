"""Local services for `silva-ui --postgres` and the scale tests: PostgreSQL, an MLflow tracking
server on it, and the supervisor that runs a command with both up and stops them after.

PostgreSQL comes from the `pgserver` wheel (PostgreSQL 16 shipped inside a Python package): it
installs with `uv sync` like every other dependency, starts as a plain user process on a Unix
socket, and needs neither root nor apt. That is why it is used here rather than Debian's
`postgresql`, which needs root to install and a system service to run. On a cluster the same
`dagster.yaml` shape points at a managed PostgreSQL instead (see deploy/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from silva_app.home import silva_home
from silva_pipeline.instance import ensure_gpu_pool, postgres_instance, write_instance_yaml
from silva_pipeline.stopping import finishing, stop_group, supervise

DATABASES = ("dagster", "mlflow")
# MLflow 3's server starts a job runner and eight huey consumers for its GenAI jobs (scorers,
# trace rollups), which silva never submits: 9 more Python processes, about 1.6 GB, at each start.
NO_SERVER_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_env() -> dict[str, str]:
    """The environment of an MLflow server (`mlflow server`, `mlflow ui`) started by silva: without
    MLflow's job execution, unless the person's own environment asks for it."""
    return {**NO_SERVER_JOBS, **os.environ}


@dataclass
class LocalPostgres:
    """A running pgserver and the URIs of silva's two databases on it."""

    folder: Path
    server: object  # pgserver.PostgresServer

    def uri(self, database: str) -> str:
        """SQLAlchemy URI over the server's Unix socket. The driver is named: SQLAlchemy 2.1's
        default for `postgresql://` is psycopg 3, and dagster-postgres needs psycopg2."""
        return f"postgresql+psycopg2://postgres:@/{database}?host={self.folder}"

    def stop(self) -> None:
        self.server.cleanup()


def start_postgres(folder: str | Path) -> LocalPostgres:
    """Start (or join) the PostgreSQL server whose data lives in `folder`; make silva's databases."""
    import pgserver

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(folder), cleanup_mode="stop")
    have = server.psql("SELECT datname FROM pg_database;")
    for db in DATABASES:
        if f" {db}\n" not in have and f" {db} " not in have:
            server.psql(f"CREATE DATABASE {db};")
    return LocalPostgres(folder, server)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(
    backend_uri: str, artifacts: str | Path, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on 127.0.0.1 with its runs in PostgreSQL and artifacts served by the server
    (`--artifacts-destination`); returns once /health answers."""
    port = port or free_port()
    artifacts = Path(artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            backend_uri,
            "--artifacts-destination",
            artifacts.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=mlflow_server_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", proc, 120, "mlflow server")
    except BaseException:  # Ctrl-C while it starts included: it is in a session of its own
        stop_group(proc.pid, 5)
        proc.wait()
        raise
    return proc, url


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> bytes:
    """Poll a server that `proc` is starting until `url` answers; its body. A server that exits
    first, or never answers, is an error that says so (with its output when it was captured)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            out = proc.stdout or proc.stderr
            raise RuntimeError(f"{what} exited with {proc.returncode}: {out.read()[-3000:] if out else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read()
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s") from None
            time.sleep(0.2)


def run_on_postgres(command: list[str], dagster_home: Path) -> int:
    """Start PostgreSQL and the MLflow server on it, point `dagster_home`'s instance at it, run
    `command` with DAGSTER_HOME and MLFLOW_TRACKING_URI set, and stop both servers afterwards.
    Run it under `until_stopped`, which makes Ctrl+C or SIGTERM at any point a KeyboardInterrupt
    (130) and lets `finishing` hold a repeated one until both are stopped."""
    import dagster as dg

    pg = mlflow = None
    try:
        with finishing():  # a stop while PostgreSQL starts waits for the start, then stops it below
            pg = start_postgres(silva_home().postgres)
        write_instance_yaml(dagster_home, postgres_instance(pg.uri("dagster")))
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            slots = ensure_gpu_pool(instance)
        mlflow, url = start_mlflow_server(pg.uri("mlflow"), silva_home().mlflow_server_artifacts)
        said = f"PostgreSQL: {pg.folder} (databases dagster, mlflow); MLflow server: {url}"
        print(f"{said}; gpu pool: {slots}", flush=True)
        env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "MLFLOW_TRACKING_URI": url}
        return supervise(command, env)
    finally:
        with finishing():
            if mlflow is not None:
                stop_group(mlflow.pid, 30)
                mlflow.wait()
            if pg is not None:
                pg.stop()
