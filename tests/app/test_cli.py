"""`silva rate` refuses at start what it cannot serve, naming the file: one line, exit code 2."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from browser_support import write_queue
from helpers import write_images

from silva_model.provenance import sha256_file

SILVA = str(Path(sys.executable).with_name("silva"))


def _queue(tmp_path: Path) -> Path:
    (image,) = write_images(tmp_path / "lib", 1)
    row = {"path": str(image), "kind": "new", "reason": "r", "image_sha256": sha256_file(image)}
    return write_queue(tmp_path / "queue.parquet", [row])


def _refusal(*args: str, wrap: list[str] | None = None) -> str:
    """What `silva rate` says on stderr when it refuses to start. Its port is taken, so a server
    that started anyway fails at once (exit code 1) instead of serving."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cmd = [SILVA, "rate", "--port", str(taken.getsockname()[1]), *args]
        out = subprocess.run((wrap or []) + cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_a_missing_queue_or_an_unwritable_log_is_refused_by_name(tmp_path):
    log = ["--log", str(tmp_path / "log.sqlite")]
    assert _refusal("--queue", "/nope.parquet", *log) == "silva: rating queue not found: /nope.parquet"
    assert not (tmp_path / "log.sqlite").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _refusal("--queue", str(_queue(tmp_path)), "--log", str(blocker / "log.sqlite"))
    assert line.startswith(f"silva: the ratings log {blocker / 'log.sqlite'} cannot be written: ")


def test_a_ratings_log_in_a_read_only_folder_is_refused_at_start(tmp_path):
    queue = _queue(tmp_path)
    folder = tmp_path / "read-only"
    folder.mkdir()
    log = folder / "ratings-log.sqlite"
    if os.geteuid() != 0:
        folder.chmod(0o555)
        wrap = None
    else:  # root writes through file modes: a read-only bind mount in a namespace of its own
        if not shutil.which("unshare") or subprocess.run(["unshare", "-Urm", "true"]).returncode:
            pytest.skip("running as root without user namespaces: no folder is read-only to root")
        mount = f'mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && exec "$@"'
        wrap = ["unshare", "-Urm", "sh", "-c", mount, "sh"]
    try:
        line = _refusal("--queue", str(queue), "--log", str(log), wrap=wrap)
    finally:
        folder.chmod(0o755)
    assert line.startswith(f"silva: the ratings log {log} cannot be written: ")
    assert "unable to open database file" in line or "readonly" in line
