"""Training: learning the planted taste, determinism, config, calibration, mixed inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import (
    FAST_TRAIN,
    SMALL_TRAIN,
)

from silva_model import Scorer
from silva_model import evaluate as evaluate_mod
from silva_model import train_config as train_mod
from silva_model.head import OrdinalHead
from silva_model.manifest import ManifestError, build_manifest, build_table, load_manifest
from silva_model.metrics import spearman
from silva_model.provenance import BackboneSpec
from silva_model.release import load_head, save_pretrained
from silva_model.splits import assign_split_codes, content_hash
from silva_model.train import train
from silva_model.train_config import TrainConfig


def test_trained_head_learns_the_planted_taste(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**FAST_TRAIN), tmp_path, progress=False)
    # chance is 0; the oracle (noiseless taste) reaches ~0.87 on this data. A broken head (wrong
    # target direction, crossed thresholds, no learning) lands near 0 or below.
    assert res.best_metrics["spearman"] > 0.6
    assert res.best_metrics["qwk"] > 0.5
    assert 1 <= res.best_epoch <= FAST_TRAIN["epochs"] and len(res.history) == FAST_TRAIN["epochs"]
    meta = json.loads((tmp_path / "best.json").read_text())
    assert meta["epoch"] == res.best_epoch
    assert meta["manifest_fingerprint"] == load_manifest(manifest_path).fingerprint()
    assert meta["val_metrics"]["spearman"] == pytest.approx(res.best_metrics["spearman"])
    # the checkpoint on disk is the best epoch, not the last one
    head, _ = load_head(tmp_path)
    rep = evaluate_mod.evaluate(head, manifest_path, "val")
    assert rep.metrics["spearman"] == pytest.approx(res.best_metrics["spearman"], abs=1e-6)


def test_shuffled_labels_do_not_learn(manifest_path, taste_data, tmp_path):
    """The bound above is meaningful: the same trainer on permuted ratings stays near chance."""
    y = np.random.default_rng(0).permutation(taste_data.ratings)
    res = train(build_manifest(taste_data.embeddings, y), TrainConfig(**FAST_TRAIN), progress=False)
    test = load_manifest(build_manifest(taste_data.embeddings, y), required_splits=())
    x, yt = test.subset("test")
    s = Scorer(res.head, device="cpu").score_embeddings(x)
    assert abs(spearman(yt, s)) < 0.2


def test_training_is_deterministic_on_cpu(manifest_path):
    cfg = TrainConfig(**{**FAST_TRAIN, "epochs": 2})
    a = train(manifest_path, cfg, progress=False)
    b = train(manifest_path, cfg, progress=False)
    for (k, va), vb in zip(a.head.state_dict().items(), b.head.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert a.history == b.history


def test_unknown_config_option_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.01\nepoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epoch'\]"):
        TrainConfig.from_yaml(p)


def test_yaml_exponent_floats_are_read_as_numbers(tmp_path):
    """PyYAML reads `3e-3` (no dot) as a string; a person writing it means the number."""
    p = tmp_path / "c.yaml"
    p.write_text("lr: 3e-3\nweight_decay: 1E-2\nepochs: 3\n")
    cfg = TrainConfig.from_yaml(p)
    assert cfg.lr == 0.003 and cfg.weight_decay == 0.01 and cfg.epochs == 3


@pytest.mark.parametrize(
    ("option", "value"),
    [("dropout", "abc"), ("epochs", 2.5), ("epochs", True), ("calibrate", "yes"), ("hidden", ["wide"])],
)
def test_an_option_of_the_wrong_type_is_named(option, value):
    with pytest.raises(ValueError, match=rf"training option {option} must be"):
        TrainConfig.from_dict({option: value})


def test_absent_class_in_train_warns_but_trains(taste_data):
    keep = taste_data.ratings != 5
    t = build_manifest(taste_data.embeddings[keep], taste_data.ratings[keep])
    with pytest.warns(UserWarning, match=r"no examples of rating\(s\) \[5\]"):
        res = train(t, TrainConfig(**{**FAST_TRAIN, "epochs": 2}), progress=False)
    assert np.isfinite(res.history[-1]["train_loss"])


def test_calibration_spreads_expected_ratings_without_reordering_anything(taste_data, tmp_path):
    """Histogram specification onto the train ratings: the same ranking (Spearman and QWK equal to
    the last digit), but rated-1 images get a lower and rated-5 images a higher expected rating.
    The ordinal loss alone compresses toward the middle, so that head is the one calibrated here
    (the rank term spreads on its own; calibrated, both land on the same level means)."""
    from silva_model.head import predict
    from silva_model.manifest import build_manifest, to_arrays
    from silva_model.metrics import compute_metrics, level_bias
    from silva_model.release import load_head

    arrays = to_arrays(build_manifest(taste_data.embeddings, taste_data.ratings))
    xt, yt = arrays.subset("test")
    cfg = {**FAST_TRAIN, "epochs": 6, "rank_weight": 0.0}
    raw = train(arrays, TrainConfig(**cfg, calibrate=False), progress=False).head
    cal = train(arrays, TrainConfig(**cfg, calibrate=True), progress=False).head
    (s0, p0), (s1, p1) = predict(raw, xt), predict(cal, xt)
    m0, m1 = compute_metrics(yt, s0, p0), compute_metrics(yt, s1, p1)
    assert m1["spearman"] == pytest.approx(m0["spearman"], abs=1e-12) and m1["qwk"] == m0["qwk"]
    b0, b1 = level_bias(yt, s0), level_bias(yt, s1)
    assert b1[1][1] < b0[1][1] and b1[5][1] > b0[5][1]
    ranked = train(arrays, TrainConfig(**{**cfg, "rank_weight": 1.0}, calibrate=True), progress=False)
    b2 = level_bias(yt, predict(ranked.head, xt)[0])
    assert all(abs(b2[k][1] - b1[k][1]) < 0.1 for k in b1)
    assert np.allclose(predict(cal, xt[:1])[0], s1[:1], atol=1e-6)  # one image scores as in a batch
    # the table travels in the weights; heads saved before calibration still load, uncalibrated
    folder = save_pretrained(cal, tmp_path / "cal")
    np.testing.assert_allclose(predict(load_head(folder)[0], xt)[0], s1, atol=1e-6)
    from safetensors.torch import load_file, save_file

    state = {k: v for k, v in load_file(folder / "model.safetensors").items() if not k.startswith("cal_")}
    save_file(state, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    del config["files"]  # a head released before calibration recorded no digests either
    (folder / "config.json").write_text(json.dumps(config))
    old = load_head(folder)[0]
    assert isinstance(old, OrdinalHead) and not bool(old.cal_fitted)
    with torch.no_grad():
        out = old(torch.from_numpy(xt))
    np.testing.assert_allclose(out.score.numpy(), torch.sigmoid(out.logits).mean(-1).numpy(), atol=1e-7)


def test_auto_input_components_follow_the_train_size():
    auto = TrainConfig()
    assert auto.components_for(train_mod.AUTO_COMPONENTS_FROM - 1, 1152) == 0
    assert auto.components_for(train_mod.AUTO_COMPONENTS_FROM, 1152) == train_mod.AUTO_COMPONENTS
    assert auto.components_for(train_mod.AUTO_COMPONENTS_FROM, 128) == 0  # auto only projects to reduce
    assert TrainConfig(input_components=64).components_for(5000, 48) == 48  # never more than the dimensions
    assert TrainConfig(input_components=0).components_for(50_000, 1152) == 0
    assert TrainConfig(input_components=64).components_for(30, 1152) == 29  # nor than the rows span
    with pytest.raises(ValueError, match="input_components"):
        TrainConfig(input_components=-2)


def test_auto_rank_weight_follows_the_train_size():
    auto = TrainConfig()
    assert auto.rank_weight_for(train_mod.AUTO_RANK_BELOW - 1) == train_mod.AUTO_RANK_WEIGHT
    assert auto.rank_weight_for(train_mod.AUTO_RANK_BELOW) == 0.0
    assert TrainConfig(rank_weight=0).rank_weight_for(100) == 0.0
    assert TrainConfig(rank_weight=0.3).rank_weight_for(50_000) == 0.3
    assert auto.chosen_by_size(200, 1152) == {"input_components": 0, "rank_weight": 1.0, "model": "auto"}
    with pytest.raises(ValueError, match="rank_weight"):
        TrainConfig(rank_weight=-0.5)


def test_auto_rank_weight_trains_the_head_an_explicit_weight_trains(manifest_path):
    """Auto is the explicit weight the size calls for, not a third recipe (CPU runs are deterministic)."""
    cfg = {**FAST_TRAIN, "epochs": 2}
    states = [
        train(manifest_path, TrainConfig(**cfg, rank_weight=w), progress=False).head.state_dict()
        for w in (-1, train_mod.AUTO_RANK_WEIGHT, 0)
    ]
    assert all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(states[0].values(), states[2].values(), strict=True))


def test_a_projected_head_learns_and_its_release_scores_the_same(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**FAST_TRAIN, input_components=32), progress=False)
    assert res.head.config.input_components == 32 and res.head.mlp.weights[0].shape[1] == 32
    assert res.best_metrics["spearman"] > 0.5  # chance is 0; at 2,400 train ratings it trails the default
    release = Scorer(res.head, device="cpu").save_pretrained(tmp_path / "release")
    assert json.loads((release / "config.json").read_text())["head_config"]["input_components"] == 32
    assert "32 principal components" in (release / "README.md").read_text()
    x, _ = load_manifest(manifest_path).subset("test")
    np.testing.assert_allclose(
        Scorer.from_pretrained(release, device="cpu").score_embeddings(x),
        Scorer(res.head, device="cpu").score_embeddings(x),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_manifest_mixing_norms_trains_as_well_as_a_unit_norm_one(taste_data):
    x, y = taste_data.embeddings, taste_data.ratings
    mixed = x.copy()
    mixed[::2] *= 15.0  # half the rows as raw pooler_output, half L2-normalised
    codes = assign_split_codes(content_hash(x))  # the same splits for both, to compare like for like
    unit = train(build_table(x, y, codes), TrainConfig(**SMALL_TRAIN), progress=False)
    mix = train(build_table(mixed, y, codes), TrainConfig(**SMALL_TRAIN), progress=False)
    assert mix.best_metrics["spearman"] == pytest.approx(unit.best_metrics["spearman"], abs=0.01)


def test_training_on_a_manifest_that_mixes_backbones_fails_naming_rows(taste_data):
    n = 400
    codes = (np.arange(n) >= 300).astype(np.int32)
    specs = [BackboneSpec(model="google/siglip2-so400m-patch14-384"), BackboneSpec(model="openai/clip-vit")]
    x, y = taste_data.embeddings[:n], taste_data.ratings[:n]
    table = build_table(x, y, assign_split_codes(content_hash(x)), np.arange(n) + 1000, (codes, specs))
    with pytest.raises(ManifestError, match="mixes backbones") as err:
        train(table, TrainConfig(**SMALL_TRAIN), progress=False)
    assert "clip-vit" in str(err.value) and "post_id 1300" in str(err.value)


def test_averaged_epochs_keep_the_mean_of_the_later_epochs_weights(manifest_path, tmp_path, monkeypatch):
    """With average_from the head kept (and checkpointed) is the mean of the weights evaluated at
    the end of that epoch and every later one, not the epoch that scored best on val."""
    from silva_model import training_loop

    seen: list[dict[str, torch.Tensor]] = []
    val_metrics = training_loop.TrainData.val_metrics

    def record(self, head):
        seen.append({k: v.detach().clone() for k, v in head.state_dict().items()})
        return val_metrics(self, head)

    monkeypatch.setattr(training_loop.TrainData, "val_metrics", record)
    cfg = TrainConfig(**FAST_TRAIN, model="mlp", average_from=3)
    res = train(manifest_path, cfg, tmp_path, progress=False)
    # each epoch evaluates the EMA's weights, then, from epoch 3, the average so far
    ends = [seen[0], seen[1], *seen[2:-1:2]]
    assert len(ends) == FAST_TRAIN["epochs"] and res.best_epoch == FAST_TRAIN["epochs"]
    for k, v in res.head.state_dict().items():
        if v.is_floating_point() and not k.startswith("cal_"):  # calibration: fitted after
            want = torch.stack([e[k] for e in ends[2:]]).mean(0)
            torch.testing.assert_close(v, want, rtol=1e-5, atol=1e-6, msg=k)
    saved, _ = load_head(tmp_path)
    for k, v in saved.state_dict().items():
        torch.testing.assert_close(v, res.head.state_dict()[k], msg=k)
    assert TrainConfig(model="blend").averaged_from() == train_mod.AVERAGE_FROM
    assert TrainConfig(model="mlp").averaged_from() == 0
    with pytest.raises(ValueError, match="average_from"):
        TrainConfig(average_from=-2)


def test_a_run_stopped_before_its_average_starts_still_leaves_a_head(manifest_path, tmp_path):
    """Breaker: a blend stopped in epoch 3 (its MLP averages from epoch 5) left no checkpoint."""

    def stop(row: dict) -> None:
        if row["epoch"] == 3:
            raise KeyboardInterrupt

    cfg = TrainConfig(**(FAST_TRAIN | {"epochs": 8}), model="blend", linear_l2=16.0)
    with pytest.raises(KeyboardInterrupt):
        train(manifest_path, cfg, tmp_path, progress=False, on_epoch=stop)
    head, meta = load_head(tmp_path)
    assert meta["epoch"] == 2 and head is not None  # on_epoch stops epoch 3 before it is written
    from silva_model.training_loop import kept

    assert kept(cfg, 2) == "epoch 2/8, stopped before its average began"  # not "epochs 5-8 averaged"
    assert kept(cfg, 6) == "epochs 5-6 averaged" and kept(cfg, 8) == "epochs 5-8 averaged"


def test_a_checkpoint_from_before_averaging_keeps_its_best_epoch(manifest_path, tmp_path):
    """A blend trained before `average_from` existed kept its best epoch: loaded, its config says
    so (breaker: it read as averaged, and its fold heads would have trained averaged)."""
    from silva_model.release import TrainedHead
    from silva_model.training_loop import kept

    res = train(manifest_path, TrainConfig(**FAST_TRAIN, model="mlp"), tmp_path, progress=False)
    meta = json.loads((tmp_path / "best.json").read_text())
    del meta["train_config"]["average_from"]
    meta["train_config"]["model"] = "blend"
    (tmp_path / "best.json").write_text(json.dumps(meta))
    old = TrainedHead.load(tmp_path)
    assert old.train_config.averaged_from() == 0
    assert kept(old.train_config, res.best_epoch) == f"best epoch {res.best_epoch}/{FAST_TRAIN['epochs']}"
    assert TrainConfig.from_dict({"model": "blend"}).averaged_from() == train_mod.AVERAGE_FROM  # options
