"""hub_release: the Hub up to the network edge, failures and concurrent runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from pipeline_support import (
    FAST_HEAD,
    FORCE,
    champion,
    dagster_materialize,
    make_ratings_file,
    meta,
    registry,
    resources,
    run,
)
from safetensors.numpy import load_file

from silva_pipeline.assets import MODEL_ASSETS


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
            workspace=res_defs["workspace"],
            repo_id="someone/silva-head",
            token=dg.EnvVar("HF_TOKEN"),
            endpoint=hub.url,
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
        # the card says what the size-dependent defaults chose for this head's ~48 train ratings
        assert b"input_components = 0" in files["README.md"] and b"rank_weight = 1.0" in files["README.md"]
        training = json.loads(files["config.json"])["training"]
        assert training["config"]["rank_weight"] == -1 and training["chosen_by_size"]["rank_weight"] == 1.0
        # a blend (48 train ratings): its MLP's later epochs averaged, and the card says so
        kept = json.loads(files["config.json"])["data"]["weights_kept"]
        assert kept.startswith(("epochs ", "last epoch"))
        assert f"weights_kept: {kept}".encode() in files["README.md"]
        assert all(q["headers"]["authorization"] == f"Bearer {secret}" for q in hub.requests)
        assert any(q["path"] == "/api/repos/create" for q in hub.requests)
        logs = " ".join(str(e) for e in instance.all_logs(r.run_id))
        assert secret not in logs  # the token is never logged or put in metadata
    finally:
        hub.close()


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
    from silva_pipeline.instance import ensure_instance

    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "SILVA_SOURCE": "demo",
        "SILVA_DEMO_SIZE": "800",
    }
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    ensure_instance(tmp_path / "dagster")
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
        res["hub"] = HubResource(
            workspace=res["workspace"],
            repo_id="someone/silva-head",
            token="hf_x",
            endpoint="http://127.0.0.1:9",
        )
    r = run(res, selection=["evaluation", "hub_release"], run_config=FORCE, instance=instance)
    assert not r.success
    assert champion(silva_home) == "1"
    versions = registry(silva_home).search_model_versions("name='silva-head'")
    assert [str(v.version) for v in versions] == ["1"]
    assert sorted(p.name for p in (silva_home / "releases").iterdir()) == before  # nothing staged is left
    assert len(instance.fetch_materializations(dg.AssetKey("hub_release"), limit=10).records) == 1
