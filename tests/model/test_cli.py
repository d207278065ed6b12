"""The `silva` command line and the module entry points."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import (
    FAST_TRAIN,
    TINY_DIM,
    write_images,
)

from silva_model import HeadConfig, OrdinalHead
from silva_model import evaluate as evaluate_mod
from silva_model import train as train_mod
from silva_model.cli import main
from silva_model.images import expand_image_paths
from silva_model.manifest import build_manifest
from silva_model.parquet import write_parquet
from silva_model.release import save_pretrained


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
    m = write_parquet(build_manifest(x, rng.integers(1, 6, 200), dim=TINY_DIM), tmp_path / "m.parquet")
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


def test_help_and_version_answer_without_importing_torch():

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
    path = write_parquet(
        build_manifest(taste_data.embeddings[:400], taste_data.ratings[:400]), tmp_path / "m.parquet"
    )
    args = ["train", "--manifest", str(path), "--out", str(tmp_path / "head"), "--epochs", "2", "--quiet"]
    assert main([*args, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^(best epoch|last epoch|epochs \d+-\d+ averaged|linear head)", out, re.M)
    assert "chosen on 3 inner folds" in out
    assert (tmp_path / "head" / "best.safetensors").exists()
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


def test_module_clis(manifest_path, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({**FAST_TRAIN, "hidden": [64], "epochs": 2}))
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


def test_module_cli_prints_a_manifest_error_not_a_traceback(tmp_path, capsys):
    from silva_model.manifest import build_table
    from silva_model.parquet import write_parquet
    from silva_model.train import main

    x = np.ones((20, 8), np.float32)
    path = write_parquet(build_table(x, np.full(20, 9), np.zeros(20, np.int8)), tmp_path / "bad.parquet")
    assert main(["--manifest", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("silva: personal_score outside 1..5") and "Traceback" not in err


def test_the_trial_backbones_line_pastes_into_a_shell(tmp_path, capsys):
    """Breaker: `Use it with SILVA_BACKBONE=/tmp/a b/...` could not be pasted; the path is quoted."""
    folder = tmp_path / "it's a folder"
    assert main(["trial-backbone", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"SILVA_BACKBONE={shlex.quote(str(folder))} or --backbone {shlex.quote(str(folder))}" in out
    assert shlex.split(f"SILVA_BACKBONE={shlex.quote(str(folder))}") == [f"SILVA_BACKBONE={folder}"]
