"""The kinds of copy a library holds twice (re-encoded, resized, cropped, rotated, mirrored,
recoloured, framed), as functions of an image: the tests and `bench/near_duplicates.py` measure
the copy rule on them."""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from silva_model.copies import CopyRule


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
