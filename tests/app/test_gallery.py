"""The gallery in real Chromium (grid, filters, open, rate, back at 1400 and 420 px) and over
HTTP (its protections, bad queries, what it serves)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gallery_support import gallery_library, start_gallery, write_scores
from helpers import stop_process_group

from silva_app.home import silva_home
from silva_app.ratings_log import RatingsLog
from silva_model.cli import main

TILE_IMAGES_LOADED = (
    "[...document.querySelectorAll('.tile img')].length > 0 && "
    "[...document.querySelectorAll('.tile img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)"
)


def _count(page, text: str) -> None:
    page.wait_for_function(f"document.getElementById('count').textContent === {json.dumps(text)}")


def _first_tiles(page, n: int) -> list[int]:
    return [int(t) for t in page.eval_on_selector_all(".tile", "ts => ts.map(t => t.dataset.i)")[:n]]


def _filters_and_pages(page, url: str, rows: list[dict], tmp_path) -> None:
    """Each filter narrows the grid to what it says; the pager and → turn pages."""
    expected = np.array([r["expected_rating"] for r in rows])
    rated = [k for k, r in enumerate(rows) if r["rating"]]
    page.select_option("#filter", "rated")
    _count(page, f"1–{len(rated)} of {len(rated)}")
    page.select_option("#filter", "disagreements")
    gaps = {k: abs(rows[k]["rating"] - expected[k]) for k in rated}
    page.wait_for_function(f"document.querySelector('.tile').dataset.i === '{max(gaps, key=gaps.get)}'")
    page.select_option("#filter", "out-of-domain")
    _count(page, "1–3 of 3")
    page.select_option("#filter", "all")
    page.fill("#folder", str(tmp_path / "lib" / "b"))
    page.press("#folder", "Enter")
    _count(page, "1–60 of 60")
    page.fill("#min", "4")
    page.press("#min", "Enter")
    in_b = sum(1 for r in rows if "/lib/b/" in r["path"] and r["expected_rating"] >= 4)
    _count(page, f"1–{in_b} of {in_b}")
    page.goto(url + "#")  # every filter off
    _count(page, "1–60 of 130")
    page.keyboard.press("ArrowRight")  # the next page
    _count(page, "61–120 of 130")
    page.click("#next")
    _count(page, "121–130 of 130")
    page.click("#prev")
    _count(page, "61–120 of 130")


@pytest.mark.parametrize("width", [1400, 420])
def test_grid_filters_open_rate_and_back_in_chromium(tmp_path, browser, width):
    scores, rows = gallery_library(tmp_path, silva_home().latest)
    log_path = tmp_path / "log.sqlite"
    proc, url = start_gallery(scores, log_path)
    expected = np.array([r["expected_rating"] for r in rows])
    try:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(url)
        page.wait_for_function(TILE_IMAGES_LOADED)
        _count(page, "1–60 of 130")
        assert _first_tiles(page, 5) == np.argsort(-expected, kind="stable")[:5].tolist()  # best first
        boxes = [page.locator(".tile").nth(k).bounding_box() for k in range(3)]
        columns = sum(b["y"] == boxes[0]["y"] for b in boxes)
        assert columns == (3 if width == 1400 else 2), boxes
        page.screenshot(path=str(tmp_path / f"grid-{width}.png"))

        _filters_and_pages(page, url, rows, tmp_path)

        first = _first_tiles(page, 1)[0]
        page.click(f".tile[data-i='{first}']")  # open it large, with why it scores as it does
        page.wait_for_function("document.getElementById('big').naturalWidth > 0")
        page.wait_for_function("document.querySelectorAll('#near img').length === 3")
        page.wait_for_function("[...document.querySelectorAll('#near img')].every(i => i.naturalWidth > 0)")
        captions = page.eval_on_selector_all("#near figcaption", "fs => fs.map(f => f.textContent)")
        assert captions == [
            f"★{r} · {s:.2f}"
            for r, s in zip(rows[first]["neighbour_ratings"], (0.93, 0.9, 0.85), strict=True)
        ]
        assert page.inner_text("#judge").startswith("judge: 25 % of where it falls, +0.30 stars")
        page.keyboard.press("4")
        page.wait_for_selector("#status:has-text('rated ★4')")
        page.keyboard.press("u")
        page.wait_for_selector("#status:has-text('undone')")
        page.keyboard.press("5")
        page.wait_for_selector("#status:has-text('rated ★5')")
        assert page.inner_text("#stars span.on") == "5"
        page.screenshot(path=str(tmp_path / f"viewer-{width}.png"))
        page.keyboard.press("Escape")  # back to the grid, where it shows as rated
        page.wait_for_function("!document.getElementById('viewer').classList.contains('on')")
        assert page.inner_text(f".tile[data-i='{first}'] .mine") == "★5"
        _count(page, "61–120 of 130")
        page.click(f".tile[data-i='{first}']")
        page.wait_for_selector("#viewer.on")
        page.go_back()  # the browser's own back closes it too
        page.wait_for_function("!document.getElementById('viewer').classList.contains('on')")

        page.goto(url + "#open=11")  # a file that vanished after scoring: said, and not rated
        page.wait_for_selector("#problem:has-text('image is gone')")
        page.keyboard.press("3")
        page.wait_for_selector("#status:has-text('not saved: image is gone')")
        assert proc.poll() is None
    finally:
        stop_process_group(proc)
    entries = RatingsLog(log_path).entries().to_pylist()
    assert [(e["image_sha256"], e["rating"], e["path"]) for e in entries] == [
        (rows[first]["image_sha256"], 5, rows[first]["path"])
    ]
    for name in (f"grid-{width}.png", f"viewer-{width}.png"):
        assert (tmp_path / name).stat().st_size > 10_000


def _client(tmp_path):
    from starlette.testclient import TestClient

    from silva_app.gallery import build_app
    from silva_app.gallery.server import rated_paths
    from silva_app.library_scores import LibraryScores
    from silva_app.thumbnails import Thumbnails

    scores_path, rows = gallery_library(tmp_path, silva_home().latest)
    scores = LibraryScores.read(scores_path)
    log = RatingsLog(tmp_path / "log.sqlite")
    thumbs = Thumbnails(tmp_path / "thumbs")
    app = build_app(scores, log, thumbs, lambda: rated_paths(scores, silva_home().latest("manifest")))
    client = TestClient(app, "http://127.0.0.1:8766")
    token = re.search(r'const token = "([^"]+)"', client.get("/").text).group(1)
    return client, log, rows, token


def test_only_the_page_may_write_and_only_what_it_shows_is_served(tmp_path):
    client, log, rows, token = _client(tmp_path)
    own = {"origin": "http://127.0.0.1:8766", "content-type": "application/json", "x-silva-token": token}
    for path in ("/", "/api/items", "/api/thumb/0", "/api/why/0"):  # DNS rebinding
        assert client.get(path, headers={"host": "evil.example:8766"}).status_code == 403
    body = json.dumps({"rating": 4})
    for headers in (
        {**own, "origin": "http://127.0.0.1:9999"},
        {**own, "content-type": "text/plain"},
        {**own, "x-silva-token": "guess"},
    ):
        assert client.post("/api/rate/0", content=body, headers=headers).status_code == 403, headers
    assert log.entries().num_rows == 0
    for bad in (b'{"rating": true}', b'{"rating": 6}', b"not json"):
        assert client.post("/api/rate/0", content=bad, headers=own).status_code == 400
    assert client.post("/api/rate/999", content=body, headers=own).status_code == 400
    made = client.post("/api/rate/0", content=body, headers=own).json()
    assert made["rating"] == 4 and log.entries()["rating"].to_pylist() == [4]
    assert client.post("/api/undo", content=json.dumps({"id": made["id"], "i": 0}), headers=own).json() == {
        "undone": made["id"],
        "rating": None,
    }

    for query, why in (("filter=best", "filter 'best' is not one of"), ("min=x", "min='x' is not a number")):
        r = client.get(f"/api/items?{query}")
        assert r.status_code == 400 and why in r.json()["error"]
    page = client.get("/api/items?offset=120&limit=60").json()
    assert page["total"] == 130 and len(page["items"]) == 10
    cut = client.get("/api/thumb/10")  # the file cut short: a placeholder that says why
    assert cut.status_code == 200 and cut.headers["x-silva-problem"].startswith("cannot decode")
    assert client.get("/api/image/11").json()["error"].startswith("image is gone")
    assert client.get("/api/thumb/130").status_code == 404
    assert client.get(f"/api/rated/{rows[0]['neighbours'][0]}/thumb").status_code == 200
    assert client.get(f"/api/rated/{rows[0]['image_sha256']}/thumb").status_code == 404  # not a rated one


def test_the_gallery_says_what_is_missing(tmp_path, capsys):
    assert main(["gallery"]) == 2
    assert "no library scores in the workspace" in capsys.readouterr().err
    assert main(["gallery", "--scores", str(write_scores(tmp_path / "empty.parquet", []))]) == 2
    assert "holds no scored images: the library is empty" in capsys.readouterr().err
