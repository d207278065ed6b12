"""The ratings and library sources as resources: `kind` picks an origin of `silva_pipeline.sources`.
A field left empty takes the workspace's setup (setup.yaml, then SILVA_* variables); run config or
the launchpad set one for a run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Literal

import dagster as dg
from pydantic import Field

from silva_app.ratings_log import RatingsLog
from silva_app.setup import Setup
from silva_model.provenance import DEFAULT_BACKBONE, sha256_file
from silva_pipeline import sources
from silva_pipeline.resources.workspace import InWorkspace, fail_on

NOT_SET_UP = (
    "this workspace ({root}) has no ratings source yet: set it up once with "
    "`SILVA_SOURCE=folder SILVA_RATINGS=my_ratings/ uv run silva-run` (the README's 'Your own "
    "images'; file and pictoria work too), or run `uv run silva-demo` for the demo"
)
# What each kind of source reads at its path: a file or a folder (pictoria: its database file).
_EXPECTS = {"file": "file", "list": "file", "pictoria": "file", "folder": "folder"}


def path_problem(kind: str, path: str, where: str, what: str) -> str | None:
    """Why a source of `kind` cannot read `path` (None when it can), naming where it was set."""
    if kind not in _EXPECTS:
        return None
    if not path:
        return f"{where}: the {what} ({kind}) needs a path"
    for part in path.split(os.pathsep) if kind == "folder" else [path]:
        p = Path(part).expanduser()
        expected = _EXPECTS[kind]
        if not p.exists():
            return f"{where}: the {what} {expected} {p} does not exist"
        if (expected == "folder") != p.is_dir():
            return f"{where}: the {what} {p} is not a {expected}"
    return None


class _SourceOptions(InWorkspace):
    """What the ratings and the library sources share: pictoria's layout and the demo's pool."""

    library_root: str = Field(
        default="", description="pictoria: the folder posts.full_path is relative to (empty: as set up)"
    )
    precomputed_backbone: str = Field(
        default=DEFAULT_BACKBONE,
        description="pictoria: the backbone its stored vectors came from (Hub id or local folder)",
    )
    demo_library_size: int = Field(default=0, description="demo: unrated library images (0: as set up)")
    demo_seed: int = 0


class RatingsSource(_SourceOptions):
    """Where the person's ratings live. `kind` picks the reader; `fingerprint()` changes
    whenever the ratings do, which is what the new-ratings sensor watches."""

    SETTING: ClassVar[dict[str, str]] = {
        "kind": "ratings.source",
        "path": "ratings.path",
        "pairs": "ratings.pairs",
        "pictoria_dimension": "ratings.pictoria_dimension",
        "pictoria_absolute": "ratings.pictoria_absolute",
        "library_root": "library.root",
        "demo_size": "demo.size",
        "demo_library_size": "demo.library_size",
    }
    kind: Literal["", "demo", "file", "folder", "pictoria"] = Field(
        default="", description="demo, file (CSV/Parquet), folder (<1..5>/...), pictoria; empty: as set up"
    )
    path: str = Field(default="", description="ratings file, ratings folder, or pictoria database file")
    demo_size: int = Field(default=0, description="demo: synthetic rated embeddings (0: as set up)")
    pairs: str = Field(default="", description="pairwise judgements: CSV/Parquet of a, b, winner")
    pictoria_dimension: str = Field(
        default="", description="pictoria: the annotated dimension that is the person's taste"
    )
    pictoria_absolute: Literal["", "over_score", "under_score", "ignore"] = Field(
        default="", description="pictoria: a 5-point annotation over or under posts.score, or not read"
    )

    def value(self, name: str, setup: Setup | None = None):
        return self.setting(name, setup)[0]

    def resolved_kind(self, setup: Setup | None = None) -> str:
        kind = self.value("kind", setup)
        if not kind:
            raise dg.Failure(description=NOT_SET_UP.format(root=self.workspace.root))
        return str(kind)

    def problems(self, setup: Setup | None = None) -> list[str]:
        """What stops this source from being read, each naming where it was set."""
        setup = setup or self.workspace.setup()
        kind, _ = self.setting("kind", setup)
        if not kind:
            return [NOT_SET_UP.format(root=self.workspace.root)]
        path, where = self.setting("path", setup)
        found = [path_problem(str(kind), str(path), where, "ratings")]
        pairs, where = self.setting("pairs", setup)
        if pairs:
            found.append(path_problem("file", str(pairs), where, "pairs"))
        return [p for p in found if p]

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        fail_on(self.problems())

    def settings(self) -> sources.Settings:
        setup = self.workspace.setup()
        v = {name: self.value(name, setup) for name in self.SETTING}
        return sources.Settings(
            str(v["path"]),
            self.workspace.home(),
            str(v["library_root"]),
            self.precomputed_backbone,
            int(v["demo_size"]),
            int(v["demo_library_size"]),
            self.demo_seed,
            str(v["pictoria_dimension"]),
            str(v["pictoria_absolute"]),
        )

    def origin(self) -> sources.Origin:
        return sources.RATINGS_ORIGINS[self.resolved_kind()]

    def ratings_log(self) -> RatingsLog:
        return RatingsLog(self.workspace.home().ratings_log)

    def load(self) -> sources.RatingsLoad:
        """The source's ratings, with silva's own ratings log on top (the latest rating wins)."""
        load = self.origin().ratings(self.settings())
        return sources.with_log(load, self.ratings_log().entries())

    def judgements(self) -> sources.Judgements | None:
        """The comparisons the source itself records (pictoria's annotations), if it records any."""
        origin = self.origin()
        return origin.judgements(self.settings()) if isinstance(origin, sources.Judging) else None

    def pairs_path(self) -> Path | None:
        pairs = self.value("pairs")
        return Path(str(pairs)).expanduser() if pairs else None

    def fingerprint(self) -> str:
        """Changes whenever the ratings do, in the source, in silva's ratings log or in the pairs."""
        pairs = self.pairs_path()
        extra = f"+file:{sha256_file(pairs)}" if pairs and pairs.is_file() else ""
        source = self.origin().fingerprint(self.settings())
        return f"{source}+{self.ratings_log().fingerprint()}{extra}"


class LibrarySource(_SourceOptions):
    """The person's whole library, rated or not: what `library_scores` scores and `rating_queue`
    picks from. `auto` follows the ratings source: the demo's synthetic pool for `demo`, every
    post of the same database for `pictoria`, nothing otherwise (set `kind` and `path`)."""

    SETTING: ClassVar[dict[str, str]] = {
        "kind": "library.source",
        "path": "library.path",
        "library_root": "library.root",
        "demo_library_size": "demo.library_size",
    }
    kind: Literal["", "auto", "none", "demo", "folder", "list", "pictoria"] = Field(
        default="",
        description="auto, none, demo, folder (one or more, os.pathsep-separated), list (text/CSV of "
        "paths), pictoria; empty: as set up",
    )
    path: str = Field(default="", description="library folder(s), path list, or pictoria database file")
    shard_size: int = Field(default=4096, description="images per library shard (one dynamic partition)")

    def resolved(self, ratings: RatingsSource, setup: Setup | None = None) -> tuple[str, str, str]:
        """(kind, path, where the path was set) after `auto`, which follows the ratings source."""
        setup = setup or self.workspace.setup()
        kind, _ = self.setting("kind", setup)
        if kind not in ("", "auto"):
            path, where = self.setting("path", setup)
            return str(kind), str(path), where
        rated = ratings.value("kind", setup)
        if rated in ("demo", "pictoria"):
            path, where = ratings.setting("path", setup)
            return str(rated), str(path), where
        return "none", "", ""

    def problems(self, setup: Setup | None = None) -> list[str]:
        """What stops the library from being read (one that follows the ratings source is checked
        with it), naming where it was set."""
        setup = setup or self.workspace.setup()
        kind, _ = self.setting("kind", setup)
        path, where = self.setting("path", setup)
        problem = path_problem(str(kind), str(path), where, "library")
        return [problem] if problem else []

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        fail_on(self.problems())

    def load(self, ratings: RatingsSource) -> sources.LibraryLoad:
        setup = self.workspace.setup()
        kind, path, _ = self.resolved(ratings, setup)
        if kind == "none":
            return sources.LibraryLoad(sources.empty_library())
        follows = self.setting("kind", setup)[0] in ("", "auto")  # pictoria's layout follows too
        own = ratings.settings()
        settings = sources.Settings(
            path,
            self.workspace.home(),
            str(self.setting("library_root", setup)[0]) or (own.library_root if follows else ""),
            ratings.precomputed_backbone if follows else self.precomputed_backbone,
            demo_library_size=int(self.setting("demo_library_size", setup)[0]),
            demo_seed=self.demo_seed,
        )
        return sources.LIBRARY_ORIGINS[kind].library(settings)
