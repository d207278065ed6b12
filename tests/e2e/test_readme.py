"""Every command block of the README and docs/, run as written."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    ROOT,
    TINY_DIM,
    mlflow_job_runners,
    stop_process_group,
    write_images,
)
from world import World, no_warnings

from silva_pipeline.local_services import free_port, wait_for_http

# One worker runs the whole README (with -n auto): the demo they build on runs once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("readme")]


# The README and every page of docs/: each command block runs, wherever it is.
README = "\n".join(
    p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
)


BLOCKS = re.findall(r"^```(bash|python)\n(.*?)^```", README, re.S | re.M)


COMMANDS = [
    line.split("  #")[0].strip()
    for lang, body in BLOCKS
    if lang == "bash"
    for line in body.splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


PYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "python"]


def silva_demo(w: World, command: str) -> None:
    """The demo, in its own workspace: whatever the person's SILVA_HOME and SILVA_SOURCE say (the
    world's name a folder that does not exist), it writes nothing into the person's; at most 40
    lines."""
    out = w.demo() or w.ok(command)
    no_warnings(out)
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) <= 40 and re.search(r"^head: [\d,]+ train ratings, enough", out.stdout, re.M), lines
    demo = w.root / "demo"
    assert len(list((demo / "data" / "releases").glob("2*/model.safetensors"))) == 1
    assert not (w.home / "releases").exists() and not (w.home / "ratings-log.sqlite").exists()


def pytest_itself(w: World, command: str) -> None:
    """This is the suite you are reading; `.ci/run` runs exactly this command."""
    assert (ROOT / ".ci" / "run").read_text().strip().endswith(command)


def pip_install(w: World, command: str, lean_wheel_venv: Callable[[str], Path]) -> None:
    """`pip install silva[...]`, done with uv's pip against the wheel built from this checkout."""
    extras = re.search(r"silva(\[[a-z,]+\])?", command).group(1) or ""
    py = lean_wheel_venv(extras) / "bin" / "python"
    importable = {"": "silva_model", "[pipeline]": "silva_pipeline", "[pipeline,pictoria]": "sqlite_vec"}[
        extras
    ]
    out = subprocess.run(
        [str(py), "-c", f"import {importable}, silva_model.cli"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]


def silva_ui(w: World, command: str) -> None:
    port = free_port()
    proc = w.serve(command, "-p", str(port))
    try:
        info = wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, 180, "silva-ui")
        assert "dagster_webserver_version" in json.loads(info)
    finally:
        stop_process_group(proc)


def silva_rate(w: World, command: str) -> None:
    """`silva rate` serves the workspace's latest queue on 127.0.0.1 (on the README's 8765 by
    default; here on a free port; the browser test is tests/app/test_rating_page.py): as written
    in a workspace that holds the demo's runs, and with `--demo` from the person's."""
    for extra, env in ((), w.demo_env()), (("--demo",), w.env):
        port = free_port()
        proc = w.serve(command, *extra, "--port", str(port), env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            items = json.loads(wait_for_http(f"{url}/api/items", proc, 120, "silva rate"))["items"]
            assert len(items) == 200 and "reason" not in items[0]  # blind by default
            with urllib.request.urlopen(f"{url}/", timeout=5) as r:
                assert "1-5 or click rate" in r.read().decode()
        finally:
            stop_process_group(proc)


def silva_mlflow(w: World, command: str) -> None:
    """MLflow's UI on 127.0.0.1, on the workspace's own store: the demo's runs with `--demo`."""
    w.demo()
    port = free_port()
    proc = w.serve(command, "--demo", "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", proc, 120, "silva-mlflow")
        assert not mlflow_job_runners(proc.pid)
        req = urllib.request.Request(f"{url}/api/2.0/mlflow/registered-models/search", method="GET")
        with urllib.request.urlopen(req, timeout=10) as r:
            names = [m["name"] for m in json.loads(r.read()).get("registered_models", [])]
        assert names == ["silva-head"], names
    finally:
        stop_process_group(proc)


def retrain_job(w: World, command: str) -> None:
    """`dg launch --job retrain` retrains from the ratings: a new manifest, head and release."""
    env = w.demo_env()
    before = {k: len(w.materializations(k, env)) for k in ("raw_ratings", "manifest", "hub_release")}
    out = w.ok(command, cwd=ROOT, env=env)
    after = {k: len(w.materializations(k, env)) for k in before}
    assert all(after[k] == before[k] + 1 for k in before), (before, after, out.stderr[-3000:])


def pytest_quick(w: World, command: str) -> None:
    """The quick loop leaves out exactly the tests marked slow."""
    out = w.ok(f"{command} --collect-only -q", cwd=ROOT)
    assert re.search(r"\d+/\d+ tests collected \(\d+ deselected\)", out.stdout), out.stdout[-1000:]


def silva_ui_postgres(w: World, command: str) -> None:
    """The UI on PostgreSQL with an MLflow server; Ctrl+C (SIGTERM here) stops all three."""
    home = w.root / "pg-dagster-home"
    env = {**w.env, "DAGSTER_HOME": str(home), "SILVA_HOME": str(w.root / "pg-silva-home")}
    port = free_port()
    proc = w.serve(command, "-p", str(port), env=env)
    try:
        info = wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, 240, "silva-ui --postgres")
        assert "dagster_webserver_version" in json.loads(info)
        assert "postgres_url: postgresql+psycopg2://" in (home / "dagster.yaml").read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=120)
    assert "MLflow server: http://127.0.0.1:" in (w.root / "serve.log").read_text()
    assert not (w.root / "pg-silva-home" / "postgres" / "postmaster.pid").exists()  # PostgreSQL stopped


def retrain_tail(w: World, command: str) -> None:
    """`key:head+` retrains on the stored manifest, evaluates and releases (docs/pipeline.md says
    why it reaches the whole tail). The same data and seed give the same test Spearman, so the
    gate lets it pass."""
    env = w.demo_env()
    before = len(w.materializations("hub_release", env))
    out = w.ok(command, cwd=ROOT, env=env)
    for key in ("head", "evaluation"):
        assert w.materializations(key, env), key
    assert len(w.materializations("hub_release", env)) == before + 1, out.stderr[-3000:]


def definitions_validate(w: World, command: str) -> None:
    out = w.ok(command, cwd=ROOT)
    assert "All code locations passed validation" in out.stdout + out.stderr


def dg_check_defs(w: World, command: str) -> None:
    out = w.ok(command, cwd=ROOT)
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def score_local(w: World, command: str) -> None:
    w.tiny_release(w.cwd / ".data" / "releases" / "<release>")
    write_images(w.cwd / "my_art", 2)
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 40, 90)).save(w.cwd / "new.png")
    out = w.ok(command)
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all(re.fullmatch(r"0\.\d{4}\t[1-5]\.\d\d\t.+", line) for line in lines), lines


def score_hub(w: World, command: str) -> None:
    from PIL import Image

    w.hub_cache("you/silva-head")
    Image.new("RGB", (32, 48), (10, 120, 200)).save(w.cwd / "image.jpg")
    row = json.loads(w.ok(command).stdout)
    assert row["path"] == "image.jpg" and 0 <= row["score"] <= 1
    assert row["expected_rating"] == pytest.approx(1 + 4 * row["score"], abs=1e-3)


def score_manifest(w: World, command: str) -> None:
    from silva_model.head import HeadConfig, OrdinalHead
    from silva_model.release import save_pretrained

    w.manifest()
    save_pretrained(OrdinalHead(HeadConfig()), w.cwd / "DIR")
    summary = dict(kv.split("=", 1) for kv in w.ok(command).stdout.split())
    import pyarrow.parquet as pq

    assert pq.read_table(w.cwd / "scores.parquet").num_rows == int(summary["n"]) > 0


def train_module(w: World, command: str) -> None:
    w.manifest()
    (w.cwd / "train.yaml").write_text("epochs: 3\nhidden: [64]\nbatch_size: 128\ndevice: cpu\n")
    out = w.ok(command)
    no_warnings(out)
    # 800 ratings: the head's form is chosen on inner folds, and the line says which came out
    assert re.match(r"(best epoch [1-3]/3|linear head): val spearman 0\.\d+", out.stdout)
    assert "chosen on 3 inner folds" in out.stdout
    assert (w.cwd / "runs" / "a" / "best.safetensors").is_file()


def evaluate_module(w: World, command: str) -> None:
    if not (w.cwd / "runs" / "a" / "best.json").exists():
        train_module(w, next(c for c in COMMANDS if "silva_model.train" in c))
    out = w.ok(command)
    no_warnings(out)
    assert out.stdout.startswith("### test (n = ") and "| spearman |" in out.stdout


def trial_backbone(w: World, command: str) -> None:
    """Saved where the README says (the walk in test_first_hour.py uses it), and it loads."""
    out = w.ok(command)
    folder = command.split()[-1]
    assert out.stderr == "" and f"SILVA_BACKBONE={folder}" in out.stdout
    load = f"from silva_model.backbone import SiglipEmbedder; print(SiglipEmbedder('{folder}', device='cpu').embed_dim)"
    loaded = w.ok(f'uv run python -c "{load}"')
    assert loaded.stdout.strip() == "64" and loaded.stderr == ""  # no warnings on load either


def walked(w: World, command: str) -> None:
    """Run in a fresh copy of the project, by the person's walk: tests/e2e/test_first_hour.py."""
    from first_hour import WALKED

    assert command in WALKED


RUNNERS: dict[str, Callable[..., None]] = {
    "uv run silva-demo": silva_demo,
    "uv run pytest": pytest_itself,
    "pip install silva": pip_install,
    "pip install 'silva[pipeline]'": pip_install,
    "pip install 'silva[pipeline,pictoria]'": pip_install,
    "uv run silva-ui": silva_ui,
    "uv run silva rate": silva_rate,
    "uv run silva-mlflow": silva_mlflow,
    "uv run dg launch --job retrain": retrain_job,
    "uv run silva-run": walked,
    'uv run pytest -m "not slow"': pytest_quick,
    "uv run silva trial-backbone .data/trial-siglip": trial_backbone,
    "SILVA_SOURCE=folder SILVA_RATINGS=my_ratings/ SILVA_LIBRARY_SOURCE=folder SILVA_LIBRARY=my_library/ "
    "SILVA_BACKBONE=.data/trial-siglip uv run silva-run": walked,
    "uv run silva-ui --postgres": silva_ui_postgres,
    "uv run dagster definitions validate -m silva_pipeline.definitions": definitions_validate,
    "uv run dg check defs": dg_check_defs,
    "uv run dg launch --assets 'key:head+'": retrain_tail,
    "uv run silva score my_art/ new.png --head .data/releases/<release>": score_local,
    "uv run silva score image.jpg --repo-id you/silva-head --json": score_hub,
    "uv run silva score-manifest manifest.parquet --head DIR --split test --out scores.parquet": score_manifest,
    "uv run python -m silva_model.train --manifest manifest.parquet --config train.yaml --out runs/a": train_module,
    "uv run python -m silva_model.evaluate --checkpoint runs/a --manifest manifest.parquet --split test": (
        evaluate_module
    ),
}


# What each Python block needs defined before it runs, as a user's own code would.
PRELUDES = {
    "mlflow.pyfunc.load_model": "import numpy as np\nembeddings = np.random.default_rng(0).random((5, 1152), np.float32)\n",
    "Scorer.from_pretrained": (
        "import numpy as np\n"
        f"embeddings = np.random.default_rng(0).random((5, {TINY_DIM}), np.float32)\n"
        "paths = ['image.jpg']\n"
    ),
}


CHECKS = "\nassert scores.shape == (len(embeddings),) or scores.shape == (1,), scores.shape\nprint('OK', scores.tolist())\n"


def test_every_readme_block_has_a_runner():
    assert set(COMMANDS) == set(RUNNERS), "README commands and their tests differ"
    assert len(PYTHON_BLOCKS) == len(PRELUDES)
    assert all(any(key in block for block in PYTHON_BLOCKS) for key in PRELUDES)


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command(command, world, lean_wheel_venv):
    runner = RUNNERS[command]
    if runner is pip_install:
        runner(world, command, lean_wheel_venv)
    else:
        runner(world, command)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: next(k for k in PRELUDES if k in b))
def test_readme_python_block(block, world):
    key = next(k for k in PRELUDES if k in block)
    if key == "Scorer.from_pretrained":
        from PIL import Image

        world.hub_cache("you/silva-head")
        Image.new("RGB", (32, 48), (10, 120, 200)).save(world.cwd / "image.jpg")
        env = world.env
    else:  # the registry of a workspace that holds the demo's releases
        env = world.demo_env()
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(env['SILVA_HOME']) / 'mlflow.db'}"
    script = world.cwd / f"block_{key.split('.')[0]}.py"
    script.write_text(PRELUDES[key] + block + CHECKS)
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=world.cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    scores = json.loads(out.stdout.split("OK ", 1)[1].replace("'", '"'))
    assert all(0 <= s <= 1 for s in scores)
