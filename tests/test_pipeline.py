"""Every asset materialized in-process on small data, with the tiny SigLIP backbone."""

import sqlite3
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from pipeline_support import (
    FAST_HEAD,
    append_ratings,
    make_pictoria_db,
    make_ratings_file,
    rated_images,
    resources,
    run,
    write_ratings_csv,
)

from silva_model.provenance import sha256_file


@pytest.fixture(autouse=True)
def silva_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    return tmp_path / "silva-home"


def meta(result, node, key):
    return result.asset_materializations_for_node(node)[0].metadata[key].value


def checks(result):
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_whole_graph_from_a_ratings_file(tiny_backbone, tmp_path, silva_home):
    csv = make_ratings_file(tmp_path / "rated", 80)
    res = run(resources(tiny_backbone, kind="file", path=str(csv)))
    assert res.success
    assert meta(res, "raw_ratings", "dagster/row_count") == 80
    assert meta(res, "image_embeddings", "embedded") == 80 and meta(res, "image_embeddings", "failed") == 0
    assert meta(res, "head", "inputs").startswith("all 48 dimensions")  # 80 ratings: no projection
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
    assert "eval_test_spearman" in r.data.metrics and "best_val_spearman" in r.data.metrics
    lo, hi = r.data.metrics["eval_test_spearman_ci_low"], r.data.metrics["eval_test_spearman_ci_high"]
    assert lo <= r.data.metrics["eval_test_spearman"] <= hi
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(r.info.run_id, "val_spearman")) == 3
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"checkpoint", "evaluation"} <= arts
    version = client.get_model_version_by_alias("silva-head", "champion")
    assert str(version.version) == "1"
    # what tells versions apart in the MLflow UI: test metrics, data fingerprint, backbone, Dagster run
    assert "test: Spearman" in version.description and "trained on" in version.description
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


def test_incremental_embedding_and_resume_after_interruption(tiny_backbone, tmp_path, monkeypatch):
    csv = make_ratings_file(tmp_path / "rated", 20)
    res_defs = resources(tiny_backbone, kind="file", path=str(csv))
    first = ["raw_ratings", "image_embeddings"]
    r1 = run(res_defs, selection=first)
    assert meta(r1, "image_embeddings", "embedded") == 20

    append_ratings(csv, 12, seed=9)  # new ratings arrive
    from silva_model.backbone import SiglipEmbedder

    real = SiglipEmbedder.iter_embed_paths

    def interrupted(self, paths):
        for i, batch in enumerate(real(self, paths)):
            if i == 2:
                raise RuntimeError("simulated interruption")
            yield batch

    monkeypatch.setattr(SiglipEmbedder, "iter_embed_paths", interrupted)
    r2 = run(res_defs, selection=first)
    assert not r2.success  # 2 batches of 4 finished and were flushed to the cache before the crash
    monkeypatch.setattr(SiglipEmbedder, "iter_embed_paths", real)
    r3 = run(res_defs, selection=first)
    assert r3.success
    assert meta(r3, "image_embeddings", "reused_from_cache") == 28
    assert meta(r3, "image_embeddings", "embedded") == 4
    assert meta(r3, "image_embeddings", "dagster/row_count") == 32


def test_bad_rows_are_listed_and_dropped_or_fail(tiny_backbone, tmp_path):
    root = tmp_path / "rated"
    paths, ratings = rated_images(root / "images", 30)
    (root / "images" / "copy.jpg").write_bytes(paths[0].read_bytes())
    (root / "images" / "corrupt.png").write_bytes(b"\x89PNG broken")
    rows = [(p.relative_to(root), r) for p, r in zip(paths, ratings, strict=True)] + [
        ("images/missing.jpg", 3),
        (paths[1].relative_to(root), 0),
        (paths[2].relative_to(root), 6),
        (paths[3].relative_to(root), "great"),
        ("images/copy.jpg", ratings[0] % 5 + 1),
        ("images/corrupt.png", 4),
    ]
    # paths[1..3] appear twice: once fine, once bad; the rated-twice image conflicts with paths[0]
    csv = write_ratings_csv(root / "ratings.csv", rows)
    res_defs = resources(tiny_backbone, kind="file", path=str(csv))
    r = run(res_defs, selection=["raw_ratings", "image_embeddings"])
    assert r.success
    bad = meta(r, "raw_ratings", "bad_rows")
    assert meta(r, "raw_ratings", "bad_rows_count") == 6
    for needle in (
        "missing.jpg",
        "image file is missing",
        "rating '0' is outside 1..5",
        "rating '6' is outside",
        "'great' is not a number",
        "rated differently",
        "copy.jpg",
    ):
        assert needle in bad, needle
    assert meta(r, "raw_ratings", "dagster/row_count") == 30 - 1 + 1  # img 0 and copy dropped, corrupt kept
    assert meta(r, "image_embeddings", "failed") == 1
    assert "corrupt.png" in meta(r, "image_embeddings", "failures")

    r = run(
        res_defs,
        selection=["raw_ratings"],
        run_config={"ops": {"raw_ratings": {"config": {"on_bad_rows": "fail"}}}},
    )
    assert not r.success
    failure = r.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert "6 bad rating row(s)" in failure.description and "ratings.csv row" in failure.description


def test_folder_source(tiny_backbone, tmp_path):
    root = tmp_path / "ratings"
    for rating in (1, 2, 3, 4, 5, 7):
        rated_images(root / str(rating), 3, seed=rating)
    r = run(resources(tiny_backbone, kind="folder", path=str(root)), selection=["raw_ratings"])
    assert r.success and meta(r, "raw_ratings", "dagster/row_count") == 15
    assert "rating '7' is outside 1..5" in meta(r, "raw_ratings", "bad_rows")


def test_pictoria_database_read_only_with_precomputed_vectors(tiny_backbone, tmp_path):
    db, vecs = make_pictoria_db(tmp_path, n=60, n_with_vectors=10)
    before = db.read_bytes()
    res_defs = resources(
        tiny_backbone,
        kind="pictoria",
        path=str(db),
        library_root=str(tmp_path / "library"),
        precomputed_backbone=str(tiny_backbone),
    )
    r = run(res_defs, selection=["raw_ratings", "image_embeddings", "manifest"])
    assert r.success
    assert meta(r, "raw_ratings", "dagster/row_count") == 60  # unrated and duplicate posts skipped
    assert meta(r, "raw_ratings", "precomputed_embeddings") == 10
    assert meta(r, "image_embeddings", "precomputed") == 10 and meta(r, "image_embeddings", "embedded") == 50
    assert db.read_bytes() == before  # silva never writes to pictoria
    import pyarrow.parquet as pq

    from silva_model.manifest import embeddings_from_arrow

    m = pq.read_table(meta(r, "manifest", "dagster/uri"))
    ids = m.column("post_id").to_numpy()
    emb = embeddings_from_arrow(m.column("embedding"))
    np.testing.assert_array_equal(emb[ids == 1][0], vecs[0])  # post 1's vector came from the vec0 table
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0] == 62


def test_failed_blocking_check_stops_training(tiny_backbone, tmp_path):
    csv = make_ratings_file(tmp_path / "rated", 30)
    cfg = {"ops": {**FAST_HEAD["ops"], "manifest": {"config": {"val_fraction": 0.0, "test_fraction": 0.2}}}}
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), run_config=cfg)
    c = checks(r)
    assert not c["contract"].passed and "['val'] are empty" in c["contract"].description
    assert not r.success
    assert r.asset_materializations_for_node("head") == []


def test_release_gate_refuses_a_worse_head_unless_forced(tiny_backbone, tmp_path, silva_home):
    csv = make_ratings_file(tmp_path / "rated", 200)  # a test split large enough to judge
    res_defs = resources(tiny_backbone, kind="file", path=str(csv))
    instance = dg.DagsterInstance.ephemeral()
    assert run(res_defs, instance=instance).success
    # pretend the release in force was perfect: the gate reads the last hub_release materialization
    instance.report_runless_asset_event(
        dg.AssetMaterialization("hub_release", metadata={"test_spearman": 1.0, "release": "perfect"})
    )
    r = run(res_defs, selection=["evaluation", "hub_release"], instance=instance)
    gate = checks(r)["beats_last_release"]
    assert not gate.passed and "vs last release 1.0000" in gate.description
    assert r.asset_materializations_for_node("hub_release") == []
    errors = [e.message for e in instance.all_logs(r.run_id) if e.level >= 40]  # what a person sees
    assert any("was not released" in m and "force: true" in m and "1.0000" in m for m in errors)
    forced = {"ops": {**FAST_HEAD["ops"], "evaluation_beats_last_release": {"config": {"force": True}}}}
    r = run(res_defs, selection=["evaluation", "hub_release"], run_config=forced, instance=instance)
    assert r.success and checks(r)["beats_last_release"].passed
    assert len(list((silva_home / "releases").glob("2*"))) == 2


def test_the_gate_says_when_it_cannot_judge_instead_of_refusing(tiny_backbone, tmp_path, silva_home):
    """A test split of a few images, or a release in force that reads other embeddings (the
    demo's, another backbone), gives no number to judge by: the head is released, and the gate
    says why. Before, both refused on a meaningless comparison."""
    small = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 40)))
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization("hub_release", metadata={"test_spearman": 1.0, "release": "perfect"})
    )
    r = run(small, instance=instance)
    gate = checks(r)["beats_last_release"]
    assert r.success and gate.passed and "too few to judge" in gate.description

    demo = resources(Path("unused"), kind="demo", demo_size=600)  # 1152-wide synthetic vectors
    other = dg.DagsterInstance.ephemeral()
    assert run(demo, instance=other).success
    larger = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "more", 200)))
    r = run(larger, instance=other)
    gate = checks(r)["beats_last_release"]
    assert r.success and gate.passed and "reads other embeddings" in gate.description


def test_sensor_requests_a_run_after_ratings_change_and_not_before(tmp_path):
    from silva_pipeline.automation import new_ratings_sensor
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 5)
    src = RatingsSource(kind="file", path=str(csv))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"ratings_source": src})
        return new_ratings_sensor(ctx), ctx.cursor

    out, cursor = tick(None)
    assert isinstance(out, dg.SkipReason) and "baseline" in out.skip_message
    out, cursor2 = tick(cursor)
    assert isinstance(out, dg.SkipReason) and cursor2 == cursor
    append_ratings(csv, 1, seed=3)
    out, cursor3 = tick(cursor2)
    assert isinstance(out, dg.RunRequest) and out.run_key == cursor3 != cursor2
    out, _ = tick(cursor3)
    assert isinstance(out, dg.SkipReason)


def test_definitions_load_with_sensor_schedule_and_job():
    from silva_pipeline.definitions import defs

    assert defs.resolve_sensor_def("new_ratings_sensor").job_name == "retrain"
    assert defs.resolve_schedule_def("nightly_retrain").cron_schedule == "0 3 * * *"
    job = defs.resolve_job_def("retrain")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "raw_ratings",
        "image_embeddings",
        "manifest",
        "head",
        "evaluation",
        "hub_release",
        "library",
        "library_scores",
        "rating_queue",
    }
    embed = defs.resolve_job_def("embed_library")
    assert {k.to_user_string() for k in embed.asset_layer.executable_asset_keys} == {"library_embeddings"}


def test_release_uploads_to_the_hub_up_to_the_network_edge(tiny_backbone, tmp_path, silva_home, monkeypatch):
    """The real huggingface_hub client talks to a loopback endpoint that records the calls."""
    import huggingface_hub.constants as hf_constants
    from hub_endpoint import RecordingHub

    from silva_pipeline.resources import HubResource

    secret = "hf_not_a_real_token_123"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    hub = RecordingHub()
    try:
        res_defs = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 60)))
        res_defs["hub"] = HubResource(
            repo_id="someone/silva-head", token=dg.EnvVar("HF_TOKEN"), endpoint=hub.url
        )
        instance = dg.DagsterInstance.ephemeral()
        r = run(res_defs, instance=instance)
        assert r.success
        assert meta(r, "hub_release", "hub") == f"{hub.url}/someone/silva-head/commit/{'a' * 40}"
        release = meta(r, "hub_release", "release")
        from pathlib import Path

        files = hub.committed_files()
        assert set(files) == {"README.md", "config.json", "model.safetensors"}
        assert files["model.safetensors"] == (Path(release) / "model.safetensors").read_bytes()
        assert all(q["headers"]["authorization"] == f"Bearer {secret}" for q in hub.requests)
        assert any(q["path"] == "/api/repos/create" for q in hub.requests)
        logs = " ".join(str(e) for e in instance.all_logs(r.run_id))
        assert secret not in logs  # the token is never logged or put in metadata
    finally:
        hub.close()


def test_the_gate_compares_both_heads_on_the_same_test_images(silva_home):
    """Paired: the released head is scored on the current test split beside the new one, and a
    bootstrap over those images decides whether the new head is worse beyond noise."""
    # the demo's embeddings come with the source: the embedder is never loaded
    res = resources(Path("unused"), kind="demo", demo_size=1500)
    instance = dg.DagsterInstance.ephemeral()
    good = {"ops": {"head": {"config": {"epochs": 4, "hidden": [64], "batch_size": 128, "device": "cpu"}}}}
    first = run(res, run_config=good, instance=instance)
    assert first.success
    report = meta(first, "evaluation", "report")
    assert "95 % CI low" in report and "Per-level bias" in report
    card = Path(meta(first, "hub_release", "release"), "README.md").read_text()
    assert "Spearman 95 % CI" in card

    again = run(res, selection=["head", "evaluation", "hub_release"], run_config=good, instance=instance)
    gate = checks(again)["beats_last_release"]
    assert gate.passed and "difference +0.0000" in gate.description  # the same head, deterministically

    bad = {"ops": {"head": {"config": {**good["ops"]["head"]["config"], "epochs": 1, "lr": 1e-7}}}}
    worse = run(res, selection=["head", "evaluation", "hub_release"], run_config=bad, instance=instance)
    gate = checks(worse)["beats_last_release"]
    assert not gate.passed and "vs released head" in gate.description and "95 % CI" in gate.description
    assert gate.metadata["difference_ci_high"].value < 0
    assert gate.metadata["last_release_spearman"].value > gate.metadata["test_spearman"].value
    assert worse.asset_materializations_for_node("hub_release") == []


def test_a_pairs_file_reaches_training_and_a_bad_row_is_named(tiny_backbone, tmp_path):
    """SILVA_PAIRS names images by their path relative to the pairs file, as a ratings file does;
    the head trains with them, and a pair naming an unrated image fails the head naming its line."""
    csv = make_ratings_file(tmp_path / "rated", 30)
    images = sorted(p.relative_to(csv.parent) for p in (csv.parent / "images").iterdir())
    pairs = csv.parent / "pairs.csv"
    pairs.write_text(
        "a,b,winner\n" + "".join(f"{a},{b},a\n" for a, b in zip(images[:15], images[15:], strict=True))
    )
    res = resources(tiny_backbone, kind="file", path=str(csv), pairs=str(pairs))
    r = run(res, selection=["raw_ratings", "image_embeddings", "manifest", "head"])
    assert r.success
    assert 0 < meta(r, "head", "pairs") <= 15  # pairs outside the train split are dropped in training
    pairs.write_text(f"a,b,winner\n{images[0]},{images[1]},a\n{images[0]},images/missing.png,b\n")
    r = run(res, selection=["raw_ratings", "image_embeddings", "manifest", "head"])
    assert not r.success
    failure = next(e for e in r.all_events if e.event_type_value == "STEP_FAILURE")
    assert "pairs.csv: line 3: image b='images/missing.png' is not rated (path)" in str(
        failure.event_specific_data.error
    )


def test_a_changed_pairs_file_changes_the_ratings_fingerprint(tmp_path):
    """The retrain sensor watches the fingerprint: new judgements must wake it like new ratings."""
    from silva_pipeline.resources import RatingsSource

    csv = make_ratings_file(tmp_path / "rated", 3)
    pairs = csv.parent / "pairs.csv"
    src = RatingsSource(kind="file", path=str(csv), pairs=str(pairs))
    none_yet = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,a\n")
    first = src.fingerprint()
    pairs.write_text("a,b,winner\nimages/a.png,images/b.png,b\n")
    assert len({none_yet, first, src.fingerprint()}) == 3


def test_silva_run_refuses_the_demo_source_and_names_what_to_set(monkeypatch, capsys):
    from silva_pipeline.demo import run_own

    monkeypatch.delenv("SILVA_SOURCE", raising=False)
    assert run_own([]) == 2
    err = capsys.readouterr().err
    assert "SILVA_SOURCE" in err and "silva-demo" in err


def test_every_asset_check_job_sensor_and_schedule_says_what_it_does():
    """What the Dagster UI shows beside each name (a sensor's docstring is not its description)."""
    from silva_pipeline.assets import ASSET_CHECKS
    from silva_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    assert not [k for k in graph.get_all_asset_keys() if not graph.get(k).description]
    assert not [s.key for c in ASSET_CHECKS for s in c.check_specs if not s.description]
    jobs = [j for j in defs.resolve_all_job_defs() if not j.name.startswith("__")]
    assert jobs and not [j.name for j in jobs if not j.description]
    assert not [s.name for s in [*defs.sensors, *defs.schedules] if not s.description]
