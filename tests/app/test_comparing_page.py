"""The rating page's pair and rank modes, and what a new user found on the page, in Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import NOTHING_CUT, start_page, write_queue
from helpers import stop_process_group, write_images

from silva_app.comparisons import propose_groups, propose_pairs
from silva_app.queue import read_queue
from silva_app.ratings_log import RatingsLog
from silva_model.provenance import sha256_file


def _queue(tmp_path: Path, n: int = 8, gone: int | None = None) -> tuple[Path, list[dict]]:
    images = write_images(tmp_path / "lib", n, size=(120, 90))  # small: the page enlarges them
    rows = [
        {
            "path": str(p),
            "image_sha256": sha256_file(p),
            "kind": "rerate" if i == 1 else "new",
            "reason": f"REASON-{i}",
            "expected_rating": 1 + (i * 3 % n) * 4 / n,
            "rating_sd": 0.5 + 0.1 * (i % 3),
            "given_rating": 4 if i == 1 else None,
        }
        for i, p in enumerate(images)
    ]
    queue = write_queue(tmp_path / "queue.parquet", rows)
    if gone is not None:
        Path(rows[gone]["path"]).unlink()  # vanished after the queue was made
    return queue, rows


def _wait_done(page, n: int) -> None:
    page.wait_for_function(f"document.getElementById('rated').textContent === '{n}'")


def test_pair_mode_by_keys_and_mouse_with_undo_skip_and_a_vanished_image(tmp_path, browser):
    queue, rows = _queue(tmp_path, gone=None)
    pairs = propose_pairs(read_queue(queue))
    vanished = pairs[2].members[1]
    Path(rows[vanished]["path"]).unlink()
    log_path = tmp_path / "log.sqlite"
    proc, url = start_page(queue, log_path, "--mode", "pair")
    try:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('.tile img').length === 2")
        assert page.inner_text("#total") == str(len(pairs)) and "REASON" not in page.content()
        page.keyboard.press("ArrowLeft")  # pair 1: left is better
        _wait_done(page, 1)
        page.click(".tile:nth-child(2)")  # pair 2: the right one, by mouse
        _wait_done(page, 2)
        page.wait_for_selector(".tile .gone:has-text('gone')")  # pair 3 names the vanished image
        page.keyboard.press("ArrowLeft")  # nothing is recorded: the page moves on
        page.wait_for_function("document.getElementById('pos').textContent === '4'")
        page.keyboard.press("ArrowDown")  # pair 4: a tie
        _wait_done(page, 3)
        page.keyboard.press("u")  # withdraws the tie, back on pair 4
        _wait_done(page, 2)
        page.click("#tie")
        _wait_done(page, 3)
        page.screenshot(path=str(tmp_path / "pair.png"))
    finally:
        stop_process_group(proc)
    got = RatingsLog(log_path).pairs().to_pylist()
    sha = [r["image_sha256"] for r in rows]
    expect = [(pairs[0], "a"), (pairs[1], "b"), (pairs[3], "tie")]
    assert [(g["a"], g["b"], g["winner"]) for g in got] == [
        (sha[p.members[0]], sha[p.members[1]], w) for p, w in expect
    ]


def test_rank_mode_orders_a_group_by_keys_and_mouse_beside_a_pair_page_on_one_log(tmp_path, browser):
    queue, rows = _queue(tmp_path, n=12)
    groups = propose_groups(read_queue(queue))
    log_path = tmp_path / "log.sqlite"
    ranker, url = start_page(queue, log_path, "--mode", "rank")
    pairer, pair_url = start_page(queue, log_path, "--mode", "pair", "--show-scores")
    try:
        other = browser.new_page()
        other.goto(pair_url)
        other.wait_for_function("document.querySelectorAll('.tile img').length === 2")
        assert "silva cannot tell which is better" in other.inner_text("#info")
        page = browser.new_page(viewport={"width": 1100, "height": 800})
        page.goto(url)
        page.wait_for_function("document.querySelectorAll('.tile img').length === 6")
        for key in ("3", "1", "6", "2"):
            page.keyboard.press(key)
        other.keyboard.press("ArrowRight")  # the other page writes in between
        page.keyboard.press("Backspace")  # takes back the 4th place
        page.click(".tile:nth-child(2)")  # by mouse: 4th again
        page.click(".tile:nth-child(5)")  # 5th, and the last place is decided
        page.wait_for_function("document.querySelectorAll('.badge.ranked').length === 6")
        page.screenshot(path=str(tmp_path / "rank.png"))
        page.keyboard.press("Enter")
        _wait_done(page, 1)
        page.keyboard.press("s")  # skip group 2: nothing recorded
        page.wait_for_function("document.getElementById('pos').textContent === '2'")
        page.keyboard.press("u")  # undo group 1 too
        _wait_done(page, 0)
        for key in ("1", "2", "3", "4", "5"):
            page.keyboard.press(key)
        page.click("#submit")
        _wait_done(page, 1)
        _wait_done(other, 1)
    finally:
        stop_process_group(ranker)
        stop_process_group(pairer)
    sha = [r["image_sha256"] for r in rows]
    members = groups[0].members
    pairs = RatingsLog(log_path).pairs().to_pylist()
    ranked = [p for p in pairs if p["id"] == max(q["id"] for q in pairs)]
    best_first = [sha[members[i]] for i in range(6)]  # keys 1..5 in order, the 6th decided
    assert [(p["a"], p["b"]) for p in ranked] == [
        (a, b) for k, a in enumerate(best_first) for b in best_first[k + 1 :]
    ]
    assert len(pairs) == 15 + 1  # one pair from the other page, the undone ranking gone
    assert sum(p["weight"] for p in ranked) == pytest.approx(5)  # a ranking counts as n - 1 judgements
    assert pairs[0]["weight"] == 1  # a pair counts as one


def test_what_a_new_user_found_is_fixed(tmp_path, browser):
    """Clickable 1-5 boxes, a one-line bar at 420 px, small images enlarged, no "look again" in
    blind mode, reasons in words with --show-scores, and no 404 for a favicon."""
    queue, rows = _queue(tmp_path, n=3)
    log_path = tmp_path / "log.sqlite"
    blind, url = start_page(queue, log_path)
    seeing, seeing_url = start_page(queue, log_path, "--show-scores")
    try:
        page = browser.new_page(viewport={"width": 420, "height": 700})
        missing = []
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
        page.goto(url)
        page.wait_for_function("document.getElementById('img').naturalWidth > 0")
        bar = page.eval_on_selector("#bar", "b => b.getBoundingClientRect().height")
        line = page.eval_on_selector("#pos", "b => b.getBoundingClientRect().height")
        assert bar < 2.2 * line, (bar, line)  # one line, not three
        shown = page.eval_on_selector("#img", "i => i.getBoundingClientRect().width")
        assert shown > 120 * 2  # a 120 px image fills the width
        page.click("#stars span:nth-child(2)")  # the boxes are buttons
        page.wait_for_function("document.getElementById('pos').textContent === '2'")
        assert page.inner_text("#kind") == ""  # image 2 is a re-rate; blind says nothing
        page.screenshot(path=str(tmp_path / "narrow.png"))
        assert missing == []
        wide = browser.new_page()
        wide.goto(seeing_url)
        wide.wait_for_function("document.getElementById('img').naturalWidth > 0")
        info = wide.inner_text("#info")
        assert info == f"{Path(rows[1]['path']).name} · REASON-1"  # resumes on image 2
        assert wide.inner_text("#kind") == "look again"
    finally:
        stop_process_group(blind)
        stop_process_group(seeing)
    assert [r["rating"] for r in RatingsLog(log_path).entries().to_pylist()] == [2]


@pytest.mark.parametrize("mode", ["pair", "rank"])
def test_pair_and_rank_modes_cut_nothing_on_a_narrow_screen(tmp_path, browser, mode):
    queue, _ = _queue(tmp_path, n=12)
    proc, url = start_page(queue, tmp_path / "log.sqlite", "--mode", mode)
    try:
        page = browser.new_page(viewport={"width": 420, "height": 800})
        page.goto(url)
        shown = "[...document.querySelectorAll('.tile img')].filter((i) => i.naturalWidth > 0).length"
        page.wait_for_function(f"{shown} === {2 if mode == 'pair' else 6}")
        sizes = page.eval_on_selector_all(".tile img", "s => s.map((i) => i.getBoundingClientRect().height)")
        assert min(sizes) > 90  # each image is shown, its tile's size
        assert page.evaluate(NOTHING_CUT) == []
        said = {"pair": "which of these two you would rate higher", "rank": "their order is yours to say"}
        assert said[mode] in page.inner_text("#info")  # blind, yet it says why
        assert "REASON" not in page.content()
        page.screenshot(path=str(tmp_path / f"{mode}-420.png"))
    finally:
        stop_process_group(proc)
