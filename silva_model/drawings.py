"""Images silva draws for itself, in seconds and without a download: the trial backbone is
calibrated on them (`random_siglip.save_trial_siglip`), and the tests and
`bench/near_duplicates.py` measure the copy rule and the grouping of copies on them.

Each family is drawn from a NumPy generator, so a seed gives the same images everywhere:
- `illustration`: a flat background with 12 coloured ellipses (what the copy rule was tuned on);
- `similar_pair`: two distinct images sharing their background and half their shapes (a series);
- `scene`: varied sizes, aspect ratios, palettes and content: gradients, paper, dark scenes,
  ellipses, boxes, polygons, strokes, grain and blur;
- `photo`: a colour field with a natural image's 1/f spectrum, no shapes at all;
- `variations`: many distinct variations of one piece, each a small change of the one before,
  so near ones look alike and far ones do not (copies of copies, chained).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Box = list[int]
Colour = tuple[int, ...]


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> Colour:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _shape(rng: np.random.Generator, w: int, h: int) -> tuple[Box, Colour]:
    x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
    box = [x0, y0, x0 + int(rng.integers(5, 50)), y0 + int(rng.integers(5, 50))]
    return box, _colour(rng)


def illustration(rng: np.random.Generator, w: int = 96, h: int = 128) -> Image.Image:
    """A flat background with 12 coloured ellipses."""
    im = Image.new("RGB", (w, h), _colour(rng))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        box, fill = _shape(rng, w, h)
        draw.ellipse(box, fill=fill)
    return im


def similar_pair(rng: np.random.Generator, w: int = 96, h: int = 128) -> tuple[Image.Image, Image.Image]:
    """Two distinct images that share their background and half their shapes (a series)."""
    bg = _colour(rng)
    shared = [_shape(rng, w, h) for _ in range(6)]
    out = []
    for _ in range(2):
        im = Image.new("RGB", (w, h), bg)
        draw = ImageDraw.Draw(im)
        for box, fill in shared + [_shape(rng, w, h) for _ in range(6)]:
            draw.ellipse(box, fill=fill)
        out.append(im)
    return out[0], out[1]


def _gradient(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
    t = np.linspace(0, 1, h if rng.random() < 0.5 else w, dtype=np.float32)
    t = t[:, None, None] if len(t) == h else t[None, :, None]
    return Image.fromarray(np.broadcast_to(a * (1 - t) + b * t, (h, w, 3)).astype(np.uint8))


def _background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A gradient, paper or a dark ground, about equally often."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return _gradient(rng, w, h)
    return Image.new("RGB", (w, h), _colour(rng, 200, 256) if kind == 1 else _colour(rng, 0, 60))


def _stroke(rng: np.random.Generator, w: int, h: int) -> dict:
    """One element of a scene: an ellipse, a box, a polygon or a stroke, of any size."""
    side = min(w, h)
    x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
    s = int(rng.integers(side // 20, side // 2))
    box = [x0, y0, x0 + int(s * rng.uniform(0.5, 2)), y0 + int(s * rng.uniform(0.5, 2))]
    points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(int(rng.integers(3, 7)))]
    kind = ("ellipse", "rectangle", "polygon", "line")[int(rng.integers(0, 4))]
    return dict(kind=kind, box=box, points=points, fill=_colour(rng), width=int(rng.integers(1, 8)))


def _draw(im: Image.Image, strokes: list[dict]) -> Image.Image:
    draw = ImageDraw.Draw(im)
    for s in strokes:
        if s["kind"] in ("ellipse", "rectangle"):
            getattr(draw, s["kind"])(s["box"], fill=s["fill"])
        elif s["kind"] == "polygon":
            draw.polygon(s["points"], fill=s["fill"])
        else:
            draw.line(s["points"], fill=s["fill"], width=s["width"])
    return im


def _finish(rng: np.random.Generator, im: Image.Image) -> Image.Image:
    """Grain one time in four, a soft blur one time in two."""
    if rng.random() < 0.25:
        a = np.asarray(im, np.int16) + rng.integers(-30, 30, (im.height, im.width, 1), dtype=np.int16)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
    return im


def scene(rng: np.random.Generator, w: int | None = None, h: int | None = None) -> Image.Image:
    """3 to 24 elements of any kind on a background, 96 to 512 pixels a side unless given."""
    w = w or int(rng.integers(96, 513))
    h = h or int(rng.integers(96, 513))
    im = _draw(_background(rng, w, h), [_stroke(rng, w, h) for _ in range(int(rng.integers(3, 25)))])
    return _finish(rng, im)


def photo(rng: np.random.Generator, side: int = 128) -> Image.Image:
    """A colour field with a natural image's 1/f amplitude spectrum around a random mean colour."""
    f2 = np.fft.fftfreq(side)[:, None] ** 2 + np.fft.fftfreq(side)[None] ** 2
    f2[0, 0] = 1.0
    noise = np.fft.fft2(rng.standard_normal((3, side, side)))
    field = np.real(np.fft.ifft2(noise / f2**0.75)).transpose(1, 2, 0)
    field = (field - field.mean()) / field.std() * 50 + rng.uniform(60, 200, 3)
    return Image.fromarray(np.clip(field, 0, 255).astype(np.uint8))


def variations(rng: np.random.Generator, n: int, w: int = 256, h: int = 320) -> list[Image.Image]:
    """n variations of one piece of 16 elements: each redraws one element of the one before
    (moved, resized or recoloured), so the k-th and the (k+m)-th differ in up to m elements."""
    ground = _background(rng, w, h)
    strokes = [_stroke(rng, w, h) for _ in range(16)]
    out = []
    for _ in range(n):
        out.append(_draw(ground.copy(), strokes))
        strokes = list(strokes)
        strokes[int(rng.integers(0, len(strokes)))] = _stroke(rng, w, h)
    return out
