"""Device choice shared by training, scoring and the backbone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = torch.device(device)
    if d.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
    return d


def lease_gpu(folder: str | os.PathLike[str], count: int) -> tuple[int, IO[str]]:
    """One GPU per worker process on a multi-GPU host: the first of `count` devices whose lock
    file no other process holds. The lock is an flock on an open file, so the kernel releases it
    when the process ends, killed or not: no stale leases. Waits while every device is leased
    (the `gpu` pool, sized to the GPUs, normally prevents that)."""
    import fcntl
    import time

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    while True:
        for i in range(count):
            handle = open(root / f"gpu-{i}.lock", "w")  # noqa: SIM115  (held for the process's life)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return i, handle
        time.sleep(0.5)
