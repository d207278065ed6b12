"""One user's machine for the README's commands: a scratch folder, a Dagster instance, silva's data
folder and the demo's workspace, and how a command runs there as a shell runs it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from helpers import (
    ROOT,
    TINY_DIM,
)

UV = os.environ.get("UV") or shutil.which("uv") or "uv"


WARNINGS = re.compile(r"RuntimeWarning|DeprecationWarning|FutureWarning")


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
            "SILVA_DEMO_HOME": str(root / "demo"),
            # the person's own sources, set: the demo must not follow them
            "SILVA_SOURCE": "folder",
            "SILVA_RATINGS": str(root / "not-the-demo"),
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

    def demo(self) -> subprocess.CompletedProcess | None:
        """`uv run silva-demo` once: what the Dagster commands and the MLflow snippet build on."""
        if not self.demo_done:
            out = self.ok("uv run silva-demo")
            assert re.search(r"^test: spearman 0\.\d+", out.stdout, re.M), out.stdout[-2000:]
            assert "MLflow registry: silva-head v1" in out.stdout
            self.demo_done = True
            return out
        return None

    def demo_env(self) -> dict:
        """The environment of a person whose workspace is the demo's (what `--demo` selects), for
        the commands that act on a workspace's runs as written."""
        self.demo()
        demo = self.root / "demo"
        env = {**self.env, "SILVA_HOME": str(demo / "data"), "DAGSTER_HOME": str(demo / "dagster")}
        env["SILVA_SOURCE"] = "demo"
        for own in ("MLFLOW_TRACKING_URI", "SILVA_RATINGS"):
            env.pop(own)
        return env

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

    def materializations(self, key: str, env: dict | None = None) -> list:
        import dagster as dg

        with dg.DagsterInstance.from_config((env or self.env)["DAGSTER_HOME"]) as instance:
            return list(instance.fetch_materializations(dg.AssetKey(key), limit=100).records)

    def tiny_release(self, folder: Path) -> Path:
        """A head on the tiny test backbone, saved as a release (what `hub_release` writes)."""
        from silva_model.backbone import SiglipEmbedder
        from silva_model.head import HeadConfig, OrdinalHead
        from silva_model.release import save_pretrained

        spec = SiglipEmbedder(self.tiny_backbone, device="cpu").spec
        return save_pretrained(
            OrdinalHead(HeadConfig(embed_dim=TINY_DIM, hidden=(8,), backbone=spec)), folder
        )

    def hub_cache(self, repo_id: str) -> None:
        """A Hub release in the local Hugging Face cache, as `snapshot_download` leaves it."""
        from helpers import populate_hub_cache

        cache = Path(self.env["HF_HUB_CACHE"])
        if not (cache / f"models--{repo_id.replace('/', '--')}").exists():
            populate_hub_cache(cache, repo_id, self.tiny_release(self.root / "hub-release"))

    def manifest(self) -> None:
        from silva_model.manifest import build_manifest
        from silva_model.parquet import write_parquet
        from silva_model.synthetic import make_taste_dataset

        if not (self.cwd / "manifest.parquet").exists():
            d = make_taste_dataset(800, seed=1)
            write_parquet(build_manifest(d.embeddings, d.ratings), self.cwd / "manifest.parquet")


def no_warnings(out: subprocess.CompletedProcess) -> None:
    assert not WARNINGS.search(out.stderr), out.stderr[-2000:]
