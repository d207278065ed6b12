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


# --- the embedding path's speed work (issue 26): same numbers, less work ---------------------------


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


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "F"])
def test_fast_pixels_equal_the_image_processors_for_every_mode_and_aspect(embedder, mode):
    from PIL import Image

    from silva_model.backbone import to_rgb

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


def test_the_draft_variant_is_another_preprocess_and_decodes_jpegs_smaller(tiny_backbone, tmp_path):
    from PIL import Image

    from silva_model.backbone import load_rgb

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


# --- the CLI as a new user meets it -------------------------------------------------------------


def test_help_and_version_answer_without_importing_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from silva_model.cli import main\n"
        "for argv in (['--help'], ['score', '--help'], ['train', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"
    assert "silva 0.1.0" in out and "(default: 32)" in out and "--manifest MANIFEST" in out


def test_silva_train_trains_a_head_from_a_manifest(taste_data, tmp_path, capsys):
    path = write_manifest(
        build_manifest(taste_data.embeddings[:400], taste_data.ratings[:400]), tmp_path / "m.parquet"
    )
    args = ["train", "--manifest", str(path), "--out", str(tmp_path / "head"), "--epochs", "2", "--quiet"]
    assert main([*args, "--device", "cpu"]) == 0
    assert "best epoch" in capsys.readouterr().out and (tmp_path / "head" / "best.safetensors").exists()
    assert main(["train", "--manifest", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "h2")]) == 2


def test_a_head_on_an_unloadable_backbone_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    """The demo's heads record the label `synthetic-demo`: `silva score` used to retry the Hub
    for two minutes, then print a processor error."""
    import huggingface_hub.constants as c

    from silva_model.provenance import BackboneSpec

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    head = save_pretrained(
        OrdinalHead(
            HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=BackboneSpec(model="synthetic-demo"))
        ),
        tmp_path / "demo-head",
    )
    img = write_images(tmp_path / "img", 1)[0]
    assert main(["score", str(img), "--head", str(head), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'synthetic-demo'" in err and "synthetic vectors" in err
    assert main(["score", str(img), "--head", str(head), "--backbone", "not a repo!"]) == 2
    assert "neither a local folder nor a Hub model id" in capsys.readouterr().err
