"""One release at a time, all or nothing."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from silva_pipeline.release_transaction import JOURNAL, ReleaseTransaction
from silva_pipeline.tracking import REGISTERED_MODEL
from silva_pipeline.tracking.registry import champion

LOG = logging.getLogger("test")


@pytest.fixture
def client(tmp_path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model(REGISTERED_MODEL)
    v1 = client.create_model_version(REGISTERED_MODEL, source=str(tmp_path / "v1"))
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", v1.version)
    return client


def _in_a_process_killed(tmp_path: Path, body: str) -> None:
    """Run `body` with `tx` (a begun transaction) and `client` in a process that SIGKILLs itself."""
    script = textwrap.dedent(
        f"""
        import logging, os, signal
        from pathlib import Path
        import mlflow
        from silva_pipeline.release_transaction import ReleaseTransaction
        from silva_pipeline.tracking import REGISTERED_MODEL
        client = mlflow.MlflowClient("sqlite:///{tmp_path / "mlflow.db"}")
        releases = Path("{tmp_path / "releases"}")
        with ReleaseTransaction(releases, client, logging.getLogger()) as tx:
            staging = tx.begin(releases / "20261202T000000Z-killed", "killedrun")
            staging.mkdir()
            (staging / "model.safetensors").write_bytes(b"half written")
        """
    )
    script += textwrap.indent(textwrap.dedent(body), " " * 4) + "    os.kill(os.getpid(), signal.SIGKILL)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-3000:]


@pytest.mark.parametrize("registered", [False, True])
def test_the_next_release_undoes_one_killed_before_or_after_it_registered(tmp_path, client, registered):
    body = """
    v = client.create_model_version(REGISTERED_MODEL, source=str(staging))
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", v.version)
    """
    _in_a_process_killed(tmp_path, body if registered else "")
    releases = tmp_path / "releases"
    assert (releases / JOURNAL).exists()
    assert champion(client) == ("2" if registered else "1")
    with ReleaseTransaction(releases, client, LOG):
        assert champion(client) == "1"
        assert [str(v.version) for v in client.search_model_versions(f"name='{REGISTERED_MODEL}'")] == ["1"]
        assert not (releases / JOURNAL).exists()
        assert [p.name for p in releases.iterdir()] == [".lock"]  # the half-written staging is gone


def test_a_release_moved_into_place_before_the_kill_stays_in_force(tmp_path, client):
    body = """
    v = client.create_model_version(REGISTERED_MODEL, source=str(staging))
    client.set_registered_model_alias(REGISTERED_MODEL, "champion", v.version)
    staging.replace(releases / "20261202T000000Z-killed")
    """
    _in_a_process_killed(tmp_path, body)
    with ReleaseTransaction(tmp_path / "releases", client, LOG):
        assert champion(client) == "2"
    assert (tmp_path / "releases" / "20261202T000000Z-killed" / "model.safetensors").exists()


def test_a_failed_release_is_undone_at_once(tmp_path, client):
    releases = tmp_path / "releases"
    with pytest.raises(RuntimeError), ReleaseTransaction(releases, client, LOG) as tx:
        staging = tx.begin(releases / "20261202T000000Z-failed", "failedrun")
        staging.mkdir()
        v = client.create_model_version(REGISTERED_MODEL, source=str(staging))
        client.set_registered_model_alias(REGISTERED_MODEL, "champion", v.version)
        raise RuntimeError("upload failed")
    assert champion(client) == "1"
    assert [p.name for p in releases.iterdir()] == [".lock"]


def test_the_lock_of_a_killed_release_is_dropped_with_its_process(tmp_path, client):
    releases = tmp_path / "releases"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import logging, time\n"
            "from silva_pipeline.release_transaction import ReleaseTransaction\n"
            # no journal to recover: the holder never needs the registry
            f"with ReleaseTransaction({str(releases)!r}, None, logging.getLogger()):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    entered = threading.Event()

    def second() -> None:
        with ReleaseTransaction(releases, client, LOG):
            entered.set()

    waiter = threading.Thread(target=second)
    waiter.start()
    assert not entered.wait(1.0)  # the holder still runs: the second release waits
    holder.kill()
    waiter.join(timeout=120)
    assert entered.is_set()
