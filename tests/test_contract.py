"""The model contract on real-world data: embedding scale, backbone provenance, near-duplicates,
and heads published by silva-scorer."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from conftest import TINY_DIM, save_tiny_siglip
from copy_kinds import illustration

from silva_model import Scorer
from silva_model.checkpoint import save_pretrained
from silva_model.cli import main
from silva_model.head import HeadConfig, OrdinalHead
from silva_model.manifest import ManifestError, build_manifest, build_table, load_manifest, write_manifest
from silva_model.provenance import BackboneSpec
from silva_model.splits import assign_split_codes, content_hash
from silva_model.train import TrainConfig, train

FAST = dict(epochs=4, hidden=(64,), batch_size=128, device="cpu")


# --- embedding scale ---------------------------------------------------------------------------


def test_head_scores_any_positive_multiple_of_an_embedding_the_same(taste_data):
    """SigLIP2's pooler_output has a norm of ~15, silva's backbone gives unit norm, pictoria stores
    either: a head must not care. Before, a demo head gave 0.709 for x and 0.991 for 15·x."""
    res = train(
        build_manifest(taste_data.embeddings, taste_data.ratings), TrainConfig(**FAST), progress=False
    )
    scorer = Scorer(res.head, device="cpu")
    x = taste_data.embeddings[:64]
    base = scorer.score_embeddings(x)
    assert base.std() > 0.01  # a head that scores everything alike would pass trivially
    for c in (15.0, 0.01, 3.7):
        np.testing.assert_allclose(scorer.score_embeddings(c * x), base, atol=1e-6)


def test_a_manifest_mixing_norms_trains_as_well_as_a_unit_norm_one(taste_data):
    x, y = taste_data.embeddings, taste_data.ratings
    mixed = x.copy()
    mixed[::2] *= 15.0  # half the rows as raw pooler_output, half L2-normalised
    codes = assign_split_codes(content_hash(x))  # the same splits for both, to compare like for like
    unit = train(build_table(x, y, codes), TrainConfig(**FAST), progress=False)
    mix = train(build_table(mixed, y, codes), TrainConfig(**FAST), progress=False)
    assert mix.best_metrics["spearman"] == pytest.approx(unit.best_metrics["spearman"], abs=0.01)


# --- provenance --------------------------------------------------------------------------------


def test_training_on_a_manifest_that_mixes_backbones_fails_naming_rows(taste_data):
    n = 400
    codes = (np.arange(n) >= 300).astype(np.int32)
    specs = [BackboneSpec(model="google/siglip2-so400m-patch14-384"), BackboneSpec(model="openai/clip-vit")]
    x, y = taste_data.embeddings[:n], taste_data.ratings[:n]
    table = build_table(x, y, assign_split_codes(content_hash(x)), np.arange(n) + 1000, (codes, specs))
    with pytest.raises(ManifestError, match="mixes backbones") as err:
        train(table, TrainConfig(**FAST), progress=False)
    assert "clip-vit" in str(err.value) and "post_id 1300" in str(err.value)


def test_compatible_backbone_specs_merge_and_the_head_records_them(taste_data):
    """Vectors from pictoria (weights unknown) and from silva's embedder (weights known) of the same
    model train together; the head keeps what is known."""
    n = 600
    pictoria = BackboneSpec(model="google/siglip2-so400m-patch14-384", pooling="pooler_output")
    silva = BackboneSpec(
        model="google/siglip2-so400m-patch14-384", weights="ab" * 32, pooling="pooler_output"
    )
    x, y = taste_data.embeddings[:n], taste_data.ratings[:n]
    table = build_table(
        x, y, assign_split_codes(content_hash(x)), None, ((np.arange(n) % 2), [pictoria, silva])
    )
    res = train(table, TrainConfig(**FAST), progress=False)
    assert res.head.config.backbone == silva


@pytest.fixture(scope="module")
def other_backbone(tmp_path_factory):
    return save_tiny_siglip(tmp_path_factory.mktemp("other-siglip"), seed=1)


def test_silva_score_refuses_a_head_from_another_backbone_unless_told(
    tiny_backbone, other_backbone, tmp_path, capsys
):
    from silva_model.backbone import SiglipEmbedder

    spec = SiglipEmbedder(tiny_backbone, device="cpu").spec
    head = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=spec)), tmp_path / "h"
    )
    img = tmp_path / "a.png"
    illustration(np.random.default_rng(0)).save(img)
    assert main(["score", str(img), "--head", str(head), "--device", "cpu"]) == 0
    capsys.readouterr()
    args = ["score", str(img), "--head", str(head), "--device", "cpu", "--backbone", str(other_backbone)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "trained on embeddings of" in err and "weights" in err and "--allow-backbone-mismatch" in err
    assert main([*args, "--allow-backbone-mismatch"]) == 0


def test_demo_size_comes_from_the_environment(monkeypatch):
    from silva_pipeline.definitions import default_resources

    monkeypatch.setenv("SILVA_DEMO_SIZE", "321")
    assert default_resources()["ratings_source"].demo_size == 321


# --- heads published by silva-scorer -------------------------------------------------------------


SILVA_SCORER = "silva-scorer==0.4.0"


@pytest.fixture(scope="session")
def silva_scorer(tmp_path_factory):
    """The real `silva-scorer` package, installed beside (not into) this environment: it ships a
    console script also named `silva`, which would shadow silva's own CLI in the project's venv."""
    import shutil
    import subprocess
    import sys

    target = tmp_path_factory.mktemp("silva-scorer")
    uv = os.environ.get("UV") or shutil.which("uv")
    out = subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--no-deps",
            "--target",
            str(target),
            "--python",
            sys.executable,
            SILVA_SCORER,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    sys.path.insert(0, str(target))
    try:
        from silva.models.aesthetic import N_CAL_KNOTS, EmbeddingAestheticModel

        yield N_CAL_KNOTS, EmbeddingAestheticModel
    finally:
        sys.path.remove(str(target))
        for name in [m for m in sys.modules if m == "silva" or m.startswith("silva.")]:
            del sys.modules[name]


@pytest.mark.parametrize("calibrated", [False, True])
def test_scorer_loads_a_silva_scorer_head_and_scores_like_its_own_code(tmp_path, calibrated, silva_scorer):
    N_CAL_KNOTS, EmbeddingAestheticModel = silva_scorer  # noqa: N806 - silva-scorer's own names

    torch.manual_seed(0)
    theirs = EmbeddingAestheticModel(1152, dropout=0.3, hidden_dims=[1024, 512, 256], n_residual_blocks=1)
    with torch.no_grad():
        theirs.head.base_threshold.fill_(-1.0)  # non-trivial thresholds, not the zeros of a fresh model
        theirs.head.raw_deltas.normal_()
    if calibrated:
        theirs.set_calibration(torch.linspace(-3, 3, N_CAL_KNOTS), torch.linspace(0, 1, N_CAL_KNOTS) ** 2)
    theirs.save_pretrained(tmp_path / "published")
    assert json.loads((tmp_path / "published" / "config.json").read_text())["hidden_dims"] == [1024, 512, 256]

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1152)).astype(np.float32)
    x *= 15.0 / np.linalg.norm(x, axis=1, keepdims=True)  # raw pooler_output scale
    with torch.no_grad():
        expected = theirs.eval()(torch.from_numpy(x))["calibrated_score"].numpy()

    scorer = Scorer.from_pretrained(tmp_path / "published", device="cpu")
    got = scorer.score_embeddings(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert got.std() > 1e-3
    np.testing.assert_allclose(scorer.score_embeddings(x / 15.0), got, atol=1e-5)  # unit-norm input too
    assert scorer.config.backbone.model == "google/siglip2-so400m-patch14-384"
    assert set(np.unique(scorer.predict(x)[1])) <= set(range(1, 6))


def test_written_manifest_keeps_provenance_and_threshold(taste_data, tmp_path):
    spec = BackboneSpec(model="m", weights="cd" * 32)
    path = write_manifest(
        build_manifest(taste_data.embeddings[:300], taste_data.ratings[:300], backbone=spec),
        tmp_path / "m.parquet",
    )
    m = load_manifest(path)
    assert m.backbone() == spec
    import pyarrow.parquet as pq

    from silva_model.copies import DEFAULT_COPY_RULE
    from silva_model.manifest import copy_rule_of

    assert copy_rule_of(pq.read_table(path)) == DEFAULT_COPY_RULE
