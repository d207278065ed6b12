"""Illustration-like images and the kinds of copy a library holds twice (tests and
`bench/near_duplicates.py` measure the copy rule on them)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from silva_model.copies import CopyRule


def _shape(rng: np.random.Generator, w: int, h: int) -> tuple[list[int], tuple[int, ...]]:
    x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
    box = [x0, y0, x0 + int(rng.integers(5, 50)), y0 + int(rng.integers(5, 50))]
    return box, tuple(int(v) for v in rng.integers(0, 256, 3))


def illustration(rng: np.random.Generator, w: int = 96, h: int = 128) -> Image.Image:
    """A flat background with 12 coloured ellipses."""
    im = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        box, fill = _shape(rng, w, h)
        draw.ellipse(box, fill=fill)
    return im


def similar_pair(rng: np.random.Generator, w: int = 96, h: int = 128) -> tuple[Image.Image, Image.Image]:
    """Two distinct images that share their background and half their shapes (a series)."""
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    shared = [_shape(rng, w, h) for _ in range(6)]
    out = []
    for _ in range(2):
        im = Image.new("RGB", (w, h), bg)
        draw = ImageDraw.Draw(im)
        for box, fill in shared + [_shape(rng, w, h) for _ in range(6)]:
            draw.ellipse(box, fill=fill)
        out.append(im)
    return out[0], out[1]


def _reencoded(im: Image.Image, fmt: str, **kw) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _crop(f: float) -> Callable[[Image.Image], Image.Image]:
    def crop(im: Image.Image) -> Image.Image:
        dx, dy = int(im.width * f / 2), int(im.height * f / 2)
        return im.crop((dx, dy, im.width - dx, im.height - dy))

    return crop


def _rotated(degrees: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: im.rotate(degrees, resample=Image.BICUBIC, fillcolor=im.getpixel((0, 0)))


def _shifted_hue(im: Image.Image) -> Image.Image:
    return Image.merge(
        "RGB", [c.point(lambda v, k=k: min(255, v + 12 * (k - 1))) for k, c in enumerate(im.split())]
    )


COPY_KINDS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg q70": lambda im: _reencoded(im, "JPEG", quality=70),
    "resized 0.8x": lambda im: im.resize((int(im.width * 0.8), int(im.height * 0.8)), Image.LANCZOS),
    "blur + webp q80": lambda im: _reencoded(im.filter(ImageFilter.GaussianBlur(0.6)), "WEBP", quality=80),
    "crop 2%": _crop(0.02),
    "crop 5%": _crop(0.05),
    "crop 10%": _crop(0.10),
    "crop 10% one side": lambda im: im.crop((0, 0, im.width - im.width // 10, im.height)),
    "rotated 2°": _rotated(2),
    "rotated 5°": _rotated(5),
    "mirrored": ImageOps.mirror,
    "brighter 15%": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "desaturated 30%": lambda im: ImageEnhance.Color(im).enhance(0.7),
    "hue shifted": _shifted_hue,
    "white frame": lambda im: ImageOps.expand(im, border=6, fill="white"),
    "black frame": lambda im: ImageOps.expand(im, border=10, fill="black"),
}


COSINE_ONLY = CopyRule(pixels=2.0, joint_pixels=2.0)  # what grouping was before pixel signatures
