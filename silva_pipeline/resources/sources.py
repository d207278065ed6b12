"""The ratings and library sources as resources: `kind` picks an origin of `silva_pipeline.sources`,
its options come from SILVA_* variables or run config."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from silva_app.home import silva_home
from silva_app.ratings_log import RatingsLog
from silva_model.provenance import DEFAULT_BACKBONE, sha256_file
from silva_pipeline import sources
from silva_pipeline.resources.env import env_field


class _SourceOptions(dg.ConfigurableResource):
    """What the ratings and the library sources share: pictoria's layout and the demo's pool."""

    library_root: str = env_field(
        "SILVA_LIBRARY_ROOT", "", "pictoria: folder that posts.full_path is relative to"
    )
    precomputed_backbone: str = Field(
        default=DEFAULT_BACKBONE,
        description="pictoria: the backbone its stored vectors came from (Hub id or local folder)",
    )
    demo_library_size: int = env_field(
        "SILVA_DEMO_LIBRARY_SIZE", "20000", "demo: number of synthetic unrated library images", int
    )
    demo_seed: int = 0


class RatingsSource(_SourceOptions):
    """Where the person's ratings live. `kind` picks the reader; `fingerprint()` changes
    whenever the ratings do, which is what the new-ratings sensor watches."""

    kind: Literal["demo", "file", "folder", "pictoria"] = env_field(
        "SILVA_SOURCE", "demo", "demo (synthetic), file (CSV/Parquet), folder (ratings/<1..5>/...), pictoria"
    )
    path: str = env_field("SILVA_RATINGS", "", "ratings file, ratings folder, or pictoria database file")
    demo_size: int = env_field("SILVA_DEMO_SIZE", "4000", "demo: number of synthetic rated embeddings", int)
    pairs: str = env_field(
        "SILVA_PAIRS", "", "optional pairwise judgements: CSV/Parquet of a, b, winner (a | b | tie)"
    )
    pictoria_dimension: str = env_field(
        "SILVA_PICTORIA_DIMENSION",
        "overall",
        "pictoria: the annotated dimension that is the person's taste (overall, color, finish, "
        "composition); posts.score is read for overall only",
    )
    pictoria_absolute: Literal["over_score", "under_score", "ignore"] = env_field(
        "SILVA_PICTORIA_ABSOLUTE",
        "over_score",
        "pictoria: a post's latest 5-point absolute annotation replaces its posts.score "
        "(over_score), rates only unscored posts (under_score), or is not read (ignore)",
    )

    def _settings(self) -> sources.Settings:
        return sources.Settings(
            self.path,
            silva_home(),
            self.library_root,
            self.precomputed_backbone,
            self.demo_size,
            self.demo_library_size,
            self.demo_seed,
            self.pictoria_dimension,
            self.pictoria_absolute,
        )

    def load(self) -> sources.RatingsLoad:
        """The source's ratings, with silva's own ratings log on top (the latest rating wins)."""
        load = sources.RATINGS_ORIGINS[self.kind].ratings(self._settings())
        return sources.with_log(load, RatingsLog.default().entries())

    def judgements(self) -> sources.Judgements | None:
        """The comparisons the source itself records (pictoria's annotations), if it records any."""
        origin = sources.RATINGS_ORIGINS[self.kind]
        return origin.judgements(self._settings()) if isinstance(origin, sources.Judging) else None

    def pairs_path(self) -> Path | None:
        return Path(self.pairs).expanduser() if self.pairs else None

    def fingerprint(self) -> str:
        """Changes whenever the ratings do, in the source, in silva's ratings log or in the pairs."""
        pairs = self.pairs_path()
        extra = f"+file:{sha256_file(pairs)}" if pairs and pairs.is_file() else ""
        source = sources.RATINGS_ORIGINS[self.kind].fingerprint(self._settings())
        return f"{source}+{RatingsLog.default().fingerprint()}{extra}"


class LibrarySource(_SourceOptions):
    """The person's whole library, rated or not: what `library_scores` scores and `rating_queue`
    picks from. `auto` follows the ratings source: the demo's synthetic pool for `demo`, every
    post of the same database for `pictoria`, nothing otherwise (set `kind` and `path`)."""

    kind: Literal["auto", "none", "demo", "folder", "list", "pictoria"] = env_field(
        "SILVA_LIBRARY_SOURCE",
        "auto",
        "auto, none, demo, folder (one or more, os.pathsep-separated), list (text/CSV of paths), pictoria",
    )
    path: str = env_field("SILVA_LIBRARY", "", "library folder(s), path list, or pictoria database file")
    shard_size: int = Field(default=4096, description="images per library shard (one dynamic partition)")

    def resolved(self, ratings: RatingsSource) -> tuple[str, str]:
        """(kind, path) after `auto`, which follows the ratings source."""
        if self.kind != "auto":
            return self.kind, self.path
        if ratings.kind in ("demo", "pictoria"):
            return ratings.kind, ratings.path
        return "none", ""

    def load(self, ratings: RatingsSource) -> sources.LibraryLoad:
        kind, path = self.resolved(ratings)
        if kind == "none":
            return sources.LibraryLoad(sources.empty_library())
        follows = self.kind == "auto"  # pictoria's layout follows the ratings source's too
        settings = sources.Settings(
            path,
            silva_home(),
            self.library_root or (ratings.library_root if follows else ""),
            ratings.precomputed_backbone if follows else self.precomputed_backbone,
            demo_library_size=self.demo_library_size,
            demo_seed=self.demo_seed,
        )
        return sources.LIBRARY_ORIGINS[kind].library(settings)
