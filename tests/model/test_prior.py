"""A published judge as the starting point: baked into the release, fitted to the person's ratings,
and refused when it reads other embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import FAST_TRAIN

from silva_model.head import HeadConfig, OrdinalHead, predict
from silva_model.manifest import build_manifest, to_arrays
from silva_model.metrics import spearman
from silva_model.prior import PriorError, fit_judge_mix
from silva_model.provenance import BackboneMismatchError, BackboneSpec, sha256_file
from silva_model.release import IntegrityError, head_for, load_head, save_pretrained
from silva_model.synthetic import make_taste_dataset
from silva_model.train import main as train_main
from silva_model.train import train
from silva_model.train_config import TrainConfig

DIM = 64
TASTE = dict(dim=DIM, world_seed=5)


def arrays_of(n: int, seed: int, backbone: BackboneSpec | None = None, **taste):
    d = make_taste_dataset(n, seed=seed, **{**TASTE, **taste})
    return to_arrays(build_manifest(d.embeddings, d.ratings, dim=DIM, backbone=backbone), dim=DIM)


@pytest.fixture(scope="module")
def fresh():
    """Images none of the heads trained on, rated by the person."""
    return make_taste_dataset(2000, seed=99, **TASTE)


@pytest.fixture(scope="module")
def silva_judge(tmp_path_factory):
    """A silva release trained on 3,000 ratings of the person's own taste (a related judge)."""
    res = train(arrays_of(3000, seed=1), TrainConfig(**FAST_TRAIN), progress=False)
    return save_pretrained(res.head, tmp_path_factory.mktemp("judge") / "related")


def test_a_silva_scorer_judge_is_baked_into_the_release_with_its_provenance(tmp_path, silva_scorer, fresh):
    _, EmbeddingAestheticModel = silva_scorer  # noqa: N806 - silva-scorer's own name
    torch.manual_seed(0)
    EmbeddingAestheticModel(DIM, dropout=0.1, hidden_dims=[32], n_residual_blocks=1).save_pretrained(
        tmp_path / "published"
    )
    published = load_head(tmp_path / "published")[0].state_dict()
    digests = {
        name: sha256_file(tmp_path / "published" / name) for name in ("config.json", "model.safetensors")
    }
    res = train(
        arrays_of(200, seed=2), TrainConfig(**FAST_TRAIN, prior=str(tmp_path / "published")), progress=False
    )
    assert res.head.has_judge
    before = predict(res.head, fresh.embeddings)[0]
    save_pretrained(res.head, tmp_path / "release")
    for f in (tmp_path / "published").iterdir():
        f.unlink()  # the release must score alone, without the judge's folder

    head, meta = load_head(tmp_path / "release")
    np.testing.assert_allclose(predict(head, fresh.embeddings)[0], before, atol=1e-6)
    prior = meta["head_config"]["prior"]
    assert (prior["kind"], prior["source"], prior["revision"]) == (
        "silva-scorer",
        str(tmp_path / "published"),
        "",
    )
    assert prior["files"] == digests
    card = (tmp_path / "release" / "README.md").read_text()
    assert digests["model.safetensors"] in card and "learned weight" in card
    # the judge is frozen: training changed none of its weights
    judge = head.judge.state_dict()
    assert judge.keys() == published.keys()
    for name, value in published.items():
        torch.testing.assert_close(judge[name], value, rtol=0, atol=0)


def test_a_related_judge_lifts_a_small_head_and_an_unrelated_one_gets_little_weight(
    tmp_path, silva_judge, fresh
):
    person = arrays_of(80, seed=3)
    mlp = dict(FAST_TRAIN, model="mlp")  # the MLP's judge weighting (a linear head's: test_select.py)
    scratch = train(person, TrainConfig(**mlp), progress=False).head
    judged = train(person, TrainConfig(**mlp, prior=str(silva_judge)), progress=False).head
    other = train(arrays_of(3000, seed=1, world_seed=77), TrainConfig(**FAST_TRAIN), progress=False).head
    unrelated = train(
        person,
        TrainConfig(**mlp, prior=str(save_pretrained(other, tmp_path / "other"))),
        progress=False,
    ).head

    def rho(head: OrdinalHead) -> float:
        return spearman(fresh.ratings, predict(head, fresh.embeddings)[0])

    assert rho(judged) > rho(scratch) + 0.05
    assert judged.learned_judge_weight > 0.5
    assert abs(unrelated.learned_judge_weight) < 0.5 * judged.learned_judge_weight


def _judged_head() -> OrdinalHead:
    judge = HeadConfig(embed_dim=DIM, hidden=(8,)).to_dict()
    return head_for(HeadConfig(embed_dim=DIM, hidden=(8,), prior={"kind": "silva", "config": judge}))


@pytest.mark.parametrize("truth", ["judge", "personal"])
def test_the_out_of_fold_fit_weighs_the_part_that_predicts_the_ratings(truth):
    g = torch.Generator().manual_seed(0)
    personal, judge = torch.randn(2, 400, generator=g)
    taste = (2.0 if truth == "judge" else 0.0) * judge + (2.0 if truth == "personal" else 0.0) * personal
    y = 1 + torch.bucketize(taste + 0.3 * torch.randn(400, generator=g), torch.tensor([-1.5, -0.5, 0.5, 1.5]))
    head = _judged_head()
    output_layer = head.mlp.weights[-1].detach().clone()
    before = head.judge_weight.detach() * judge + personal

    scale = fit_judge_mix(head, personal, personal, judge, y)

    # the MLP's part, rescaled
    torch.testing.assert_close(head.mlp.weights[-1].detach(), output_layer * scale)
    if truth == "judge":
        assert head.learned_judge_weight > 5 * scale
    else:
        assert abs(head.learned_judge_weight) < 0.2 * scale
    after = head.judge_weight.detach() * judge + scale * personal
    assert float(after.std()) == pytest.approx(float(before.std()), rel=1e-4)  # the spread the bars know


def test_the_inner_folds_weigh_the_judge_and_a_tiny_train_split_keeps_its_learned_weight(silva_judge):
    judged = TrainConfig(**FAST_TRAIN, model="mlp", prior=str(silva_judge))
    res = train(arrays_of(200, seed=3), judged, progress=False)
    assert res.personal_scale is not None and res.personal_scale >= 0
    assert train(arrays_of(200, seed=3), TrainConfig(**FAST_TRAIN), progress=False).personal_scale is None
    # 5 folds of fewer than 10 train rows say nothing; the weight stays as training learned it
    assert train(arrays_of(40, seed=3), judged, progress=False).personal_scale is None
    with pytest.raises(ValueError, match="judge_folds"):
        TrainConfig(judge_folds=1)


def test_silva_train_takes_a_prior_and_says_its_weight(tmp_path, silva_judge, capsys):
    from silva_model.manifest import build_manifest
    from silva_model.parquet import write_parquet

    d = make_taste_dataset(120, seed=4, **TASTE)
    manifest = write_parquet(build_manifest(d.embeddings, d.ratings, dim=DIM), tmp_path / "m.parquet")
    config = tmp_path / "train.yaml"
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in FAST_TRAIN.items()}
    config.write_text(json.dumps(options | {"model": "mlp"}))  # the MLP's personal part is weighed on folds
    argv = ["--manifest", str(manifest), "--out", str(tmp_path / "out"), "--config", str(config), "--quiet"]
    assert train_main([*argv, "--prior", str(silva_judge)]) == 0
    out = capsys.readouterr().out
    assert "learned weight" in out and "fitted on 5 inner folds" in out
    head, meta = load_head(tmp_path / "out")
    assert head.has_judge and meta["train_config"]["prior"] == str(silva_judge)


def test_a_judge_of_another_width_or_backbone_is_a_named_error(tmp_path, capsys):
    narrow = save_pretrained(OrdinalHead(HeadConfig(embed_dim=32, hidden=(8,))), tmp_path / "narrow")
    with pytest.raises(PriorError, match=r"reads 32-d embeddings, but these are 64-d"):
        train(arrays_of(60, seed=0), TrainConfig(**FAST_TRAIN, prior=str(narrow)), progress=False)

    elsewhere = save_pretrained(
        OrdinalHead(HeadConfig(embed_dim=DIM, hidden=(8,), backbone="someone/else")), tmp_path / "elsewhere"
    )
    ours = arrays_of(60, seed=0, backbone=BackboneSpec(model="our/backbone"))
    with pytest.raises(BackboneMismatchError, match=r"someone/else.*our/backbone"):
        train(ours, TrainConfig(**FAST_TRAIN, prior=str(elsewhere)), progress=False)


def test_a_tampered_judge_is_refused(tmp_path, silva_judge):
    import shutil

    copy = shutil.copytree(silva_judge, tmp_path / "judge")
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model.safetensors"):
        train(arrays_of(60, seed=0), TrainConfig(**FAST_TRAIN, prior=str(copy)), progress=False)
