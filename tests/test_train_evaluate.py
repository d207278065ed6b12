"""CPU end to end: synthetic ratings -> manifest -> train -> evaluate -> release -> score."""

import json

import numpy as np
import pytest
import torch
import yaml

from silva_model import Scorer
from silva_model import evaluate as evaluate_mod
from silva_model import train as train_mod
from silva_model.checkpoint import load_head
from silva_model.manifest import build_manifest, load_manifest, write_manifest
from silva_model.metrics import spearman
from silva_model.train import TrainConfig, train

FAST = dict(epochs=6, batch_size=128, hidden=(128, 64), seed=3, device="cpu")


@pytest.fixture(scope="module")
def manifest_path(taste_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "manifest.parquet"
    return write_manifest(build_manifest(taste_data.embeddings, taste_data.ratings), path)


def test_trained_head_learns_the_planted_taste(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**FAST), tmp_path, progress=False)
    # chance is 0; the oracle (noiseless taste) reaches ~0.87 on this data. A broken head (wrong
    # target direction, crossed thresholds, no learning) lands near 0 or below.
    assert res.best_metrics["spearman"] > 0.6
    assert res.best_metrics["qwk"] > 0.5
    assert 1 <= res.best_epoch <= FAST["epochs"] and len(res.history) == FAST["epochs"]
    meta = json.loads((tmp_path / "best.json").read_text())
    assert meta["epoch"] == res.best_epoch
    assert meta["manifest_fingerprint"] == load_manifest(manifest_path).fingerprint()
    assert meta["val_metrics"]["spearman"] == pytest.approx(res.best_metrics["spearman"])
    # the checkpoint on disk is the best epoch, not the last one
    head, _ = load_head(tmp_path)
    rep = evaluate_mod.evaluate(head, manifest_path, "val")
    assert rep["metrics"]["spearman"] == pytest.approx(res.best_metrics["spearman"], abs=1e-6)


def test_shuffled_labels_do_not_learn(manifest_path, taste_data, tmp_path):
    """The bound above is meaningful: the same trainer on permuted ratings stays near chance."""
    y = np.random.default_rng(0).permutation(taste_data.ratings)
    res = train(build_manifest(taste_data.embeddings, y), TrainConfig(**FAST), progress=False)
    test = load_manifest(build_manifest(taste_data.embeddings, y), required_splits=())
    x, yt = test.subset("test")
    s = Scorer(res.head, device="cpu").score_embeddings(x)
    assert abs(spearman(yt, s)) < 0.2


def test_training_is_deterministic_on_cpu(manifest_path):
    cfg = TrainConfig(**{**FAST, "epochs": 2})
    a = train(manifest_path, cfg, progress=False)
    b = train(manifest_path, cfg, progress=False)
    for (k, va), vb in zip(a.head.state_dict().items(), b.head.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert a.history == b.history


def test_evaluate_report_and_release_roundtrip(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**{**FAST, "epochs": 3}), progress=False)
    rep = evaluate_mod.evaluate(res.head, manifest_path, "test")
    assert np.array(rep["confusion"]).sum() == rep["metrics"]["n"] == sum(rep["class_counts"].values())
    table = evaluate_mod.format_report(rep)
    assert "| spearman |" in table and "given \\ predicted" in table

    release = Scorer(res.head, device="cpu").save_pretrained(
        tmp_path / "release", metrics={"test": rep["metrics"]}
    )
    assert sorted(p.name for p in release.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (release / "README.md").read_text()
    assert "library_name: silva" in card and f"| {rep['metrics']['spearman']:.4f} |" in card

    scorer = Scorer.from_pretrained(release, device="cpu")
    x, _ = load_manifest(manifest_path).subset("test")
    np.testing.assert_allclose(scorer.score_embeddings(x), rep["score"], rtol=1e-5, atol=1e-6)
    assert scorer.score_embeddings(x).min() >= 0 and scorer.score_embeddings(x).max() <= 1
    with pytest.raises(ValueError, match=r"shape \(N, 1152\)"):
        scorer.score_embeddings(x[:, :10])
    x_bad = x[:3].copy()
    x_bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"rows \[1\] contain NaN"):
        scorer.score_embeddings(x_bad)


def test_module_clis(manifest_path, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({**FAST, "hidden": [64], "epochs": 2}))
    assert (
        train_mod.main(
            [
                "--manifest",
                str(manifest_path),
                "--config",
                str(cfg),
                "--out",
                str(tmp_path / "run"),
                "--quiet",
            ]
        )
        == 0
    )
    assert "best epoch" in capsys.readouterr().out
    assert (
        evaluate_mod.main(
            [
                "--checkpoint",
                str(tmp_path / "run"),
                "--manifest",
                str(manifest_path),
                "--split",
                "val",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "val" and out["metrics"]["n"] > 0 and len(out["confusion"]) == 5


def test_unknown_config_option_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 0.01\nepoch: 3\n")
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epoch'\]"):
        TrainConfig.from_yaml(p)


def test_absent_class_in_train_warns_but_trains(taste_data):
    keep = taste_data.ratings != 5
    t = build_manifest(taste_data.embeddings[keep], taste_data.ratings[keep])
    with pytest.warns(UserWarning, match=r"no examples of rating\(s\) \[5\]"):
        res = train(t, TrainConfig(**{**FAST, "epochs": 2}), progress=False)
    assert np.isfinite(res.history[-1]["train_loss"])


def test_calibration_spreads_expected_ratings_without_reordering_anything(taste_data, tmp_path):
    """Histogram specification onto the train ratings: the same ranking (Spearman and QWK equal to
    the last digit), but rated-1 images get a lower and rated-5 images a higher expected rating."""
    from silva_model.checkpoint import load_head, save_pretrained
    from silva_model.head import OrdinalHead, predict
    from silva_model.manifest import build_manifest, to_arrays
    from silva_model.metrics import compute_metrics, level_bias

    arrays = to_arrays(build_manifest(taste_data.embeddings, taste_data.ratings))
    xt, yt = arrays.subset("test")
    cfg = {**FAST, "epochs": 6}
    raw = train(arrays, TrainConfig(**cfg, calibrate=False), progress=False).head
    cal = train(arrays, TrainConfig(**cfg, calibrate=True), progress=False).head
    (s0, p0), (s1, p1) = predict(raw, xt), predict(cal, xt)
    m0, m1 = compute_metrics(yt, s0, p0), compute_metrics(yt, s1, p1)
    assert m1["spearman"] == pytest.approx(m0["spearman"], abs=1e-12) and m1["qwk"] == m0["qwk"]
    b0, b1 = level_bias(yt, s0), level_bias(yt, s1)
    assert b1[1][1] < b0[1][1] and b1[5][1] > b0[5][1]
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


def test_a_projected_head_learns_and_its_release_scores_the_same(manifest_path, tmp_path):
    res = train(manifest_path, TrainConfig(**FAST, input_components=32), progress=False)
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
