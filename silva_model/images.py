"""Image files as the backbone sees them: which files are images, decoding any mode Pillow
opens to 8-bit RGB the way pictoria does, and the image processor's pixels without its overhead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif"})


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be embedded, and why. `of_content`: its bytes are at fault (they
    will fail the same way again), not the file system or the machine (a file gone, no
    permission, out of memory)."""

    path: str
    error: str
    of_content: bool = True

    def __str__(self) -> str:
        return f"{self.path}: {self.error}"


# The full-scale value of each single-channel high-bit-depth mode (16-bit PNGs open as I;16,
# 16-bit TIFFs as I;16 or I, float TIFFs as F).
_HIGH_DEPTH_TOP = {
    "I;16": 65535.0,
    "I;16L": 65535.0,
    "I;16B": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 255.0,
}


def to_rgb(im: Image.Image) -> Image.Image:
    """Any mode Pillow opens -> 8-bit RGB. Alpha is dropped, not composited (the colour under a
    transparent pixel stays), because pictoria does the same before it embeds: its stored vectors
    and silva's must agree. High-bit-depth modes are scaled to 8 bits first; a plain
    `convert("RGB")` clips 16-bit values and turns the image white."""
    if im.mode in _HIGH_DEPTH_TOP:
        a = np.asarray(im, dtype=np.float64)
        top = _HIGH_DEPTH_TOP[im.mode]
        if im.mode == "F" and a.max() <= 1.0:
            top = 1.0  # float images in [0, 1]
        im = Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif im.mode in ("P", "PA"):
        im = im.convert("RGBA")  # palette transparency, without Pillow's warning
    return im if im.mode == "RGB" else im.convert("RGB")


# Errors of reading a file that say nothing of its bytes: a later try may succeed
NOT_OF_CONTENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, MemoryError)


class ImageDecodeError(OSError):
    """A file that is there but is no image Pillow will decode. Pillow raises OSError for most
    broken files but DecompressionBombError, SyntaxError, ValueError, struct.error and others for
    some: callers catch this one OSError (a missing file stays FileNotFoundError)."""


def load_rgb(path: str | os.PathLike[str], draft: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully decode an image (a truncated file fails here, not later); any failure is an
    OSError. `draft`: let a JPEG decode at the smallest 1/2, 1/4 or 1/8 scale still at least
    that (width, height)."""
    try:
        with Image.open(path) as im:
            if draft is not None and im.format == "JPEG":
                im.draft("RGB", draft)
            im.load()
            return to_rgb(im)
    except OSError:
        raise
    except Exception as e:  # any other decode error is the file's: a bomb, a bad header field
        raise ImageDecodeError(f"{type(e).__name__}: {e}") from e


@dataclass(frozen=True)
class FastPixels:
    """The image processor's pixels for a fixed-size resize + rescale + normalise, computed with
    one PIL resize and two NumPy operations: the same values (within float32 rounding) without
    the processor's per-call conversions and checks."""

    size: tuple[int, int]  # (width, height), as PIL takes it
    resample: int
    scale: np.float32
    mean: np.ndarray  # (3, 1, 1) float32
    std: np.ndarray

    @classmethod
    def of(cls, processor) -> FastPixels | None:
        """For a processor whose steps are exactly these; None for any other (then it runs)."""
        cfg = processor.to_dict()
        size = cfg.get("size") or {}
        plain = cfg.get("do_resize") and cfg.get("do_rescale") and cfg.get("do_normalize")
        extra = any(cfg.get(k) for k in ("do_center_crop", "do_pad", "do_reduce_labels"))
        if not plain or extra or set(size) != {"height", "width"}:
            return None

        def per_channel(v) -> np.ndarray:
            return np.broadcast_to(np.asarray(v, np.float32).reshape(-1, 1, 1), (3, 1, 1)).copy()

        return cls(
            (int(size["width"]), int(size["height"])),
            int(cfg.get("resample", Image.BICUBIC)),
            np.float32(cfg["rescale_factor"]),
            per_channel(cfg["image_mean"]),
            per_channel(cfg["image_std"]),
        )

    def __call__(self, image: Image.Image) -> np.ndarray:
        """RGB image -> (3, H, W) float32."""
        resized = image.resize(self.size, self.resample)
        x = np.asarray(resized, np.float32).transpose(2, 0, 1)
        return (x * self.scale - self.mean) / self.std


def expand_image_paths(items: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files as given; folders expanded recursively to their image files, sorted."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            out.append(p)
    return out
