"""The rating page in real Chromium and over HTTP: keys, undo, protections."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_support import NOTHING_CUT, start_page, write_queue
from helpers import (
    decompression_bomb,
    stop_process_group,
    write_images,
)

from silva_app.comparisons import propose_groups, propose_pairs
from silva_app.local_server import NO_RATING
from silva_app.ratings_log import RatingsLog
from silva_model.provenance import sha256_file


def _queue_of_images(tmp_path: Path) -> tuple[Path, list[Path]]:
    images = write_images(tmp_path / "lib", 4, size=(300, 200))
    gone = tmp_path / "lib" / "gone.png"
    shutil.copy(images[0], gone)
    broken = tmp_path / "lib" / "broken.png"
    broken.write_bytes(images[1].read_bytes()[:60])  # a PNG cut short
    bomb = decompression_bomb(tmp_path / "lib" / "bomb.png")  # above Pillow's pixel limit
    rows = [
        {"path": str(images[0]), "kind": "new", "reason": "SECRET-REASON-0", "expected_rating": 3.2},
        {"path": str(images[1]), "kind": "rerate", "reason": "SECRET-REASON-1", "given_rating": 5},
        {"path": str(gone), "kind": "new", "reason": "r"},
        {"path": str(broken), "kind": "new", "reason": "r"},
        {"path": str(bomb), "kind": "new", "reason": "r"},
        {"path": str(images[2]), "kind": "new", "reason": "r"},
    ]
    for r in rows:
        r["image_sha256"] = sha256_file(r["path"])
    gone.unlink()  # vanished after the queue was made
    return write_queue(tmp_path / "queue.parquet", rows), [Path(r["path"]) for r in rows]


def test_rating_page_keys_undo_skip_and_bad_images(tmp_path, browser):
    queue, paths = _queue_of_images(tmp_path)
    log_path = tmp_path / "ratings-log.sqlite"
    proc, url = start_page(queue, log_path)
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(url)
        page.wait_for_function("document.getElementById('img').naturalWidth > 0")
        assert page.inner_text("#total") == "6" and page.inner_text("#pos") == "1"
        assert "SECRET-REASON" not in page.content()  # blind: the model's view stays hidden
        page.keyboard.press("3")
        page.wait_for_function("document.getElementById('pos').textContent === '2'")
        page.keyboard.press("5")
        page.wait_for_function("document.getElementById('pos').textContent === '3'")
        page.keyboard.press("u")  # withdraws the 5, back on image 2
        page.wait_for_function("document.getElementById('pos').textContent === '2'")
        page.keyboard.press("4")
        page.wait_for_function("document.getElementById('pos').textContent === '3'")
        page.wait_for_selector("#problem:has-text('gone')")  # the vanished image says so
        page.keyboard.press("2")  # a rating on it is not recorded: the page moves on
        page.wait_for_function("document.getElementById('pos').textContent === '4'")
        page.wait_for_selector("#problem:has-text('cannot decode')")
        page.keyboard.press("s")
        page.wait_for_function("document.getElementById('pos').textContent === '5'")
        page.wait_for_selector("#problem:has-text('DecompressionBombError')")  # says why, and goes on
        page.keyboard.press("3")
        page.wait_for_function("document.getElementById('pos').textContent === '6'")
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("1")
        page.wait_for_function("document.getElementById('rated').textContent === '3'")
        shot = tmp_path / "rating-page.png"  # the last image, stays put, its 1 lit
        assert page.inner_text("#pos") == "6" and page.inner_text("#stars span.on") == "1"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 5_000
        assert proc.poll() is None  # bad images did not bring the server down
    finally:
        stop_process_group(proc)

    log = RatingsLog(log_path).entries().to_pylist()
    got = [(r["image_sha256"], r["rating"], r["rerate"]) for r in log]
    sha = [sha256_file(p) for p in (paths[0], paths[1], paths[5])]
    assert got == [(sha[0], 3, False), (sha[1], 4, True), (sha[2], 1, False)]
    with sqlite3.connect(log_path) as conn:  # the withdrawn 5 is recorded as undone, not deleted
        assert conn.execute("SELECT COUNT(*) FROM ratings").fetchone()[0] == 4
        assert conn.execute("SELECT COUNT(*) FROM undos").fetchone()[0] == 1


@pytest.mark.parametrize("width", [1400, 420])
def test_rate_mode_says_why_without_scores_has_touch_buttons_and_cuts_nothing(tmp_path, browser, width):
    images = write_images(tmp_path / "lib", 3, size=(300, 200))
    rows = [
        {"path": str(p), "kind": "new", "reason": f"SECRET-REASON-{i} expects 3.4", "expected_rating": 3.4}
        for i, p in enumerate(images)
    ]
    rows[0]["why"] = "heads trained on parts of your ratings disagree about it"  # the queue's own words
    rows[1] |= {"kind": "rerate", "given_rating": 5}  # no `why`: said from its kind
    for r in rows:
        r["image_sha256"] = sha256_file(r["path"])
    log_path = tmp_path / "ratings-log.sqlite"
    proc, url = start_page(write_queue(tmp_path / "queue.parquet", rows), log_path)
    try:
        page = browser.new_page(viewport={"width": width, "height": 800})
        page.goto(url)
        page.wait_for_function("document.getElementById('img').naturalWidth > 0")
        assert page.inner_text("#info") == f"{images[0].name} · {rows[0]['why']}"
        assert page.inner_text("#help") == "1-5 or click rate · ←/→ move · u undo · s skip"
        assert page.evaluate(NOTHING_CUT) == []
        page.screenshot(path=str(tmp_path / f"rate-{width}.png"))
        page.click("#skip")
        page.wait_for_function("document.getElementById('pos').textContent === '2'")
        assert "you rated it before; silva asks again" in page.inner_text("#info")
        assert "SECRET" not in page.content() and "5" not in page.inner_text("#info")  # no score, no rating
        page.click("#stars span:nth-child(4)")
        page.wait_for_function("document.getElementById('pos').textContent === '3'")
        page.click("#undo")  # back on image 2, its 4 withdrawn
        page.wait_for_function("document.getElementById('rated').textContent === '0'")
        assert page.inner_text("#pos") == "2" and page.evaluate(NOTHING_CUT) == []
        page.screenshot(path=str(tmp_path / f"rate-{width}-undone.png"))
    finally:
        stop_process_group(proc)
    with sqlite3.connect(log_path) as conn:  # the 4 was given, then undone
        assert conn.execute("SELECT rating FROM ratings").fetchall() == [(4,)]
        assert conn.execute("SELECT COUNT(*) FROM undos").fetchone()[0] == 1


def test_two_pages_on_one_log_lose_nothing(tmp_path, browser):
    images = write_images(tmp_path / "lib", 12)
    rows = [{"path": str(p), "kind": "new", "reason": "r", "image_sha256": sha256_file(p)} for p in images]
    queue = write_queue(tmp_path / "queue.parquet", rows)
    log_path = tmp_path / "ratings-log.sqlite"
    a, url_a = start_page(queue, log_path)
    b, url_b = start_page(queue, log_path, "--show-scores")
    try:
        pages = [browser.new_page(), browser.new_page()]
        for page, url in zip(pages, (url_a, url_b), strict=True):
            page.goto(url)
            page.wait_for_function("document.getElementById('img').naturalWidth > 0")
        for _ in range(6):  # interleaved, each key straight after the other
            pages[0].keyboard.press("2")
            pages[1].keyboard.press("4")
        for page in pages:
            page.wait_for_function("document.getElementById('pos').textContent === '7'")
    finally:
        stop_process_group(a)
        stop_process_group(b)
    entries = RatingsLog(log_path).entries()
    assert entries.num_rows == 12
    assert sorted(entries["rating"].to_pylist()) == [2] * 6 + [4] * 6
    with sqlite3.connect(log_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@dataclass
class _Page:
    client: Any  # starlette's TestClient on the page's app
    log: RatingsLog
    images: list[Path]
    proposals: list  # what the page proposes to compare, in its mode
    own: dict[str, str]  # the headers of a write from the page itself


def _client(tmp_path: Path, extra: tuple[Path, ...] = (), n: int = 4, mode: str = "rate") -> _Page:
    from starlette.testclient import TestClient

    from silva_app.queue import read_queue
    from silva_app.rating_page import build_app

    images = write_images(tmp_path / "lib", n) + list(extra)
    rows = [
        {
            "path": str(p),
            "kind": "new",
            "reason": "r",
            "image_sha256": sha256_file(p),
            "expected_rating": 1 + i / 4,
        }
        for i, p in enumerate(images)
    ]
    queue = read_queue(write_queue(tmp_path / "q.parquet", rows))
    log = RatingsLog(tmp_path / "log.sqlite")
    client = TestClient(build_app(queue, log, mode=mode), "http://127.0.0.1:8765")
    token = re.search(r'const token = "([^"]+)"', client.get("/").text).group(1)
    own = {"origin": "http://127.0.0.1:8765", "content-type": "application/json", "x-silva-token": token}
    proposals = {"rate": [], "pair": propose_pairs(queue), "rank": propose_groups(queue)}[mode]
    return _Page(client, log, images, [list(p.members) for p in proposals], own)


def test_every_image_that_cannot_be_decoded_is_a_422_with_the_reason(tmp_path):
    (tmp_path / "bad").mkdir()
    bomb = decompression_bomb(tmp_path / "bad" / "bomb.png")
    text = tmp_path / "bad" / "notes.png"
    text.write_text("not an image")
    page = _client(tmp_path, (bomb, text), n=3)
    answers = [page.client.get(f"/api/image/{i}") for i in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 422, 422]
    assert "bomb.png: DecompressionBombError: Image size (400000000 pixels)" in answers[3].json()["error"]
    assert "notes.png: cannot identify image file" in answers[4].json()["error"]


def test_a_log_that_goes_away_under_a_running_page_is_a_503_that_says_why(tmp_path):
    page = _client(tmp_path)
    assert page.client.post("/api/rate/0", content=b'{"rating": 4}', headers=page.own).status_code == 200
    for f in page.log.path.parent.glob(page.log.path.name + "*"):
        f.unlink()
    page.log.path.mkdir()  # the log's name is now a folder: nothing can be recorded
    answer = page.client.post("/api/rate/1", content=b'{"rating": 2}', headers=page.own)
    assert answer.status_code == 503
    assert answer.json()["error"].startswith(f"the ratings log {page.log.path} cannot be written: ")


def test_only_the_page_itself_may_write_and_only_its_host_is_served(tmp_path):
    page = _client(tmp_path, mode="pair")
    client, log, own = page.client, page.log, page.own
    assert client.get("/api/items").status_code == 200
    for path in ("/", "/api/items", "/api/image/0"):  # DNS rebinding: another name for this address
        assert client.get(path, headers={"host": "evil.example:8765"}).status_code == 403
    body = json.dumps({"rating": 4})
    refused = [
        {**own, "origin": "http://127.0.0.1:9999"},  # another local website
        {k: v for k, v in own.items() if k != "origin"},
        {**own, "content-type": "text/plain"},  # a form or a no-cors fetch
        {k: v for k, v in own.items() if k != "x-silva-token"},
        {**own, "x-silva-token": "guess"},
        {**own, "host": "evil.example:8765", "origin": "http://evil.example:8765"},
    ]
    (first, second), kept = page.proposals, page.proposals[0][0]
    pair = json.dumps({"members": first, "winner": "a"})
    for headers in refused:
        assert client.post(f"/api/rate/{kept}", content=body, headers=headers).status_code == 403, headers
        assert client.post("/api/compare", content=pair, headers=headers).status_code == 403, headers
    assert log.entries().num_rows == 0 and log.pairs().num_rows == 0
    for bad in (b"", b"not json", b"[4]", b'{"rating": true}', b'{"rating": 4.0}', b'{"rating": "4"}'):
        assert client.post(f"/api/rate/{kept}", content=bad, headers=own).status_code == 400, bad
    for bad in (b"", b"rating=3", b"[4]", b'{"stars": 4}'):  # walker's: "rating is empty" for rating=3
        assert client.post(f"/api/rate/{kept}", content=bad, headers=own).json()["error"] == NO_RATING, bad
    assert client.post("/api/undo", content=b"{", headers=own).status_code == 400
    page.images[second[1]].unlink()  # a vanished image cannot be rated or compared through the API
    assert client.post(f"/api/rate/{second[1]}", content=body, headers=own).status_code == 404
    gone = json.dumps({"members": second, "winner": "b"})
    assert client.post("/api/compare", content=gone, headers=own).status_code == 404
    assert client.post(f"/api/rate/{kept}", content=body, headers=own).status_code == 200
    assert log.entries()["rating"].to_pylist() == [4]
    assert client.post("/api/compare", content=pair, headers=own).status_code == 200
    assert log.pairs()["winner"].to_pylist() == ["a"]


@pytest.mark.parametrize("mode", ["rate", "pair", "rank"])
def test_compare_accepts_only_what_the_page_proposed(tmp_path, mode):
    page = _client(tmp_path, n=12, mode=mode)

    def answer(members: list[int], winner: str | None = None) -> int:
        body = {"members": members} | ({"winner": winner} if winner else {})
        return page.client.post("/api/compare", content=json.dumps(body), headers=page.own).status_code

    everything = list(range(12))
    refused = [
        (everything, None),  # a 12-image "ranking"
        ([0, 0], "a"),
        ([0, 99], None),
        (everything[:2], "a") if mode != "pair" else ([page.proposals[0][0], page.proposals[1][0]], "a"),
    ]
    if mode == "pair":
        refused += [(page.proposals[0], None), (page.proposals[0] + page.proposals[1][:1], None)]
    if mode == "rank":
        group = page.proposals[0]
        refused += [(group[:-1], None), (group[1:] + page.proposals[1][:1], None), (group[:2], "a")]
    for members, winner in refused:
        assert answer(members, winner) == 400, (members, winner)
    assert page.log.pairs().num_rows == 0
    if mode != "rate":  # what it proposed, in any order a person may give
        assert answer(page.proposals[0][::-1], "tie" if mode == "pair" else None) == 200
        assert page.log.pairs().num_rows == (1 if mode == "pair" else 15)


def test_another_website_cannot_write_ratings_in_chromium(tmp_path, browser):
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    images = write_images(tmp_path / "lib", 3)
    rows = [{"path": str(p), "kind": "new", "reason": "r", "image_sha256": sha256_file(p)} for p in images]
    log_path = tmp_path / "ratings-log.sqlite"
    proc, url = start_page(write_queue(tmp_path / "queue.parquet", rows), log_path)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "index.html").write_text(f"""<!doctype html><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" action="{url}api/rate/0" method="POST" enctype="text/plain" target="sink">
<input name='{{"rating": 1, "x": "' value='"}}'></form>
<script>
fetch("{url}api/rate/1", {{method: "POST", mode: "no-cors", headers: {{"content-type": "text/plain"}},
                          body: JSON.stringify({{rating: 2}})}}).then(() => document.title += "fetch;");
document.getElementById("sink").addEventListener("load", () => document.title += "form;");
document.getElementById("f").submit();
</script></body>""")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, directory=str(evil), **k)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_port}/")
        page.wait_for_function("document.title.includes('fetch;') && document.title.includes('form;')")
        assert RatingsLog(log_path).entries().num_rows == 0  # both attacks reached the server, neither wrote
        own = browser.new_page()  # the page itself still rates
        own.goto(url)
        own.wait_for_function("document.getElementById('img').naturalWidth > 0")
        own.keyboard.press("3")
        own.wait_for_function("document.getElementById('rated').textContent === '1'")
    finally:
        server.shutdown()
        server.server_close()
        stop_process_group(proc)
    assert RatingsLog(log_path).entries()["rating"].to_pylist() == [3]
