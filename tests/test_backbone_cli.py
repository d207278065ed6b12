"""The SigLIP backbone path from image files to scores, on a tiny random SigLIP loaded through
the same AutoModel / AutoImageProcessor calls as google/siglip2-so400m-patch14-384."""

import json

import numpy as np
import pytest
import torch
from conftest import TINY_DIM, write_images

from silva_model import HeadConfig, OrdinalHead, Scorer
from silva_model.backbone import SiglipEmbedder, expand_image_paths
from silva_model.checkpoint import save_pretrained
from silva_model.cli import main
from silva_model.manifest import build_manifest, write_manifest


@pytest.fixture(scope="module")
def embedder(tiny_backbone):
    return SiglipEmbedder(tiny_backbone, device="cpu", batch_size=3, num_workers=2)


def test_embeddings_are_unit_norm_float32_and_batch_independent(embedder, tmp_path):
    paths = write_images(tmp_path, 7)
    res = embedder.embed_paths(paths)
    assert res.indices == list(range(7)) and not res.failures
    assert res.embeddings.shape == (7, TINY_DIM) and res.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(res.embeddings, axis=1), 1, atol=1e-5)
    single = embedder.embed_paths(paths[4:5]).embeddings[0]
    np.testing.assert_allclose(single, res.embeddings[4], atol=1e-5)  # batching does not change results
    from silva_model.backbone import load_rgb

    np.testing.assert_allclose(embedder.embed_images([load_rgb(paths[4])])[0], single, atol=1e-6)


def test_preprocessing_is_pil_bicubic_whatever_is_installed(embedder, tmp_path):
    """The pixels are PIL's bicubic resize scaled to [-1, 1], computed here without transformers:
    the torchvision backend (picked by default when torchvision is present) resizes differently."""
    from PIL import Image

    from silva_model.backbone import load_rgb

    path = write_images(tmp_path, 1, size=(90, 70))[0]
    size = embedder.model.config.vision_config.image_size
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

    real = SiglipConfig(
        vision_config=dict(
            hidden_size=1152,
            intermediate_size=4304,
            num_hidden_layers=27,
            num_attention_heads=16,
            image_size=384,
            patch_size=14,
        )
    )
    with torch.device("meta"):
        model = AutoModel.from_config(real)
        out = model.get_image_features(pixel_values=torch.empty(2, 3, 384, 384))
    assert out.pooler_output.shape == (2, 1152)
    assert (
        HeadConfig().embed_dim == 1152 and HeadConfig().backbone.model == "google/siglip2-so400m-patch14-384"
    )


@pytest.fixture(scope="module")
def tiny_release(tiny_backbone, tmp_path_factory):
    head = OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(16,), backbone=str(tiny_backbone)))
    return save_pretrained(head, tmp_path_factory.mktemp("rel") / "head")


def test_scorer_scores_files_with_the_heads_backbone(tiny_release, tmp_path):
    scorer = Scorer.from_pretrained(tiny_release, device="cpu")
    paths = write_images(tmp_path, 3)
    batch, scores = scorer.score_paths(paths, scorer.embedder())
    assert batch.indices == [0, 1, 2] and scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))


def test_cli_score_reports_failures_and_exit_code(tiny_release, tmp_path, capsys):
    imgs = write_images(tmp_path / "dir" / "sub", 3)
    (tmp_path / "dir" / "broken.png").write_bytes(b"garbage")
    assert len(expand_image_paths([tmp_path / "dir"])) == 4
    code = main(["score", str(tmp_path / "dir"), "--head", str(tiny_release), "--json", "--device", "cpu"])
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in imgs)
    assert all(
        0 <= r["score"] <= 1 and r["expected_rating"] == pytest.approx(1 + 4 * r["score"], abs=1e-3)
        for r in rows
    )
    assert "broken.png" in err
    assert main(["score", str(imgs[0]), "--head", str(tiny_release)]) == 0
    assert main(["score", str(tmp_path / "dir" / "broken.png"), "--head", str(tiny_release)]) == 2
    assert main(["score", str(imgs[0]), "--head", str(tmp_path / "no-such-head")]) == 2
    assert "no-such-head" in capsys.readouterr().err


def test_cli_score_manifest(tiny_release, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, TINY_DIM)).astype(np.float32)
    m = write_manifest(build_manifest(x, rng.integers(1, 6, 200), dim=TINY_DIM), tmp_path / "m.parquet")
    code = main(
        [
            "score-manifest",
            str(m),
            "--head",
            str(tiny_release),
            "--split",
            "test",
            "--out",
            str(tmp_path / "s.parquet"),
            "--json",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    import pyarrow.parquet as pq

    assert code == 0 and pq.read_table(tmp_path / "s.parquet").num_rows == summary["n"] > 0
