"""The SigLIP embedder: unit-norm embeddings, pinned preprocessing, failures, the tower alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import (
    TINY_DIM,
    image_modes,
    write_images,
)
from PIL import Image

from silva_model import HeadConfig
from silva_model.backbone import SiglipEmbedder


def test_embeddings_are_unit_norm_float32_and_batch_independent(embedder, tmp_path):
    paths = write_images(tmp_path, 7)
    res = embedder.embed_paths(paths)
    assert res.indices == list(range(7)) and not res.failures
    assert res.embeddings.shape == (7, TINY_DIM) and res.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1, atol=1e-5)
    single = embedder.embed_paths(paths[4:5]).embeddings[0]
    np.testing.assert_allclose(single, res.embeddings[4], atol=1e-5)  # batching does not change results
    from silva_model.images import load_rgb

    np.testing.assert_allclose(embedder.embed_images([load_rgb(paths[4])])[0], single, atol=1e-6)


def test_preprocessing_is_pil_bicubic_whatever_is_installed(embedder, tmp_path):
    """The pixels are PIL's bicubic resize scaled to [-1, 1], computed here without transformers:
    the torchvision backend (picked by default when torchvision is present) resizes differently."""
    from PIL import Image

    from silva_model.images import load_rgb

    path = write_images(tmp_path, 1, size=(90, 70))[0]
    size = embedder.model.config.image_size  # the vision tower alone is loaded
    want = np.asarray(load_rgb(path).resize((size, size), Image.Resampling.BICUBIC), np.float32)
    want = (want / 255.0 - 0.5) / 0.5
    np.testing.assert_allclose(embedder._load_pixels(str(path)), want.transpose(2, 0, 1), atol=1e-5)


def test_unreadable_images_are_reported_by_path_and_skipped(embedder, tmp_path):
    good = write_images(tmp_path, 4)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[1].read_bytes()[:60])
    res = embedder.embed_paths([good[0], corrupt, good[1], tmp_path / "missing.png", truncated, good[2]])
    assert res.indices == [0, 2, 5]
    failed = {f.path: f.error for f in res.failures}
    assert set(failed) == {str(corrupt), str(tmp_path / "missing.png"), str(truncated)}
    assert "FileNotFoundError" in failed[str(tmp_path / "missing.png")]


def test_default_backbone_width_is_1152():
    """The real google/siglip2-so400m-patch14-384 vision config, built on the meta device (no
    weights): the embedding the head reads is 1152-d, as HeadConfig assumes."""
    from transformers import AutoModel, SiglipConfig

    from silva_model.random_siglip import SO400M_VISION_CONFIG

    real = SiglipConfig(vision_config=SO400M_VISION_CONFIG)
    with torch.device("meta"):
        model = AutoModel.from_config(real)
        out = model.get_image_features(pixel_values=torch.empty(2, 3, 384, 384))
    assert out.pooler_output.shape == (2, 1152)
    assert (
        HeadConfig().embed_dim == 1152 and HeadConfig().backbone.model == "google/siglip2-so400m-patch14-384"
    )


def test_the_vision_tower_alone_embeds_bit_identically_to_the_whole_model(embedder, tiny_backbone, tmp_path):
    from transformers import AutoModel

    whole = AutoModel.from_pretrained(tiny_backbone, attn_implementation="sdpa").eval()
    assert not hasattr(embedder.model, "text_model")  # the text tower was never loaded
    assert sum(p.numel() for p in embedder.model.parameters()) < sum(p.numel() for p in whole.parameters())
    px = np.stack([embedder._load_pixels(str(p)) for p in write_images(tmp_path, 5, size=(50, 70))])
    with torch.inference_mode():
        out = whole.get_image_features(pixel_values=torch.as_tensor(px))
    want = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).numpy()
    assert np.array_equal(embedder.embed_pixels(px), want)


def test_the_draft_variant_is_another_preprocess_and_decodes_jpegs_smaller(tiny_backbone, tmp_path):
    from PIL import Image

    from silva_model.images import load_rgb

    draft = SiglipEmbedder(tiny_backbone, device="cpu", preprocess="draft")
    exact = SiglipEmbedder(tiny_backbone, device="cpu")
    assert json.loads(draft.spec.preprocess)["jpeg_draft"] is True
    assert "jpeg_draft" not in json.loads(exact.spec.preprocess)  # the exact spec is today's, unchanged
    assert draft.spec != exact.spec  # so their embeddings never pass for each other
    path = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(path)
    assert load_rgb(path, draft.draft).size == (50, 38)  # 1/8 scale: still at least 32 x 32
    assert draft.embed_paths([path]).embeddings.shape == (1, TINY_DIM)
    with pytest.raises(ValueError, match="preprocess"):
        SiglipEmbedder(tiny_backbone, device="cpu", preprocess="fast")


def test_a_16_bit_image_scores_like_its_8_bit_twin_not_like_white(tiny_backbone, tmp_path):
    """Before, a 16-bit PNG was clipped to near-white (cosine 0.9989 to white, 0.0475 to its twin)."""
    from silva_model.backbone import SiglipEmbedder

    path, twin = image_modes(tmp_path)["I;16"]
    Image.fromarray(twin).save(tmp_path / "twin.png")
    Image.new("RGB", (40, 48), (255, 255, 255)).save(tmp_path / "white.png")
    e = SiglipEmbedder(tiny_backbone, device="cpu").embed_paths(
        [path, tmp_path / "twin.png", tmp_path / "white.png"]
    )
    x = e.embeddings
    assert float(x[0] @ x[1]) > 0.9999 and float(x[0] @ x[2]) < float(x[0] @ x[1]) - 0.01
