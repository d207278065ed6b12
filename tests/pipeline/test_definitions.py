"""The one Definitions: the whole graph end to end, and everything described."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_support import (
    checks,
    make_ratings_file,
    meta,
    resources,
    run,
)

from silva_model.metrics import MIN_EVAL_ROWS
from silva_model.provenance import sha256_file


def test_whole_graph_from_a_ratings_file(tiny_backbone, tmp_path, silva_home):
    csv = make_ratings_file(tmp_path / "rated", 80)
    res = run(resources(tiny_backbone, kind="file", path=str(csv)))
    assert res.success
    assert meta(res, "raw_ratings", "dagster/row_count") == 80
    assert meta(res, "image_embeddings", "embedded") == 80 and meta(res, "image_embeddings", "failed") == 0
    assert meta(res, "head", "inputs").startswith("all 48 dimensions")  # 80 ratings: no projection
    # 80 ratings: the report leads with 5-fold out-of-fold metrics over all of them
    assert meta(res, "evaluation", "oof_spearman") == round(meta(res, "evaluation", "oof_spearman"), 4)
    assert "### 5-fold out-of-fold (n = 80)" in meta(res, "evaluation", "report")
    c = checks(res)
    assert (
        c["contract"].passed
        and c["no_near_duplicates_across_splits"].passed
        and c["beats_last_release"].passed
    )

    # MLflow: the run, its params, per-epoch metrics and artifacts are really there
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{silva_home / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["silva"], output_format="list")
    assert len(runs) == 1
    r = runs[0]
    assert r.data.params["epochs"] == "3" and r.data.params["hidden"] == "[32]"
    assert "eval_oof_spearman" in r.data.metrics and "best_val_spearman" in r.data.metrics
    lo, hi = r.data.metrics["eval_oof_spearman_ci_low"], r.data.metrics["eval_oof_spearman_ci_high"]
    assert lo <= r.data.metrics["eval_oof_spearman"] <= hi
    # a test split of a few images is counted, not scored (as on the card and in the summary)
    assert r.data.metrics["eval_test_n"] < MIN_EVAL_ROWS and "eval_test_spearman" not in r.data.metrics
    client = mlflow.MlflowClient()
    # 80 ratings: a blend (its linear part's L2 from inner folds) logs its MLP's 3 epochs
    import json

    released = json.loads(next((silva_home / "releases").glob("2*/config.json")).read_text())
    assert released["head_config"]["selection"]["chosen"] == "blend"
    assert len(client.get_metric_history(r.info.run_id, "val_spearman")) == 3
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"checkpoint", "evaluation"} <= arts
    version = client.get_model_version_by_alias("silva-head", "champion")
    assert str(version.version) == "1"
    # what tells versions apart in the MLflow UI: held-out metrics, data fingerprint, backbone, Dagster run
    assert "out of fold over all 80" in version.description and "trained on" in version.description
    assert "test: 8 image(s), too few to measure" in version.description
    assert version.tags["dagster_run_id"] == res.run_id
    released = Path(meta(res, "hub_release", "release"))
    assert {k: v for k, v in version.tags.items() if k.startswith("sha256:")} == {
        f"sha256:{f.name}": sha256_file(f) for f in released.iterdir()
    }
    assert version.tags["data_fingerprint"] == r.data.params["manifest_fingerprint"]
    assert str(tiny_backbone) in version.tags["backbone"] and len(version.tags["backbone_weights"]) == 64

    # the release folder loads through the same call a user makes
    from silva_model import Scorer

    release = meta(res, "hub_release", "release")
    scorer = Scorer.from_pretrained(release, device="cpu")
    assert scorer.config.embed_dim == 48 and scorer.config.backbone.model == str(tiny_backbone)
    assert len(scorer.config.backbone.weights) == 64  # the weights digest travelled from the embedder
    card = (silva_home / "releases").glob("*/README.md").__next__().read_text()
    assert "n_train" in card and str(tiny_backbone) in card
    assert "not uploaded" in meta(res, "hub_release", "hub")

    # the registry copy serves the same scores, and its signature rejects a wrong width
    served = mlflow.pyfunc.load_model("models:/silva-head@champion")
    x = np.random.default_rng(0).standard_normal((5, 48)).astype(np.float32)
    np.testing.assert_allclose(served.predict(x), scorer.score_embeddings(x), atol=1e-6)
    with pytest.raises(mlflow.exceptions.MlflowException, match="shape"):
        served.predict(x[:, :40])
    logged = Path(mlflow.artifacts.download_artifacts("models:/silva-head@champion"))
    reqs = (logged / "requirements.txt").read_text().split()
    assert (logged / "code" / "silva_model" / "scorer.py").is_file()  # silva is not on PyPI: it travels
    assert any(r.startswith("torch==") for r in reqs) and not any(r.startswith("silva") for r in reqs)
    assert not list(logged.rglob("*.pkl")) and (logged / "pyfunc_head.py").is_file()  # code, not a pickle
    report = meta(res, "evaluation", "report")
    assert "data:image/png;base64" in report and "largest disagreements" in report and "images/" in report


def test_definitions_load_with_sensor_schedule_and_job():
    from silva_pipeline.definitions import defs as load

    defs = load()

    assert defs.resolve_sensor_def("new_ratings_sensor").job_name == "retrain"
    assert defs.resolve_schedule_def("nightly_retrain").cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def("retrain")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "raw_ratings",
        "image_embeddings",
        "manifest",
        "head",
        "out_of_fold",
        "evaluation",
        "hub_release",
        "library",
        "library_scores",
        "rating_queue",
    }
    embed = defs.resolve_job_def("embed_library")
    assert {k.to_user_string() for k in embed.asset_layer.executable_asset_keys} == {"library_embeddings"}


def test_every_asset_check_job_sensor_and_schedule_says_what_it_does():
    """What the Dagster UI shows beside each name (a sensor's docstring is not its description)."""
    from silva_pipeline.assets import ASSET_CHECKS
    from silva_pipeline.definitions import defs as load

    defs = load()

    graph = defs.resolve_asset_graph()
    assert not [k for k in graph.get_all_asset_keys() if not graph.get(k).description]
    assert not [s.key for c in ASSET_CHECKS for s in c.check_specs if not s.description]
    jobs = [j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")]
    assert jobs and not [j.name for j in jobs if not j.description]
    assert not [s.name for s in [*defs.sensors, *defs.schedules] if not s.description]
