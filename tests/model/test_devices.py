"""Picking the device."""

from __future__ import annotations

import subprocess
import sys

from silva_model.devices import lease_gpu

HOLDER = """
import sys, time
from silva_model.devices import lease_gpu
index, _ = lease_gpu(sys.argv[1], 2)
print(index, flush=True)
time.sleep(60)
"""


def test_workers_lease_different_gpus_and_a_dead_worker_frees_its_own(tmp_path):
    first = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "0"
    second = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert second.stdout.readline().strip() == "1"  # device 0 is taken
    first.kill()  # a worker killed mid-run: the kernel drops its lock
    first.wait()
    index, handle = lease_gpu(tmp_path, 2)
    assert index == 0
    second.kill()
    second.wait()
    handle.close()
