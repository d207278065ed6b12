"""A real browser for page tests: Debian's Chromium driven by playwright (playwright's own
browser download cannot reach the network here). `.ci/run` installs Chromium when it is missing;
in CI a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from silva_pipeline.local_services import free_port, wait_for_http

CHROMIUM = os.environ.get("SILVA_CHROMIUM", "/usr/bin/chromium")


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs it (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SILVA_CHROMIUM)")


def start_page(queue: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`silva rate` as a user starts it; returns once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("silva")),
            "rate",
            "--queue",
            str(queue),
            "--log",
            str(log),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, proc, 60, "silva rate")
    return proc, url
