"""The MLflow server silva starts for `silva-ui --postgres` (and `silva-mlflow`'s UI)."""

from __future__ import annotations

from helpers import descendants, stop_process_group

from silva_pipeline.local_services import start_mlflow_server


def test_an_mlflow_server_starts_without_mlflows_job_runners(tmp_path):
    """MLflow 3's server started a job runner and eight huey consumers for GenAI jobs silva never
    submits: 9 more Python processes of about 180 MB each; this test took 58 s on 2 cores with
    them, 17 s without."""
    proc, url = start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    try:
        commands = descendants(proc.pid)
        assert any("uvicorn" in c for c in commands), commands  # its web server
        assert not any("huey" in c or "_job_runner" in c for c in commands), commands
    finally:
        stop_process_group(proc)
