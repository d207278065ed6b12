"""A real browser for page tests: Debian's Chromium driven by playwright (playwright's own
browser download cannot reach the network here). `.ci/run` installs Chromium when it is missing;
in CI a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silva_pipeline.local_services import free_port, wait_for_http

CHROMIUM = os.environ.get("SILVA_CHROMIUM", "/usr/bin/chromium")

# Nothing on the page is cut or off screen: every box of the bar, the info and the key hint lies
# inside the window, and no box hides part of what it holds.
NOTHING_CUT = """() => [...document.querySelectorAll('#bar, #bar *, #info, #help')].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.left < 0 || r.right > innerWidth + 0.5 || r.bottom > innerHeight + 0.5
        || e.scrollWidth > e.clientWidth + 1;
}).map((e) => e.id || e.className || e.tagName)"""


def chromium() -> str:
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"Chromium is missing at {CHROMIUM}: .ci/run installs it (apt-get install chromium)")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SILVA_CHROMIUM)")


def start_silva(*args: str) -> tuple[subprocess.Popen, str]:
    """A `silva` page command (`rate`, `gallery`) as a person starts it, on a free port; returns
    once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("silva")), *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/"
    wait_for_http(url, proc, 60, f"silva {args[0]}")
    return proc, url


def start_page(queue: Path, log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """`silva rate` as a user starts it; returns once it answers."""
    return start_silva("rate", "--queue", str(queue), "--log", str(log), *extra)


def write_queue(path: Path, rows: list[dict]) -> Path:
    """A rating queue as the pipeline writes it (`rating_sd` and `why` only where a row has one)."""
    cols = ["image_sha256", "path", "post_id", "kind", "reason", "expected_rating", "given_rating"]
    fields = [
        ("image_sha256", pa.string()),
        ("path", pa.string()),
        ("post_id", pa.int64()),
        ("kind", pa.string()),
        ("reason", pa.string()),
        ("expected_rating", pa.float32()),
        ("given_rating", pa.int8()),
    ]
    for optional, kind in (("rating_sd", pa.float32()), ("why", pa.string())):
        if any(optional in r for r in rows):
            cols.append(optional)
            fields.append((optional, kind))
    table = pa.table(
        {c: [r.get(c) for r in rows] for c in cols},
        schema=pa.schema(fields),
    )
    pq.write_table(table, path)
    return path


def rate_by_keys(browser, url: str, keys: str = "54321") -> None:
    """Open the rating page at `url` and rate one image per key, waiting until each is counted."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("document.getElementById('img').naturalWidth > 0")
    for key in keys:
        page.keyboard.press(key)
    page.wait_for_function(f"document.getElementById('rated').textContent === '{len(keys)}'")
