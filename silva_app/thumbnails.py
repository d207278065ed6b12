"""Thumbnails of library images, made once and kept in the workspace (`Home.thumbnails`).

Content-addressed: `<sha[:2]>/<image_sha256>-<size>.jpg`, so a moved or renamed file keeps its
thumbnail and a changed one gets its own. A background thread makes the ones a page is about to
show (`prefetch`, newest request first); a request for one not made yet makes it at once, and two
requests for one image make it once. An image that cannot be shown gets a placeholder that says
why; it is not cached, since the file may come back or be fixed.
"""

from __future__ import annotations

import textwrap
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from silva_app.previews import jpeg, preview
from silva_model.atomic import atomic_path

THUMBNAIL_SIZE = 320


def problem_of(path: str | None, error: Exception) -> str:
    """Why an image cannot be shown, as the page says it."""
    if isinstance(error, FileNotFoundError):
        return f"image is gone: {path}"
    return f"cannot decode {path}: {error}"


def placeholder(reason: str, size: int) -> bytes:
    """A dark square that says why the image is missing."""
    im = Image.new("RGB", (size, size), (40, 32, 32))
    font = ImageFont.load_default(size=max(10, size // 18))
    text = "\n".join(textwrap.wrap(reason, width=28)[:8])
    ImageDraw.Draw(im).multiline_text((size // 16, size // 16), text, fill=(255, 150, 150), font=font)
    return jpeg(im, 80)


class Thumbnails:
    """The thumbnail cache of one size under `folder`, and the thread that fills it."""

    def __init__(self, folder: Path, size: int = THUMBNAIL_SIZE) -> None:
        self.folder, self.size = folder, size
        self._lock = threading.Condition()
        self._pending: deque[tuple[str, str | None]] = deque()
        self._making: dict[str, threading.Event] = {}
        self._failed: dict[str, str] = {}  # image_sha256 -> why it cannot be shown (this process)
        self._thread: threading.Thread | None = None

    def file(self, image_sha256: str) -> Path:
        return self.folder / image_sha256[:2] / f"{image_sha256}-{self.size}.jpg"

    def cached(self, image_sha256: str) -> bytes | None:
        """The thumbnail if it was made already (a small file: cheap enough to read anywhere)."""
        try:
            return self.file(image_sha256).read_bytes()
        except FileNotFoundError:
            return None

    def get(self, image_sha256: str, path: str | None) -> tuple[bytes, str | None]:
        """The thumbnail's JPEG bytes, and why the image cannot be shown (None when it can: then
        the bytes are the thumbnail, else a placeholder saying so)."""
        while True:
            data = self.cached(image_sha256)
            if data is not None:
                return data, None
            with self._lock:
                if image_sha256 in self._failed:
                    reason = self._failed[image_sha256]
                    return placeholder(reason, self.size), reason
                busy = self._making.get(image_sha256)
                if busy is None:
                    self._making[image_sha256] = threading.Event()
            if busy is None:
                self._make(image_sha256, path)
            else:
                busy.wait()  # someone else is making it: read what they made

    def _make(self, image_sha256: str, path: str | None) -> None:
        """Make one thumbnail (the caller holds its `_making` entry) and release waiters."""
        try:
            data = jpeg(preview(path, image_sha256, self.size), 85)
            with atomic_path(self.file(image_sha256)) as tmp:
                tmp.write_bytes(data)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # broken files
            with self._lock:
                self._failed[image_sha256] = problem_of(path, e)
        finally:
            with self._lock:
                self._making.pop(image_sha256).set()

    def prefetch(self, images: Iterable[tuple[str, str | None]]) -> None:
        """Make these (image_sha256, path) in the background, in order; what an earlier call
        asked for and is not made yet is dropped: the newest page is the one being looked at."""
        with self._lock:
            self._pending = deque(i for i in images if not self.file(i[0]).is_file())
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="silva-thumbnails", daemon=True)
                self._thread.start()
            self._lock.notify()

    def idle(self) -> bool:
        """Nothing waits to be made (what tests and the bench wait for)."""
        with self._lock:
            return not self._pending and not self._making

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._pending:
                    self._lock.wait()
                sha, path = self._pending.popleft()
                if sha in self._making or sha in self._failed or self.file(sha).is_file():
                    continue
                self._making[sha] = threading.Event()
            self._make(sha, path)
