"""The release gate: refusing a worse head, saying when it cannot judge, the verdict."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pipeline_support import (
    FAST_HEAD,
    FORCE,
    champion,
    checks,
    failure_message,
    make_ratings_file,
    meta,
    resources,
    run,
)


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
    assert "its out-of-fold Spearman over all 40 ratings is" in gate.description  # what it can say

    demo = resources(Path("unused"), kind="demo", demo_size=600)  # 1152-wide synthetic vectors
    other = dg.DagsterInstance.ephemeral()
    assert run(demo, instance=other).success
    larger = resources(tiny_backbone, kind="file", path=str(make_ratings_file(tmp_path / "more", 200)))
    r = run(larger, instance=other)
    gate = checks(r)["beats_last_release"]
    assert r.success and gate.passed and "reads other embeddings" in gate.description


def test_the_gate_compares_both_heads_on_the_same_test_images(silva_home):
    """Paired: the released head is scored on the current test split beside the new one, and a
    bootstrap over those images decides whether the new head is worse beyond noise."""
    # the demo's embeddings come with the source: the embedder is never loaded
    res = resources(Path("unused"), kind="demo", demo_size=1500)
    instance = dg.DagsterInstance.ephemeral()
    # an MLP whatever the size: the bad config below must train a worse head, not be chosen away
    mlp = {"model": "mlp", "epochs": 4, "hidden": [64], "batch_size": 128, "device": "cpu"}
    good = {"ops": {"head": {"config": mlp}}}
    first = run(res, run_config=good, instance=instance)
    assert first.success
    report = meta(first, "evaluation", "report")
    assert "95 % CI low" in report and "Per-level bias" in report
    card = Path(meta(first, "hub_release", "release"), "README.md").read_text()
    assert "Spearman 95 % CI" in card

    again = run(
        res,
        selection=["head", "out_of_fold", "evaluation", "hub_release"],
        run_config=good,
        instance=instance,
    )
    gate = checks(again)["beats_last_release"]
    assert gate.passed and "difference +0.0000" in gate.description  # the same head, deterministically

    bad = {"ops": {"head": {"config": {**good["ops"]["head"]["config"], "epochs": 1, "lr": 1e-7}}}}
    worse = run(
        res, selection=["head", "out_of_fold", "evaluation", "hub_release"], run_config=bad, instance=instance
    )
    gate = checks(worse)["beats_last_release"]
    assert not gate.passed and "vs released head" in gate.description and "95 % CI" in gate.description
    assert gate.metadata["difference_ci_high"].value < 0
    assert gate.metadata["last_release_spearman"].value > gate.metadata["new_spearman"].value
    assert worse.asset_materializations_for_node("hub_release") == []


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


def test_the_gate_leaves_out_images_the_release_in_force_learned_from_and_their_copies():
    """Walkers' findings: 15 new ratings moved 5 images the release in force had trained on into
    the test split (copies share a split), and new copies of its train images counted as "never
    learned from": the gate judged that head on its own training images."""
    import numpy as np
    import pyarrow as pa

    from silva_model.active import OutOfFold
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.manifest import build_manifest
    from silva_model.release import TrainedHead
    from silva_model.train_config import TrainConfig
    from silva_pipeline.release_gate import held_out

    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 16)).astype(np.float32)
    x[79] = x[0] + 1e-4 * rng.standard_normal(16).astype(np.float32)  # a copy of image 0, added since
    table = build_manifest(x, rng.integers(1, 6, 80), dim=16)
    table = table.append_column("image_sha256", pa.array([f"img{i}" for i in range(80)]))
    split = np.array(table.column("split").to_pylist())
    test, rest = np.flatnonzero(split == "test"), np.flatnonzero(split != "test")
    since = [r for r in rest if r not in (0, 79)][-3:]  # rated since
    moved = [r for r in test if r not in (0, 79)][:2]  # trained on, in test now
    learned = (set(rest) - set(since) - {79}) | set(moved) | {0}
    head = TrainedHead(OrdinalHead(HeadConfig(embed_dim=16, hidden=(8,))), 0, {}, TrainConfig(), "", 0, 0)
    oof = OutOfFold(np.full(80, 3.0), [], rng.random(80).astype(np.float32), np.full(80, 3))
    h = held_out(table, head, oof, {f"img{i}" for i in learned})
    assert sorted(h.rows) == sorted(set(range(80)) - learned - {79})
    left_out = [r for r in test if r in learned or r == 79]
    assert h.how == (
        f"{len(test) - len(left_out)} test images and 3 more it never learned from (nor a copy of), "
        f"scored out of fold; {len(left_out)} test image(s) it learned from, or a copy of, left out"
    )
    assert np.array_equal(h.scores[np.isin(h.rows, since)], oof.score[since])  # out of fold


def test_images_that_all_carry_one_rating_compare_no_heads(tmp_path):
    """Breaker: with every held-out image rated 4 the gate compared Spearman 0.0000 with 0.0000 and
    replaced the release in force "beyond noise"; there is no order to compare heads on."""
    import numpy as np

    from silva_model.active import OutOfFold
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.manifest import build_manifest
    from silva_model.release import TrainedHead, save_pretrained
    from silva_model.train_config import TrainConfig
    from silva_pipeline.records import EvaluationReport
    from silva_pipeline.release_gate import _verdict

    rng = np.random.default_rng(0)
    table = build_manifest(rng.standard_normal((120, 16)).astype(np.float32), np.full(120, 4), dim=16)
    head = OrdinalHead(HeadConfig(embed_dim=16, hidden=(8,)))
    released = save_pretrained(head, tmp_path / "release")
    trained = TrainedHead(head, 0, {}, TrainConfig(), "", 0, 0)
    oof = OutOfFold(np.full(120, 3.0), [], rng.random(120).astype(np.float32), np.full(120, 3))
    verdict = _verdict({"release": str(released)}, EvaluationReport(), trained, table, oof)
    assert verdict.passed and "all carry one rating" in verdict.why and "released without" in verdict.why
    assert "0.0000" not in verdict.why
