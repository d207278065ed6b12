"""How a workspace is set up: where its ratings and library come from, the backbone, the judge
and where runs are tracked. The one loader of these settings, whoever reads them (`silva-run`,
`dg launch`, the sensor and the schedule under `silva-ui`, the launchpad).

`silva-run` records the setup it ran with in the workspace (`setup.yaml` in the data root), so a
later `silva-run` without variables, a retrain from a fresh shell and the daemon all read the same
sources; nothing ever falls back to the demo's data. Each setting comes from, in order: its
default, the workspace's `setup.yaml`, its environment variable, a command-line option. Paths are
recorded absolute, so the workspace works from any folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from silva_app.home import Home
from silva_model.atomic import atomic_write_text
from silva_model.provenance import DEFAULT_BACKBONE
from silva_model.train_config import TrainConfig, option_variable

SETUP_NAME = "setup.yaml"


@dataclass(frozen=True)
class Setting:
    key: str  # where it sits in setup.yaml: "section.name" or "name"
    variable: str
    default: str | int
    help: str
    choices: tuple[str, ...] = ()
    kind: str = "text"  # text | path (recorded absolute) | paths (os.pathsep-separated) | int


SETTINGS = (
    Setting(
        "ratings.source",
        "SILVA_SOURCE",
        "",
        "where your ratings are: file (CSV/Parquet), folder (<rating>/...), pictoria; demo: the demo",
        ("", "file", "folder", "pictoria", "demo"),
    ),
    Setting("ratings.path", "SILVA_RATINGS", "", "the ratings file, folder or pictoria db", kind="path"),
    Setting("ratings.pairs", "SILVA_PAIRS", "", "pairwise judgements: a, b, winner", kind="path"),
    Setting(
        "ratings.pictoria_dimension",
        "SILVA_PICTORIA_DIMENSION",
        "overall",
        "pictoria: the annotated dimension that is your taste",
        ("overall", "color", "finish", "composition"),
    ),
    Setting(
        "ratings.pictoria_absolute",
        "SILVA_PICTORIA_ABSOLUTE",
        "over_score",
        "pictoria: a 5-point annotation replaces posts.score, rates only unscored posts, or is not read",
        ("over_score", "under_score", "ignore"),
    ),
    Setting(
        "library.source",
        "SILVA_LIBRARY_SOURCE",
        "auto",
        "the images to score: folder, list (a file of paths), pictoria, none; auto: as the ratings",
        ("auto", "none", "folder", "list", "pictoria", "demo"),
    ),
    Setting("library.path", "SILVA_LIBRARY", "", "library folder(s), path list or pictoria db", kind="paths"),
    Setting("library.root", "SILVA_LIBRARY_ROOT", "", "pictoria: what its paths start from", kind="path"),
    Setting("backbone", "SILVA_BACKBONE", DEFAULT_BACKBONE, "a Hub id or a local folder", kind="path"),
    Setting("hub_repo", "SILVA_HUB_REPO", "", "a Hub repo releases are uploaded to (with HF_TOKEN)"),
    Setting("tracking_uri", "MLFLOW_TRACKING_URI", "", "an MLflow server; empty: the workspace's store"),
    Setting("demo.size", "SILVA_DEMO_SIZE", 4000, "demo: synthetic rated embeddings", kind="int"),
    Setting("demo.library_size", "SILVA_DEMO_LIBRARY_SIZE", 20000, "demo: library images", kind="int"),
)
BY_KEY = {s.key: s for s in SETTINGS}
RECORDED_TRAINING = ("prior",)  # the training options silva-run records (the others stay per run)


def _absolute(setting: Setting, value: str, cwd: Path) -> str:
    """A relative path as an absolute one, from where it was given. A backbone that is no folder
    here is a Hub id and stays as it is."""
    if setting.kind not in ("path", "paths") or not value:
        return value
    parts = value.split(os.pathsep) if setting.kind == "paths" else [value]
    out = []
    for part in parts:
        p = Path(part).expanduser()
        if setting.key == "backbone" and not (cwd / p).is_dir():
            out.append(part)
        else:
            out.append(str((cwd / p).resolve()))
    return os.pathsep.join(out)


def _typed(setting: Setting, value: Any, where: str) -> str | int:
    if setting.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {setting.key} must be a whole number, got {value!r}") from None
    value = "" if value is None else str(value)
    if setting.choices and value not in setting.choices:
        shown = [c for c in setting.choices if c]
        raise ValueError(f"{where}: {setting.key} must be one of {shown}, got {value!r}")
    return value


@dataclass(frozen=True)
class Setup:
    """A workspace's settings, each with where it came from (for messages that name it), and its
    training options in their layers (TrainConfig.load merges them)."""

    home: Home
    values: dict[str, str | int]
    origins: dict[str, str]  # key -> "default", "<key> in <file>", a variable name or an option
    training_file: dict[str, Any] = field(default_factory=dict)  # setup.yaml's `training:`
    training_env: dict[str, str] = field(default_factory=dict)  # the SILVA_<OPTION> variables set
    training_args: dict[str, Any] = field(default_factory=dict)  # command-line training options

    @property
    def file(self) -> Path:
        return self.home.root / SETUP_NAME

    @classmethod
    def load(
        cls,
        home: Home,
        env: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | None = None,
        cwd: Path | None = None,
    ) -> Setup:
        """The workspace's setup: `setup.yaml` in `home`, then `env`, then `overrides` (by key;
        training options as `training.<option>`); a bad value names its variable or file."""
        env = os.environ if env is None else env
        overrides = overrides or {}
        cwd = cwd or Path.cwd()
        file = home.root / SETUP_NAME
        recorded = _read(file)
        values: dict[str, str | int] = {}
        origins: dict[str, str] = {}
        for s in SETTINGS:
            value, origin = s.default, "default"
            if _get(recorded, s.key) is not None:
                value, origin = _get(recorded, s.key), f"{s.key} in {file}"
            if env.get(s.variable, "").strip():
                value, origin = _absolute(s, env[s.variable].strip(), cwd), s.variable
            if overrides.get(s.key) is not None:
                value, origin = _absolute(s, str(overrides[s.key]), cwd), f"--{s.key.split('.')[-1]}"
            values[s.key] = _typed(s, value, origin)
            origins[s.key] = origin
        names = TrainConfig.__dataclass_fields__
        training_env = {n: env[option_variable(n)] for n in names if env.get(option_variable(n), "").strip()}
        args = {k.removeprefix("training."): v for k, v in overrides.items() if k.startswith("training.")}
        for layer in (training_env, args):
            if layer.get("prior") and (cwd / str(layer["prior"])).is_dir():  # a folder; else a Hub id
                layer["prior"] = str((cwd / str(layer["prior"])).resolve())
        training_file = dict(recorded.get("training") or {})
        try:
            TrainConfig.load(training_file)
        except ValueError as e:
            raise ValueError(f"{file}: training: {e}") from None
        setup = cls(home, values, origins, training_file, training_env, args)
        setup.train_config()  # a bad training option fails here, by name
        return setup

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def configured(self) -> bool:
        """Whether the workspace knows where its ratings are."""
        return bool(self.values["ratings.source"])

    def where(self, key: str) -> str:
        """Where a setting came from, as a person sets it: its variable, or its place in the file."""
        origin = self.origins.get(key, "default")
        return BY_KEY[key].variable if origin == "default" else origin

    def train_config(self, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
        """The workspace's training options (setup.yaml's `training:`, then SILVA_<OPTION>, then
        the command line), then `overrides` (one run's own: the launchpad's)."""
        env = {option_variable(k): v for k, v in self.training_env.items()}
        return TrainConfig.load(self.training_file, env, {**self.training_args, **(overrides or {})})

    def record(self) -> Path:
        """Write the settings a person set (not the defaults) into the workspace, atomically;
        of the training options, the judge (the others stay per run unless written in the file)."""
        out: dict[str, Any] = {}
        for s in SETTINGS:
            if self.values[s.key] != s.default:
                _put(out, s.key, self.values[s.key])
        training = {k: v for k, v in self.training_file.items() if k not in RECORDED_TRAINING}
        chosen = self.train_config()
        training |= {k: getattr(chosen, k) for k in RECORDED_TRAINING if getattr(chosen, k)}
        if training:
            out["training"] = training
        header = (
            "# How this workspace is set up. silva-run writes it; SILVA_* variables and silva-run's\n"
            "# options override it (and silva-run records them). Edit it freely.\n"
        )
        atomic_write_text(self.file, header + yaml.safe_dump(out, sort_keys=False))
        return self.file


def forget_person_settings(env: dict[str, str]) -> None:
    """Drop the person's SILVA_* settings and training options from `env` (the demo runs on the
    demo, in its own workspace, whatever the person's shell says); the demo's own sizes stay."""
    names = [s.variable for s in SETTINGS if not s.key.startswith("demo.")]
    names += [option_variable(n) for n in TrainConfig.__dataclass_fields__]
    for name in names:
        env.pop(name, None)


def _get(data: Mapping[str, Any], key: str) -> Any:
    for part in key.split("."):
        if not isinstance(data, Mapping) or part not in data:
            return None
        data = data[part]
    return data


def _put(data: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _read(path: Path) -> dict[str, Any]:
    """setup.yaml's settings; a file that is not one, or a key silva does not know (a typo would
    otherwise be ignored without a word), is refused by name."""
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: re-save it as UTF-8 ({e})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of settings")
    sections = {s.key.split(".")[0] for s in SETTINGS if "." in s.key}
    unknown = []
    for name, value in data.items():
        if name in sections:
            if value is not None and not isinstance(value, dict):
                known = sorted(s.key.split(".")[1] for s in SETTINGS if s.key.startswith(f"{name}."))
                raise ValueError(f"{path}: {name} must hold settings ({', '.join(known)}), got {value!r}")
            unknown += [f"{name}.{sub}" for sub in value or {} if f"{name}.{sub}" not in BY_KEY]
        elif name not in BY_KEY and name != "training":
            unknown.append(str(name))
    if unknown:
        known = ", ".join([*BY_KEY, "training"])
        raise ValueError(f"{path}: unknown setting(s) {sorted(unknown)}: misspelled? known: {known}")
    return data
