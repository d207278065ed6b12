"""One silva-run per workspace: the second is refused by name, and a killed holder frees it."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from silva_pipeline.workspace_lock import WorkspaceBusy, workspace_lock

HOLD = """
import sys
from pathlib import Path
from silva_pipeline.workspace_lock import workspace_lock
with workspace_lock(Path(sys.argv[1]), "silva-run"):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_second_run_is_refused_naming_the_first_and_a_killed_one_frees_the_workspace(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"silva-run \(pid {holder.pid}, started .*\) is running"
        with pytest.raises(WorkspaceBusy, match=busy), workspace_lock(tmp_path, "silva-demo"):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with workspace_lock(tmp_path, "silva-run"):  # the kernel dropped the killed holder's lock
        pass
