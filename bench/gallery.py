"""The gallery at 100 and 100,000 images, and what `silva score --explain` adds to scoring.

    uv run python -m bench gallery [--sizes 100 100000] [--rated 500 1000 4000] [--screenshot PNG]

Gallery: a library of synthetic scores over real image files (500 distinct files in 20 folders,
each row its own hash); every row's thumbnail is a real file in the workspace's cache (made once
per distinct file and hard-linked under each row's hash). `silva gallery` runs as a person
starts it; a client asks what the page asks, as a browser does (the page's JSON, then its 60
thumbnails over 6 connections): the first page, page turns, and the first page of new filters.
With Chromium, the same in a real browser (from navigation to every thumbnail of the page
decoded). The server's memory is its resident set after all of it.

Explain: 10,000 precomputed embeddings scored by `Scorer.score_embeddings` against `explain`
(which scores them in the same pass and finds their nearest rated images), for rated sets of
several sizes, a default head (1152 -> 1024 -> 512) with and without a judge inside; and what
explaining adds to the pipeline's library scoring of them (`score_library` with the ratings
against without: the out-of-domain distance and the explanation share one search of the rated
images). Medians of interleaved repeats, one run.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from bench.common import machine, table

DISTINCT_FILES = 500
FOLDERS = 20
PAGE = 60


def _illustration(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A flat-colour picture with a few shapes: something a thumbnail of can be looked at."""
    w, h = size
    top, bottom = rng.integers(30, 230, 3), rng.integers(30, 230, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    im = Image.fromarray((top * (1 - t) + bottom * t).astype(np.uint8).repeat(w, axis=1), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.integers(0, w), rng.integers(0, h)
        r = int(rng.integers(w // 12, w // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        shape((x0 - r, y0 - r, x0 + r, y0 + r), fill=colour)
    return im


def write_files(folder: Path, rng: np.random.Generator) -> list[str]:
    paths = []
    for k in range(DISTINCT_FILES):
        path = folder / f"set{k % FOLDERS:02d}" / f"art_{k:04d}.{'png' if k % 3 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = (int(rng.integers(480, 900)), int(rng.integers(480, 900)))
        _illustration(rng, size).save(path)
        paths.append(str(path))
    return paths


def synthetic_scores(n: int, files: list[str], rng: np.random.Generator) -> pa.Table:
    """A library_scores table of n rows over `files`, as the pipeline writes it (2 % rated, 1 % out
    of domain, each row's 5 nearest rated images)."""
    sha = pa.array([rng.bytes(32).hex() for _ in range(n)])  # setup only: each row its own image
    score = rng.beta(2.5, 2.5, n).astype(np.float32)
    probs = rng.dirichlet(np.ones(5), n).astype(np.float32)
    rated = rng.random(n) < 0.02
    rated[0] = True
    rating = np.where(rated, np.clip(np.rint(1 + 4 * score + rng.normal(0, 0.8, n)), 1, 5), 0).astype(np.int8)
    near = rng.choice(np.flatnonzero(rated), (n, 5))
    similarity = -np.sort(-rng.uniform(0.75, 0.97, (n, 5)).astype(np.float32), axis=1)  # nearest first
    offsets = pa.array(np.arange(0, 5 * n + 1, 5, dtype=np.int32))
    cols = {
        "image_sha256": sha,
        "path": pa.array(files).take(pa.array(np.arange(n) % len(files))),
        "post_id": pa.nulls(n, pa.int64()),
        "shard": pa.array([f"s{k // 4096}" for k in range(n)]),
        "score": pa.array(score),
        "expected_rating": pa.array(1 + 4 * score),
        **{f"p{k + 1}": pa.array(probs[:, k]) for k in range(5)},
        "uncertainty": pa.array(-(probs * np.log(probs)).sum(1)),
        "ood_distance": pa.array(rng.random(n).astype(np.float32)),
        "ood_quantile": pa.array(rng.random(n).astype(np.float32)),
        "out_of_domain": pa.array(rng.random(n) < 0.01),
        "rating": pa.array(rating, pa.int8(), mask=~rated),
        "rated": pa.array(rated),
        "neighbours": pa.ListArray.from_arrays(offsets, sha.take(pa.array(near.reshape(-1)))),
        "neighbour_similarity": pa.ListArray.from_arrays(offsets, pa.array(similarity.reshape(-1))),
        "neighbour_ratings": pa.ListArray.from_arrays(offsets, pa.array(rating[near.reshape(-1)])),
        "judge_share": pa.nulls(n, pa.float32()),
        "judge_shift": pa.nulls(n, pa.float32()),
    }
    return pa.table(cols)


def fill_thumbnails(table: pa.Table, home) -> float:
    """Every row's thumbnail as a real file in the cache: made for the distinct files, linked
    under each other row's hash. Returns the seconds the real ones took."""
    from silva_app.thumbnails import Thumbnails

    thumbs = Thumbnails(home.thumbnails)
    sha, paths = table["image_sha256"].to_pylist(), table["path"].to_pylist()
    t0 = time.perf_counter()
    for k in range(min(DISTINCT_FILES, len(sha))):
        thumbs.get(sha[k], paths[k])
    made = time.perf_counter() - t0
    for k in range(DISTINCT_FILES, len(sha)):
        target = thumbs.file(sha[k])
        target.parent.mkdir(exist_ok=True)
        os.link(thumbs.file(sha[k % DISTINCT_FILES]), target)
    return made


class Client:
    """What the page asks of the server, as a browser asks it: a page's JSON, then its
    thumbnails over 6 keep-alive connections."""

    def __init__(self, port: int) -> None:
        self.port, self._local = port, threading.local()
        self.pool = ThreadPoolExecutor(6, initializer=self._connect)
        self._connect()

    def _connect(self) -> None:
        self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)

    def get(self, path: str) -> bytes:
        conn = self._local.conn
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:300]!r}")
        return body

    def open(self, i: int) -> float:
        """Seconds from opening image `i` to holding it large, why it scores so, and the
        thumbnails of its nearest rated images."""
        t0 = time.perf_counter()
        large = self.pool.submit(self.get, f"/api/image/{i}")
        why = json.loads(self.get(f"/api/why/{i}"))
        list(self.pool.map(lambda n: self.get(f"/api/rated/{n['sha']}/thumb"), why["neighbours"]))
        large.result()
        return time.perf_counter() - t0

    def page(self, query: str) -> tuple[float, dict]:
        """Seconds from asking for a page to holding every thumbnail on it."""
        t0 = time.perf_counter()
        data = json.loads(self.get(f"/api/items?{query}&limit={PAGE}"))
        list(self.pool.map(lambda it: self.get(f"/api/thumb/{it['i']}"), data["items"]))
        return time.perf_counter() - t0, data


def start_server(scores: Path, home: Path) -> tuple[subprocess.Popen, int, float]:
    """`silva gallery` on a free port; returns it, its port and the seconds until it answered."""
    from silva_pipeline.local_services import free_port

    port = free_port()
    silva = Path(sys.executable).with_name("silva")
    cmd = [
        str(silva),
        "gallery",
        "--scores",
        str(scores),
        "--log",
        str(home / "log.sqlite"),
        "--port",
        str(port),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, "SILVA_HOME": str(home)}, stdout=subprocess.DEVNULL)
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=5).request("GET", "/")
            return proc, port, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"silva gallery did not start ({proc.returncode})") from None
            time.sleep(0.02)


FILTERS = ("filter=unrated&folder={folder}", "sort=uncertainty", "filter=disagreements", "min=4&max=4.5")


def time_server(port: int, folder: str) -> dict[str, float]:
    client = Client(port)
    first, data = client.page("sort=score&offset=0")
    total = data["total"]
    turns = [client.page(f"sort=score&offset={o}")[0] for o in range(PAGE, min(total, 11 * PAGE), PAGE)]
    filters = [client.page(q.format(folder=folder))[0] for q in FILTERS]
    opened = [client.open(it["i"]) for it in data["items"][:5]]
    return {
        "first": first,
        "turn": _median(turns),
        "turn_max": max(turns, default=float("nan")),
        "filter": statistics.median(filters),
        "open_first": opened[0],
        "open": _median(opened[1:]),
    }


VISIBLE_LOADED = """() => {
  const shown = [...document.querySelectorAll('.tile img')]
    .filter(i => i.getBoundingClientRect().top < innerHeight);
  return shown.length > 0 && shown.every(i => i.complete && i.naturalWidth > 0);
}"""
# Timed inside the page (performance.now()), so the driver's round trips do not count: from the
# key press (or the navigation's start) to the page's count shown and every visible thumbnail decoded.
TIMED = """async ([key, count]) => {
  const loaded = LOADED;
  const t0 = key ? performance.now() : 0;
  if (key) document.dispatchEvent(new KeyboardEvent("keydown", {key, bubbles: true}));
  while (!(document.getElementById("count")?.textContent.startsWith(count) && loaded()))
    await new Promise((r) => setTimeout(r, 1));
  return performance.now() - t0;
}""".replace("LOADED", VISIBLE_LOADED)


def time_chromium(url: str, n: int) -> dict[str, float]:
    """In a real browser: from navigation to every visible thumbnail decoded, and page turns (→)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="commit")
        first = page.evaluate(TIMED, [None, "1–"]) / 1000
        turns: dict[bool, list[float]] = {True: [], False: []}
        pages = -(-n // PAGE)
        for k in range(1, min(11, pages)):
            looked = k % 2 == 1  # every other turn after a look at the page (its next one preloaded)
            if looked:
                page.wait_for_timeout(500)
            turns[looked].append(page.evaluate(TIMED, ["ArrowRight", f"{k * PAGE + 1}–"]) / 1000)
        browser.close()
    return {
        "browser_first": first,
        "browser_turn": _median(turns[True]),
        "browser_rapid": _median(turns[False]),
    }


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def screenshot(url: str, out: Path) -> None:
    """The grid at 1400 px and one image open at 420 px, side by side, for docs/gallery.png."""
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        for width, open_first in ((1400, False), (420, True)):
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url)
            page.wait_for_function(VISIBLE_LOADED)
            if open_first:
                page.click(".tile >> nth=1")
                page.wait_for_function("document.getElementById('big').naturalWidth > 0")
                near = "[...document.querySelectorAll('#near img')]"
                page.wait_for_function(
                    f"{near}.length > 0 && {near}.every(i => i.complete && i.naturalWidth > 0)"
                )
            shots.append(Image.open(io.BytesIO(page.screenshot())))
        browser.close()
    canvas = Image.new("RGB", (sum(s.width for s in shots) + 12, max(s.height for s in shots)), (60, 60, 60))
    canvas.paste(shots[0], (0, 0))
    canvas.paste(shots[1], (shots[0].width + 12, 0))
    canvas.save(out, optimize=True)


def bench_gallery(sizes: list[int], root: Path, chromium: bool, shot: Path | None) -> str:
    import psutil

    from silva_app.home import Home
    from silva_model.parquet import write_parquet

    rng = np.random.default_rng(0)
    files = write_files(root / "library", rng)
    rows = []
    for n in sizes:
        home = Home(root / f"home-{n}")
        library = synthetic_scores(n, files, rng)
        scores = write_parquet(library, root / f"scores-{n}.parquet")
        made = fill_thumbnails(library, home)
        proc, port, started = start_server(scores, home.root)
        try:
            got = time_server(port, str(root / "library" / "set03"))
            if chromium:
                got |= time_chromium(f"http://127.0.0.1:{port}/", n)
            rss = psutil.Process(proc.pid).memory_info().rss / 2**20
            if shot is not None and n == max(sizes):
                screenshot(f"http://127.0.0.1:{port}/", shot)
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"  {n:,} images: {made:.1f} s to make {min(n, DISTINCT_FILES)} real thumbnails", flush=True)
        rows.append(
            [f"{n:,}", f"{started:.2f}", f"{got['first']:.3f}", f"{1000 * got['turn']:.0f}"]
            + [f"{1000 * got['turn_max']:.0f}", f"{1000 * got['filter']:.0f}"]
            + [f"{1000 * got['open_first']:.0f}", f"{1000 * got['open']:.0f}", f"{rss:.0f}"]
            + ([f"{got['browser_first']:.3f}", f"{1000 * got['browser_turn']:.0f}"] if chromium else [])
            + ([f"{1000 * got['browser_rapid']:.0f}"] if chromium else [])
        )
    headers = [
        "images",
        "server answers (s)",
        "first page (s)",
        "page turn, median (ms)",
        "page turn, max (ms)",
    ]
    headers += [
        "new filter, first page, median (ms)",
        "open the first image (ms)",
        "open an image, median (ms)",
    ]
    headers += ["server memory (MiB)"]
    headers += ["Chromium: first page (s)", "Chromium: page turn, median (ms)"] if chromium else []
    headers += ["Chromium: rapid page turn, median (ms)"] if chromium else []
    return table(headers, rows)


def bench_explain(rated_sizes: list[int], n: int = 10_000, repeats: int = 5) -> str:
    """Seconds to score n precomputed embeddings (`Scorer.score_embeddings`, what `silva score`
    runs on them), to explain them (`explain`, which scores them too), and to score them as the
    pipeline's library_scores does (`score_library`: the head, the class probabilities and the
    out-of-domain distance) without and with the explanation, medians of interleaved repeats."""
    import torch

    from silva_model.active import score_library
    from silva_model.explain import explain
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.release import head_for
    from silva_model.scorer import Scorer

    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 1152)).astype(np.float32)
    judge = {
        "kind": "silva",
        "source": "bench",
        "revision": "",
        "files": {},
        "config": HeadConfig().to_dict(),
    }
    heads = {"no judge": OrdinalHead(HeadConfig()), "a judge inside": head_for(HeadConfig(prior=judge))}
    rows = []
    for name, head in heads.items():
        scorer = Scorer(head, device="cpu")
        for r in rated_sizes:
            rated, ratings = rng.standard_normal((r, 1152)).astype(np.float32), rng.integers(1, 6, r)
            runs = {
                "score": partial(scorer.score_embeddings, x),
                "explain": partial(explain, scorer.head, x, rated, ratings),
                "library": partial(score_library, scorer.head, x, rated),
                "library explained": partial(score_library, scorer.head, x, rated, ratings),
            }
            took: dict[str, list[float]] = {k: [] for k in runs}
            for k in range(repeats + 1):  # the first is a warm-up
                for key, run in runs.items():
                    t0 = time.perf_counter()
                    run()
                    if k:
                        took[key].append(time.perf_counter() - t0)
            s, e, lib, why = (statistics.median(v) for v in took.values())
            rows.append([name, f"{r:,}", f"{s:.3f}", f"{e:.3f}", f"{100 * (e / s - 1):+.0f} %"])
            rows[-1] += [f"{lib:.3f}", f"{why:.3f}", f"{100 * (why / lib - 1):+.0f} %"]
    headers = ["head", "rated images", "score (s)", "score + explain (s)", "explain adds to scoring"]
    headers += ["library scoring (s)", "library scoring + explain (s)", "explain adds to library scoring"]
    return table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 100_000], help="library sizes")
    p.add_argument("--rated", type=int, nargs="+", default=[250, 500, 1000, 4000], help="rated set sizes")
    p.add_argument("--no-chromium", action="store_true", help="time over HTTP only")
    p.add_argument("--screenshot", type=Path, help="save the grid and an open image here (docs/gallery.png)")
    p.add_argument("--only", choices=("gallery", "explain"), help="one of the two")
    a = p.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    chromium = not a.no_chromium and Path("/usr/bin/chromium").exists()
    if a.only != "explain":
        with tempfile.TemporaryDirectory(prefix="silva-gallery-bench-") as root:
            print("\n### The gallery\n", flush=True)
            print(bench_gallery(a.sizes, Path(root), chromium, a.screenshot), flush=True)
    if a.only != "gallery":
        print("\n### silva score --explain\n", flush=True)
        print(bench_explain(a.rated), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
