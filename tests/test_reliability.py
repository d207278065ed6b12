"""Runs and releases under faults and concurrency, and bad input that used to slip through."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image
from pipeline_support import (
    FAST_HEAD,
    dagster_materialize,
    make_ratings_file,
    rated_images,
    resources,
    run,
    write_ratings_csv,
)
from safetensors.numpy import load_file

from silva_pipeline.assets import MODEL_ASSETS

ROOT = Path(__file__).resolve().parent.parent
FORCE = {"ops": {**FAST_HEAD["ops"], "evaluation_beats_last_release": {"config": {"force": True}}}}


@pytest.fixture(autouse=True)
def silva_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SILVA_HOME", str(tmp_path / "silva-home"))
    return tmp_path / "silva-home"


def failure_message(result) -> str:
    """The errors of every failed step or resource, as a person reads them in the run log."""
    errors = (getattr(e.event_specific_data, "error", None) for e in result.all_events)
    return " ".join(str(err) for err in errors if err is not None)


def registry(silva_home: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{silva_home / 'mlflow.db'}")
    return mlflow.MlflowClient()


def champion(silva_home: Path) -> str:
    return str(registry(silva_home).get_model_version_by_alias("silva-head", "champion").version)


# --- 1. the release gate cannot be skipped --------------------------------------------------------


def test_a_head_refused_by_the_gate_is_not_released_by_selecting_hub_release_alone(
    tiny_backbone, tmp_path, silva_home
):
    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 200)))
    instance = dg.DagsterInstance.ephemeral()
    assert run(res, instance=instance).success
    instance.report_runless_asset_event(
        dg.AssetMaterialization("hub_release", metadata={"test_spearman": 1.0, "release": "perfect"})
    )
    refused = run(res, selection=["evaluation", "hub_release"], instance=instance)
    assert not refused.success and refused.asset_materializations_for_node("hub_release") == []
    alone = run(res, selection=["hub_release"], instance=instance)  # what the UI's Materialize button does
    assert not alone.success and alone.asset_materializations_for_node("hub_release") == []
    assert "did not pass the release gate" in failure_message(alone)
    assert champion(silva_home) == "1"
    forced = run(res, selection=["evaluation", "hub_release"], run_config=FORCE, instance=instance)
    assert forced.success and champion(silva_home) == "2"


# --- 2. two runs at once never cross -----------------------------------------------------------


def _materialize(env: dict, seed: int, select: str = "head,evaluation,hub_release") -> subprocess.Popen:
    """`dagster asset materialize` as a user runs it, with a small head and the gate forced."""
    config = {
        "ops": {**FORCE["ops"], "head": {"config": {**FAST_HEAD["ops"]["head"]["config"], "seed": seed}}}
    }
    return dagster_materialize(env, select, config)


@pytest.mark.slow
def test_two_runs_at_once_each_release_their_own_head(tmp_path, silva_home, monkeypatch):
    """Two head -> hub_release runs started together on one instance (seeds 11 and 22): each
    release holds its own run's weights and metrics, and each registry version names its own run."""
    from silva_pipeline.demo import ensure_dagster_home

    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "SILVA_SOURCE": "demo",
        "SILVA_DEMO_SIZE": "800",
    }
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    ensure_dagster_home()
    prep = _materialize(env, 0, ",".join(MODEL_ASSETS))  # the model's chain once: ratings ... v1
    out = prep.communicate(timeout=600)[0]
    assert prep.returncode == 0, out[-3000:]
    a, b = _materialize(env, 11), _materialize(env, 22)
    outs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, "\n".join(o[-3000:] for o in outs)

    with dg.DagsterInstance.get() as instance:
        releases = instance.fetch_materializations(dg.AssetKey("hub_release"), limit=10).records
        runs = {r.run_id: r for r in releases}
        assert len(runs) >= 3
        newest = sorted(releases, key=lambda r: r.timestamp)[-2:]
        heads = []
        for rec in newest:
            meta = rec.asset_materialization.metadata
            folder = Path(meta["release"].value)
            config = json.loads((folder / "config.json").read_text())
            assert config["dagster_run_id"] == rec.run_id
            own_head = silva_home / "assets" / "head" / f"{rec.run_id}.head"
            weights, own = load_file(folder / "model.safetensors"), load_file(own_head / "best.safetensors")
            assert all(np.array_equal(weights[k], own[k]) for k in own)
            own_eval = json.loads((silva_home / "assets" / "evaluation" / f"{rec.run_id}.json").read_text())
            assert config["metrics"]["test"]["spearman"] == own_eval["value"]["metrics"]["test"]["spearman"]
            assert json.loads((own_head / "best.json").read_text())["train_config"]["seed"] in (11, 22)
            version = registry(silva_home).get_model_version("silva-head", meta["registry_version"].value)
            assert version.tags["dagster_run_id"] == rec.run_id
            heads.append(own["mlp.weights.0"])
        assert not np.array_equal(*heads)  # two different heads, each released by its own run


# --- 3. a release is all or nothing ---------------------------------------------------------------


def _boom(*args, **kwargs):
    raise OSError("injected failure")


@pytest.mark.parametrize("step", ["stage", "register", "alias", "upload"])
def test_a_release_that_fails_at_any_step_leaves_the_last_one_in_force(
    step, tiny_backbone, tmp_path, silva_home, monkeypatch
):
    import mlflow

    release_module = sys.modules["silva_pipeline.assets.hub_release"]  # the package exports the asset
    from silva_pipeline.resources import HubResource

    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 60)))
    instance = dg.DagsterInstance.ephemeral()
    assert run(res, instance=instance).success
    before = sorted(p.name for p in (silva_home / "releases").iterdir())
    if step == "stage":
        monkeypatch.setattr(release_module, "save_pretrained", _boom)
    elif step == "register":
        monkeypatch.setattr(mlflow.pyfunc, "log_model", _boom)
    elif step == "alias":
        real = mlflow.MlflowClient.set_registered_model_alias

        def fail_to_move(self, name, alias, version):
            if str(version) != "1":
                raise OSError("injected failure")
            return real(self, name, alias, version)

        monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", fail_to_move)
    else:  # a real upload to a port that refuses at once: no network here
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
        res["hub"] = HubResource(repo_id="someone/silva-head", token="hf_x", endpoint="http://127.0.0.1:9")
    r = run(res, selection=["evaluation", "hub_release"], run_config=FORCE, instance=instance)
    assert not r.success
    assert champion(silva_home) == "1"
    versions = registry(silva_home).search_model_versions("name='silva-head'")
    assert [str(v.version) for v in versions] == ["1"]
    assert sorted(p.name for p in (silva_home / "releases").iterdir()) == before  # nothing staged is left
    assert len(instance.fetch_materializations(dg.AssetKey("hub_release"), limit=10).records) == 1


# --- 4. every image mode embeds like its 8-bit RGB twin ---------------------------------------------


def _modes(tmp_path: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Files in each mode, with the RGB pixels they must decode to."""
    rng = np.random.default_rng(0)
    gray16 = rng.integers(0, 256, (48, 40)).astype(np.uint16) * 257
    rgb = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (48, 40), dtype=np.uint8)
    out = {}
    Image.fromarray(gray16).save(tmp_path / "gray16.png")
    out["I;16"] = (tmp_path / "gray16.png", np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, 2))
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    out["RGBA"] = (tmp_path / "rgba.png", rgb)
    Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA").save(tmp_path / "la.png")
    out["LA"] = (tmp_path / "la.png", np.repeat(rgb[..., :1], 3, 2))
    pal = Image.fromarray(rgb).quantize(16)
    pal.info["transparency"] = 0
    pal.save(tmp_path / "palette.png", transparency=0)
    out["P"] = (tmp_path / "palette.png", np.asarray(pal.convert("RGB")))
    return out


def test_every_mode_decodes_to_its_8bit_rgb_twin(tmp_path):
    from silva_model.backbone import load_rgb

    for mode, (path, twin) in _modes(tmp_path).items():
        with Image.open(path) as im:
            assert im.mode == mode, (mode, im.mode)
        np.testing.assert_array_equal(np.asarray(load_rgb(path)), twin, err_msg=mode)


def test_cmyk_decodes_close_to_the_rgb_it_came_from(tmp_path):
    from silva_model.backbone import load_rgb

    rgb = np.zeros((48, 40, 3), np.uint8)
    rgb[:, :20] = (200, 30, 60)
    rgb[:, 20:] = (20, 160, 220)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(np.asarray(load_rgb(tmp_path / "cmyk.jpg")).astype(int) - rgb).mean() < 4


def test_a_16_bit_image_scores_like_its_8_bit_twin_not_like_white(tiny_backbone, tmp_path):
    """Before, a 16-bit PNG was clipped to near-white (cosine 0.9989 to white, 0.0475 to its twin)."""
    from silva_model.backbone import SiglipEmbedder

    path, twin = _modes(tmp_path)["I;16"]
    Image.fromarray(twin).save(tmp_path / "twin.png")
    Image.new("RGB", (40, 48), (255, 255, 255)).save(tmp_path / "white.png")
    e = SiglipEmbedder(tiny_backbone, device="cpu").embed_paths(
        [path, tmp_path / "twin.png", tmp_path / "white.png"]
    )
    x = e.embeddings
    assert float(x[0] @ x[1]) > 0.9999 and float(x[0] @ x[2]) < float(x[0] @ x[1]) - 0.01


# --- 5. names and encodings ------------------------------------------------------------------------


def test_a_non_utf8_file_name_is_a_bad_row_not_a_crash(tiny_backbone, tmp_path):
    root = tmp_path / "ratings"
    rated_images(root / "3", 4)
    bad_name = os.fsdecode(b"\xff\xfeart.png")
    (root / "4").mkdir()
    Image.new("RGB", (20, 20)).save(root / "4" / bad_name)
    r = run(resources(tiny_backbone, kind="folder", path=str(root)), selection=["raw_ratings"])
    assert r.success
    bad = r.asset_materializations_for_node("raw_ratings")[0].metadata["bad_rows"].value
    assert "\ufffd\ufffdart.png" in bad and "not valid UTF-8" in bad


def test_a_latin1_or_empty_ratings_csv_gets_a_message_naming_the_file(tiny_backbone, tmp_path):
    latin = tmp_path / "latin.csv"
    latin.write_bytes("image,rating\ncaf\xe9.png,3\n".encode("latin-1"))
    r = run(resources(tiny_backbone, kind="file", path=str(latin)), selection=["raw_ratings"])
    assert not r.success and "latin.csv is not UTF-8" in failure_message(r)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = run(resources(tiny_backbone, kind="file", path=str(empty)), selection=["raw_ratings"])
    assert not r.success and "empty.csv is empty" in failure_message(r)


def test_paths_in_a_ratings_file_cannot_leave_its_folder(tiny_backbone, tmp_path):
    root = tmp_path / "rated"
    paths, ratings = rated_images(root / "images", 4)
    outside = tmp_path / "outside.png"
    Image.new("RGB", (20, 20)).save(outside)
    rows = [(p.relative_to(root), r) for p, r in zip(paths, ratings, strict=True)]
    rows += [("../outside.png", 3), (str(outside), 4), ("images/../../outside.png", 2)]
    csv = write_ratings_csv(root / "ratings.csv", rows)
    r = run(resources(tiny_backbone, kind="file", path=str(csv)), selection=["raw_ratings"])
    assert r.success
    meta = r.asset_materializations_for_node("raw_ratings")[0].metadata
    assert meta["dagster/row_count"].value == 4 and meta["bad_rows_count"].value == 3
    assert meta["bad_rows"].value.count("leaves the ratings file's folder") == 3


# --- 6. an unreachable MLflow fails fast -----------------------------------------------------------


def test_an_unreachable_tracking_server_fails_in_seconds_naming_it(tiny_backbone, tmp_path):
    from silva_pipeline.resources import MlflowTracking

    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 30)))
    res["mlflow"] = MlflowTracking(tracking_uri="http://127.0.0.1:9")
    t0 = time.monotonic()
    r = run(res)
    assert not r.success and time.monotonic() - t0 < 60
    assert "http://127.0.0.1:9" in failure_message(r) and "does not answer" in failure_message(r)


# --- 7. environment defaults survive partial config ------------------------------------------------


def test_partial_embedder_config_keeps_silva_backbone(tiny_backbone, tmp_path, monkeypatch):
    from silva_pipeline.definitions import default_resources

    monkeypatch.setenv("SILVA_BACKBONE", str(tiny_backbone))
    monkeypatch.setenv("SILVA_SOURCE", "file")
    monkeypatch.setenv("SILVA_RATINGS", str(make_ratings_file(tmp_path / "rated", 6)))
    r = run(
        default_resources(),
        selection=["raw_ratings", "image_embeddings"],
        run_config={"resources": {"embedder": {"config": {"batch_size": 2, "device": "cpu"}}}},
    )
    assert r.success, failure_message(r)
    assert (
        str(tiny_backbone)
        in r.asset_materializations_for_node("image_embeddings")[0].metadata["backbone"].value
    )


# --- 8. the smaller ones ---------------------------------------------------------------------------


def test_module_cli_prints_a_manifest_error_not_a_traceback(tmp_path, capsys):
    from silva_model.manifest import build_table, write_manifest
    from silva_model.train import main

    x = np.ones((20, 8), np.float32)
    path = write_manifest(build_table(x, np.full(20, 9), np.zeros(20, np.int8)), tmp_path / "bad.parquet")
    assert main(["--manifest", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("silva: personal_score outside 1..5") and "Traceback" not in err


def test_an_absurd_embedding_row_is_refused_by_the_contract(taste_data):
    from silva_model.manifest import ManifestError, build_manifest

    x = taste_data.embeddings[:200].copy()
    x[17] = 1e30
    with pytest.raises(ManifestError, match=r"1e\+30 at row\(s\) 17"):
        build_manifest(x, taste_data.ratings[:200])
    x[17] = 0.0
    with pytest.raises(ManifestError, match="all zeros at row"):
        build_manifest(x, taste_data.ratings[:200])


def test_a_truncated_cache_shard_is_quarantined_and_its_images_embedded_again(tiny_backbone, tmp_path):
    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 12)))
    sel = ["raw_ratings", "image_embeddings"]
    assert run(res, selection=sel).success
    shards = sorted((tmp_path / "silva-home" / "embeddings").glob("*/shard-*.parquet"))
    assert len(shards) == 3
    shards[1].write_bytes(shards[1].read_bytes()[:100])  # a write cut short
    r = run(res, selection=sel)
    assert r.success
    meta = r.asset_materializations_for_node("image_embeddings")[0].metadata
    assert meta["quarantined_shards"].value == 1 and meta["embedded"].value == 4
    assert meta["reused_from_cache"].value == 8
    assert (shards[1].parent / "quarantine" / shards[1].name).is_file()
    assert run(res, selection=sel).success  # and the run after that needs nothing by hand


def test_a_cache_compacted_by_another_worker_mid_read_loses_nothing(tmp_path, monkeypatch):
    import silva_pipeline.embedding_cache as ec

    cache = ec.EmbeddingCache(tmp_path, "some/backbone")
    rng = np.random.default_rng(0)
    for i in range(3):
        cache.add([f"sha{i}a", f"sha{i}b"], rng.standard_normal((2, 8)).astype(np.float32))
    real_read = ec.read_parquet

    def read_while_another_worker_compacts(path, columns=None):
        monkeypatch.setattr(ec, "read_parquet", real_read)
        other = ec.EmbeddingCache(tmp_path, "some/backbone")  # its load lists the same 3 files...
        monkeypatch.setattr(ec, "_MAX_SHARDS", 2)
        other.load()  # ...and replaces them with one compacted file
        monkeypatch.setattr(ec, "_MAX_SHARDS", 32)
        return real_read(path, columns)

    monkeypatch.setattr(ec, "read_parquet", read_while_another_worker_compacts)
    shas, emb, _ = cache.load()
    assert sorted(shas) == sorted(f"sha{i}{c}" for i in range(3) for c in "ab") and emb.shape == (6, 8)
    assert not cache.quarantined and len(cache.shards()) == 1


def test_the_gpu_pool_is_sized_to_the_hosts_gpus_unless_set_by_hand(tmp_path, monkeypatch):
    import torch

    from silva_pipeline.demo import ensure_dagster_home
    from silva_pipeline.postgres import ensure_gpu_pool, size_gpu_pool

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    ensure_dagster_home()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with dg.DagsterInstance.get() as instance:
        assert ensure_gpu_pool(instance) == 4
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 4
        size_gpu_pool(instance, 2)  # what `dagster instance concurrency set gpu 2` does
        assert ensure_gpu_pool(instance) == 2
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == 2


def test_the_project_instance_monitors_runs_and_limits_pools(tmp_path, monkeypatch):
    from silva_pipeline.demo import ensure_dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    ensure_dagster_home()
    with dg.DagsterInstance.get() as instance:
        assert instance.run_monitoring_enabled
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1


def test_embedding_shows_progress_on_stderr_and_in_the_run_log(tiny_backbone, tmp_path, capsys):
    from conftest import write_images

    from silva_model.backbone import SiglipEmbedder

    paths = write_images(tmp_path / "imgs", 5)
    SiglipEmbedder(tiny_backbone, device="cpu", batch_size=2).embed_paths(paths, progress=True)
    err = capsys.readouterr().err
    assert "embed" in err and "5/5" in err and "img/s" in err
    instance = dg.DagsterInstance.ephemeral()
    res = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "rated", 9)))
    r = run(res, selection=["raw_ratings", "image_embeddings"], instance=instance)
    logs = " ".join(e.user_message for e in instance.all_logs(r.run_id))
    assert "embedded 4/9 images" in logs and "images/s" in logs and "min left" in logs
