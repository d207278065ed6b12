"""Every command block in README.md, run as a user runs it.

The commands are read from the README itself: a bash line or a Python block that has no runner
here fails `test_every_readme_block_has_a_runner`, so the README and the tests cannot drift
apart. Commands run verbatim through `uv run` (UV_PROJECT points uv at this checkout), in a
scratch folder that holds files with the README's own placeholder names (`DIR`,
`.data/releases/<timestamp>`, `my_art/`, ...), with a temporary DAGSTER_HOME and SILVA_HOME.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TINY_DIM, stop_process_group, write_images

from silva_pipeline.postgres import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(bash|python)\n(.*?)^```", README, re.S | re.M)
COMMANDS = [
    line.split("  #")[0].strip()
    for lang, body in BLOCKS
    if lang == "bash"
    for line in body.splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
PYTHON_BLOCKS = [body for lang, body in BLOCKS if lang == "python"]
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
WARNINGS = re.compile(r"RuntimeWarning|DeprecationWarning|FutureWarning")

pytestmark = pytest.mark.slow


class World:
    """One user's machine: a scratch folder, a Dagster instance and silva's data folder."""

    def __init__(self, root: Path, tiny_backbone: Path) -> None:
        self.root = root
        self.cwd = root / "work"
        self.cwd.mkdir()
        self.tiny_backbone = tiny_backbone
        self.home = root / "silva-home"
        self.env = {
            **os.environ,
            "UV_PROJECT": str(ROOT),
            "DAGSTER_HOME": str(root / "dagster-home"),
            "SILVA_HOME": str(self.home),
            "SILVA_DEMO_SIZE": "1000",
            "SILVA_DEMO_LIBRARY_SIZE": "3000",
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(root / "hf-cache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.home / 'mlflow.db'}",
            "PYTHONUNBUFFERED": "1",
        }
        (root / "dagster-home").mkdir()
        (root / "dagster-home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.demo_done = False

    def run(
        self, command: str, cwd: Path | None = None, timeout: int = 600, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        """`command` as a shell runs it: leading VAR=value words set the environment."""
        argv = shlex.split(command)
        env = dict(env or self.env)
        while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
            name, value = argv.pop(0).split("=", 1)
            env[name] = value
        argv[0] = UV if argv[0] == "uv" else argv[0]
        return subprocess.run(
            argv, cwd=cwd or self.cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    def ok(
        self, command: str, cwd: Path | None = None, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        out = self.run(command, cwd, env=env)
        assert out.returncode == 0, f"{command}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
        return out

    def demo(self) -> None:
        """`uv run silva-demo` once: what the Dagster commands and the MLflow snippet build on."""
        if not self.demo_done:
            out = self.ok("uv run silva-demo")
            assert re.search(r"^test: spearman 0\.\d+", out.stdout, re.M), out.stdout[-2000:]
            assert "MLflow registry: silva-head v1" in out.stdout
            self.demo_done = True

    def serve(self, command: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
        """A server command started as a user starts it, in its own process group, with `extra`
        arguments (the free port the test picked); its output goes to `<root>/serve.log` (a pipe
        nobody reads would fill and stall a chatty server)."""
        with (self.root / "serve.log").open("w") as log:
            return subprocess.Popen(
                [*shlex.split(command.split("  #")[0].replace("uv", UV, 1)), *extra],
                cwd=self.cwd,
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def materializations(self, key: str) -> list:
        import dagster as dg

        os.environ["DAGSTER_HOME"] = self.env["DAGSTER_HOME"]
        with dg.DagsterInstance.get() as instance:
            return list(instance.fetch_materializations(dg.AssetKey(key), limit=100).records)

    def tiny_release(self, folder: Path) -> Path:
        """A head on the tiny test backbone, saved as a release (what `hub_release` writes)."""
        from silva_model.backbone import SiglipEmbedder
        from silva_model.checkpoint import save_pretrained
        from silva_model.head import HeadConfig, OrdinalHead

        spec = SiglipEmbedder(self.tiny_backbone, device="cpu").spec
        return save_pretrained(
            OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=spec)), folder
        )

    def hub_cache(self, repo_id: str) -> None:
        """A Hub release in the local Hugging Face cache, as `snapshot_download` leaves it."""
        from test_release_loading import _populate_hub_cache

        cache = Path(self.env["HF_HUB_CACHE"])
        if not (cache / f"models--{repo_id.replace('/', '--')}").exists():
            _populate_hub_cache(cache, repo_id, self.tiny_release(self.root / "hub-release"))

    def manifest(self) -> None:
        from silva_model.manifest import build_manifest, write_manifest
        from silva_model.synthetic import make_taste_dataset

        if not (self.cwd / "manifest.parquet").exists():
            d = make_taste_dataset(800, seed=1)
            write_manifest(build_manifest(d.embeddings, d.ratings), self.cwd / "manifest.parquet")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_backbone, persons_own_servers) -> World:
    return World(tmp_path_factory.mktemp("readme"), tiny_backbone)


@pytest.fixture(scope="module")
def persons_own_servers():
    """The person's own UIs on the README's default ports (3000, 8765), where those are free: a
    test that talks to a default port instead of the one it picked reaches one of these."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class NotSilva(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(418)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    servers = []
    for port in (3000, 8765):
        try:
            servers.append(ThreadingHTTPServer(("127.0.0.1", port), NotSilva))
        except OSError:  # taken already: by the person's own UI, which serves the same purpose
            continue
        Thread(target=servers[-1].serve_forever, daemon=True).start()
    yield
    for server in servers:
        server.shutdown()
        server.server_close()


def _no_warnings(out: subprocess.CompletedProcess) -> None:
    assert not WARNINGS.search(out.stderr), out.stderr[-2000:]


# --- the runners, one per README command ---------------------------------------------------------


def silva_demo(w: World, command: str) -> None:
    w.demo()
    assert len(list((w.home / "releases").glob("2*/model.safetensors"))) == 1


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
    w.demo()
    port = free_port()
    proc = w.serve(command, "-p", str(port))
    try:
        info = wait_for_http(f"http://127.0.0.1:{port}/server_info", proc, 180, "silva-ui")
        assert "dagster_webserver_version" in json.loads(info)
    finally:
        stop_process_group(proc)


def silva_rate(w: World, command: str) -> None:
    """After the demo, `silva rate` serves the newest queue on 127.0.0.1 (on the README's 8765 by
    default; here on a free port; the browser test is tests/test_rating_page.py)."""
    w.demo()
    port = free_port()
    proc = w.serve(command, "--port", str(port))
    try:
        url = f"http://127.0.0.1:{port}"
        items = json.loads(wait_for_http(f"{url}/api/items", proc, 120, "silva rate"))["items"]
        assert len(items) == 200 and "reason" not in items[0]  # blind by default
        with urllib.request.urlopen(f"{url}/", timeout=5) as r:
            assert "1-5 rate" in r.read().decode()
    finally:
        stop_process_group(proc)


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
    """`head+` and `key:head+` retrain, evaluate and release (the README says why both reach the
    whole tail). The same data and seed give the same test Spearman, so the gate lets it pass."""
    w.demo()
    before = len(w.materializations("hub_release"))
    out = w.ok(command, cwd=ROOT)
    for key in ("head", "evaluation"):
        assert w.materializations(key), key
    assert len(w.materializations("hub_release")) == before + 1, out.stderr[-3000:]


def definitions_validate(w: World, command: str) -> None:
    out = w.ok(command, cwd=ROOT)
    assert "All code locations passed validation" in out.stdout + out.stderr


def dg_check_defs(w: World, command: str) -> None:
    out = w.ok(command, cwd=ROOT)
    assert "All definitions loaded successfully" in out.stdout + out.stderr


def score_local(w: World, command: str) -> None:
    w.tiny_release(w.cwd / ".data" / "releases" / "<timestamp>")
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
    from silva_model.checkpoint import save_pretrained
    from silva_model.head import HeadConfig, OrdinalHead

    w.manifest()
    save_pretrained(OrdinalHead(HeadConfig()), w.cwd / "DIR")
    summary = dict(kv.split("=", 1) for kv in w.ok(command).stdout.split())
    import pyarrow.parquet as pq

    assert pq.read_table(w.cwd / "scores.parquet").num_rows == int(summary["n"]) > 0


def train_module(w: World, command: str) -> None:
    w.manifest()
    (w.cwd / "train.yaml").write_text("epochs: 3\nhidden: [64]\nbatch_size: 128\ndevice: cpu\n")
    out = w.ok(command)
    _no_warnings(out)
    assert re.match(r"best epoch [1-3]/3: val spearman 0\.\d+", out.stdout)
    assert (w.cwd / "runs" / "a" / "best.safetensors").is_file()


def evaluate_module(w: World, command: str) -> None:
    if not (w.cwd / "runs" / "a" / "best.json").exists():
        train_module(w, next(c for c in COMMANDS if "silva_model.train" in c))
    out = w.ok(command)
    _no_warnings(out)
    assert out.stdout.startswith("### test (n = ") and "| spearman |" in out.stdout


def trial_backbone(w: World, command: str) -> None:
    out = w.ok(command)
    assert out.stderr == "" and "SILVA_BACKBONE=trial-siglip" in out.stdout
    load = "from silva_model.backbone import SiglipEmbedder; print(SiglipEmbedder('trial-siglip', device='cpu').embed_dim)"
    loaded = w.ok(f'uv run python -c "{load}"')
    assert loaded.stdout.strip() == "64" and loaded.stderr == ""  # no warnings on load either


def own_images(w: World, command: str) -> None:
    """The person's own images, in a workspace of their own (not the demo's)."""
    home, dagster_home = w.root / "own-home", w.root / "own-dagster"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **w.env,
        "SILVA_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
    }
    for rating in range(1, 6):
        write_images(w.cwd / "my_ratings" / str(rating), 24, seed=rating)
    write_images(w.cwd / "my_library", 40, seed=9)
    if not (w.cwd / "trial-siglip").exists():
        w.ok("uv run silva trial-backbone trial-siglip")
    demo_releases = sorted((w.home / "releases").glob("*")) if (w.home / "releases").exists() else []
    out = w.ok(command, env=env)
    _no_warnings(out)
    lines = (out.stdout + out.stderr).splitlines()
    assert len(lines) <= 40, lines  # quiet by default
    assert "library: 40 images scored" in out.stdout and "MLflow registry: silva-head v1" in out.stdout
    assert len(list((home / "releases").glob("2*"))) == 1
    now = sorted((w.home / "releases").glob("*")) if (w.home / "releases").exists() else []
    assert now == demo_releases  # the demo's workspace is untouched


RUNNERS: dict[str, Callable[..., None]] = {
    "uv run silva-demo": silva_demo,
    "uv run pytest": pytest_itself,
    "pip install silva": pip_install,
    "pip install 'silva[pipeline]'": pip_install,
    "pip install 'silva[pipeline,pictoria]'": pip_install,
    "uv run silva-ui": silva_ui,
    "uv run silva rate": silva_rate,
    "uv run silva trial-backbone trial-siglip": trial_backbone,
    "SILVA_SOURCE=folder SILVA_RATINGS=my_ratings/ SILVA_LIBRARY_SOURCE=folder SILVA_LIBRARY=my_library/ "
    "SILVA_BACKBONE=trial-siglip uv run silva-run": own_images,
    "uv run silva-ui --postgres": silva_ui_postgres,
    "uv run dagster asset materialize --select head+ -m silva_pipeline": retrain_tail,
    "uv run dagster definitions validate -m silva_pipeline": definitions_validate,
    "uv run dg check defs": dg_check_defs,
    "uv run dg launch --assets 'key:head+'": retrain_tail,
    "uv run silva score my_art/ new.png --head .data/releases/<timestamp>": score_local,
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
    else:
        world.demo()
    script = world.cwd / f"block_{key.split('.')[0]}.py"
    script.write_text(PRELUDES[key] + block + CHECKS)
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=world.cwd,
        env=world.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    scores = json.loads(out.stdout.split("OK ", 1)[1].replace("'", '"'))
    assert all(0 <= s <= 1 for s in scores)
