"""Decoding every mode to 8-bit RGB, and the fast pixels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    decompression_bomb,
    image_modes,
)
from PIL import Image


def test_every_mode_decodes_to_its_8bit_rgb_twin(tmp_path):
    from silva_model.images import load_rgb

    for mode, (path, twin) in image_modes(tmp_path).items():
        with Image.open(path) as im:
            assert im.mode == mode, (mode, im.mode)
        np.testing.assert_array_equal(np.asarray(load_rgb(path)), twin, err_msg=mode)


def test_every_decode_failure_is_an_oserror_that_says_why(tmp_path):
    from silva_model.images import ImageDecodeError, load_rgb

    with pytest.raises(ImageDecodeError, match="DecompressionBombError: Image size"):
        load_rgb(decompression_bomb(tmp_path / "bomb.png"))
    with pytest.raises(FileNotFoundError):  # a missing file stays what it is
        load_rgb(tmp_path / "gone.png")


def test_cmyk_decodes_close_to_the_rgb_it_came_from(tmp_path):
    from silva_model.images import load_rgb

    rgb = np.zeros((48, 40, 3), np.uint8)
    rgb[:, :20] = (200, 30, 60)
    rgb[:, 20:] = (20, 160, 220)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(np.asarray(load_rgb(tmp_path / "cmyk.jpg")).astype(int) - rgb).mean() < 4


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "F"])
def test_fast_pixels_equal_the_image_processors_for_every_mode_and_aspect(embedder, mode):
    from PIL import Image

    from silva_model.images import to_rgb

    assert embedder.fast_pixels is not None  # SigLIP's processor: resize, rescale, normalise
    rng = np.random.default_rng(0)
    for w, h in ((160, 120), (40, 300), (300, 40), (7, 5), (1, 1), (32, 32)):
        a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if mode == "I;16":
            im = Image.fromarray(a[..., 0].astype(np.uint16) * 257)
        elif mode == "F":
            im = Image.fromarray(a[..., 0].astype(np.float32) / 255.0, "F")
        else:
            im = Image.fromarray(a).convert(mode)
        rgb = to_rgb(im)
        want = embedder.processor(images=rgb, return_tensors="np")["pixel_values"][0]
        got = embedder._pixels(rgb)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
