"""Thumbnails: made once, content-addressed, in the background; a placeholder says why not."""

from __future__ import annotations

import io
import threading
import time

from helpers import write_images
from PIL import Image

from silva_app import thumbnails as thumbs
from silva_app.thumbnails import Thumbnails
from silva_model.provenance import sha256_file


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_thumbnail_is_made_once_and_outlives_its_file(tmp_path):
    (image,) = write_images(tmp_path / "lib", 1, size=(900, 600))
    sha = sha256_file(image)
    cache = Thumbnails(tmp_path / "thumbs", size=200)
    data, problem = cache.get(sha, str(image))
    assert problem is None and Image.open(io.BytesIO(data)).size == (133, 200)  # 600 x 900
    assert cache.file(sha) == tmp_path / "thumbs" / sha[:2] / f"{sha}-200.jpg" and cache.file(sha).is_file()
    image.unlink()  # content-addressed: the cached one is served, the file is not read again
    assert cache.get(sha, str(image)) == (data, None)
    assert Thumbnails(tmp_path / "thumbs", size=100).get(sha, str(image))[1].startswith("image is gone")


def test_an_image_that_cannot_be_shown_gets_a_placeholder_with_the_reason(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cache = Thumbnails(tmp_path / "thumbs", size=160)
    data, problem = cache.get("b" * 64, str(broken))
    assert problem.startswith(f"cannot decode {broken}")
    assert Image.open(io.BytesIO(data)).size == (160, 160)
    assert not cache.file("b" * 64).exists()  # not cached: the file may be fixed
    gone = tmp_path / "nowhere.png"
    assert cache.get("c" * 64, str(gone))[1] == f"image is gone: {gone}"
    assert cache.get("d" * 64, None)[1] is None  # a vector-only image: its swatch


def test_the_background_thread_makes_what_a_page_will_show(tmp_path):
    images = write_images(tmp_path / "lib", 6)
    cache = Thumbnails(tmp_path / "thumbs")
    todo = [(sha256_file(p), str(p)) for p in images]
    cache.prefetch(todo)
    _wait(cache.idle)
    assert all(cache.file(sha).is_file() for sha, _ in todo)


def test_many_requests_for_one_image_make_it_once(tmp_path, monkeypatch):
    (image,) = write_images(tmp_path / "lib", 1)
    calls = []

    def slow_preview(*args):
        calls.append(args)
        time.sleep(0.2)  # widens the window in which the others ask
        return Image.new("RGB", (8, 8))

    monkeypatch.setattr(thumbs, "preview", slow_preview)
    cache = Thumbnails(tmp_path / "thumbs")
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.get("e" * 64, str(image)))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and len({g[0] for g in got}) == 1
