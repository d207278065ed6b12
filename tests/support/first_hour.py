"""A person's first hour, as the README walks it: a fresh copy of the project (its own `.venv`,
`.data` and `.env`), images the person made (not the suite's fixtures: varied sizes, formats and
folders), and a shell with no SILVA_* variable and no DAGSTER_HOME."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
from helpers import ROOT
from PIL import Image, ImageDraw

UV = os.environ.get("UV") or shutil.which("uv") or "uv"
FORMATS = (".png", ".jpg", ".webp", ".bmp", ".gif")
# What a person's shell does not have: the suite's own settings.
NOT_IN_A_FRESH_SHELL = re.compile(
    r"^(SILVA_|DAGSTER_HOME$|MLFLOW_TRACKING_URI$|UV_PROJECT$|VIRTUAL_ENV$|PYTHONPATH$)"
)


README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_command(pattern: str) -> str:
    """The README's command line that matches `pattern`, as written (without its comment)."""
    found = [line.split("  #")[0].strip() for line in README.splitlines() if re.search(pattern, line)]
    assert found, f"the README has no command matching {pattern!r}"
    return found[0]


TRIAL = readme_command(r"^uv run silva trial-backbone ")
OWN_IMAGES = readme_command(r"^SILVA_SOURCE=folder .* uv run silva-run$")
RETRAIN = readme_command(r"^uv run silva-run +#")
RATE = readme_command(r"^uv run silva rate +#")
WALKED = (OWN_IMAGES, RETRAIN)  # the README runner of these commands is the walk (test_first_hour.py)


def project_copy(target: Path) -> Path:
    """The checkout's files (tracked, and new ones git does not ignore), as a clone would have
    them, without anything a run left in this checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def illustration(rng: np.random.Generator, size: tuple[int, int] = (40, 640)) -> Image.Image:
    """A picture of shapes on a gradient, of a random size (within `size`) and aspect."""
    w, h = (int(v) for v in rng.integers(*size, 2))
    top, bottom = rng.integers(0, 256, (2, 3))
    t = np.linspace(0, 1, h)[:, None, None]
    im = Image.fromarray((top * (1 - t) + bottom * t).astype(np.uint8).repeat(w, axis=1), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 9))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        box = [x0, y0, x0 + int(rng.integers(4, w)), y0 + int(rng.integers(4, h))]
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return im


def save(im: Image.Image, stem: Path, fmt: str) -> Path:
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = stem.with_suffix(fmt)
    (im.convert("P") if fmt == ".gif" else im).save(path)
    return path


def make_images(root: Path, n: int, seed: int, rated: bool, size: tuple[int, int] = (40, 640)) -> list[Path]:
    """`n` pictures under `root`: in `<rating>/` folders (some one level deeper) when `rated`,
    every format silva reads among them (large ones as JPEG)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fmt = FORMATS[i % len(FORMATS)] if size[1] <= 640 else ".jpg"
        folder = root / str(1 + i % 5) if rated else root
        if i % 7 == 3:
            folder = folder / "sketches"
        out.append(save(illustration(rng, size), folder / f"art_{seed}_{i:03d}", fmt))
    return out


class Shell:
    """Commands run as a person types them in the project folder: leading VAR=value words set the
    environment, `uv` is uv."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.env = {k: v for k, v in os.environ.items() if not NOT_IN_A_FRESH_SHELL.match(k)}
        self.env |= {"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}

    def argv(self, command: str) -> tuple[list[str], dict[str, str]]:
        argv, env = shlex.split(command), dict(self.env)
        while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
            name, value = argv.pop(0).split("=", 1)
            env[name] = value
        return [UV if argv[0] == "uv" else argv[0], *argv[1:]], env

    def run(self, command: str, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
        argv, env = self.argv(command)
        return subprocess.run(
            argv, cwd=cwd or self.project, env=env, capture_output=True, text=True, timeout=timeout
        )

    def ok(self, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        out = self.run(command, cwd)
        assert out.returncode == 0, f"{command}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    def start(self, command: str, log: Path) -> subprocess.Popen:
        """A command left running, in its own process group (so a kill reaches all of it)."""
        argv, env = self.argv(command)
        with log.open("w") as f:
            return subprocess.Popen(
                argv, cwd=self.project, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )
