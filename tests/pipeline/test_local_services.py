"""The servers `silva-ui --postgres` starts (PostgreSQL, an MLflow server; `silva-mlflow`'s too)."""

from __future__ import annotations

import signal

from helpers import descendants, mlflow_job_runners, stop_process_group

from silva_pipeline.local_services import start_mlflow_server
from silva_pipeline.stopping import until_stopped


def test_an_mlflow_server_starts_without_mlflows_job_runners(tmp_path):
    """MLflow 3's server started a job runner and eight huey consumers for GenAI jobs silva never
    submits: 9 more Python processes of about 180 MB each; this test took 58 s on 2 cores with
    them, 17 s without."""
    proc, url = start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    try:
        assert any("uvicorn" in c for c in descendants(proc.pid))  # its web server
        assert not mlflow_job_runners(proc.pid)
    finally:
        stop_process_group(proc)


def test_a_stop_while_postgresql_starts_stops_it_too(tmp_path, monkeypatch):
    """Breaker: SIGTERM to `silva-ui --postgres` while PostgreSQL started left it running (the
    server up, its start not yet handed back to be stopped)."""
    import silva_pipeline.local_services as services
    from silva_app.home import silva_home

    start = services.start_postgres

    def stopped_while_starting(folder):
        pg = start(folder)
        signal.raise_signal(signal.SIGTERM)  # the stop arrives before the start has returned
        return pg

    monkeypatch.setattr(services, "start_postgres", stopped_while_starting)
    assert until_stopped(lambda: services.run_on_postgres(["true"], tmp_path / "dagster")) == 130
    assert not (silva_home().postgres / "postmaster.pid").exists()  # PostgreSQL stopped
