"""Pictures of library images for people: thumbnails in Dagster metadata and the rating page.

A browser cannot show every format silva reads (16-bit PNG, some TIFFs), so images are decoded
the way the backbone decodes them and re-encoded as JPEG. The synthetic demo has no pixels: its
images get a swatch drawn from their hash, so the loop can be seen end to end.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from silva_model.images import load_rgb


def swatch(image_sha256: str, size: int) -> Image.Image:
    """A stand-in picture for an image without a file: two colours from its hash, and the hash."""
    size = min(size, 512)
    h = hashlib.sha256(image_sha256.encode()).digest()
    a, b = np.frombuffer(h[:3], np.uint8), np.frombuffer(h[3:6], np.uint8)
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    grad = (a * (1 - t) + b * t).astype(np.uint8).repeat(size, axis=1)
    im = Image.fromarray(grad, "RGB")
    font = ImageFont.load_default(size=max(10, size // 16))
    ImageDraw.Draw(im).text(
        (size // 24, size // 24), f"synthetic {image_sha256[:10]}", fill="white", font=font
    )
    return im


def preview(path: str | None, image_sha256: str, size: int) -> Image.Image:
    """The image (or its swatch) fitted into size x size; raises OSError when the file is gone or
    cannot be decoded."""
    if not path:
        return swatch(image_sha256, size)
    im = load_rgb(path)
    im.thumbnail((size, size))
    return im


def jpeg(im: Image.Image, quality: int = 88) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
