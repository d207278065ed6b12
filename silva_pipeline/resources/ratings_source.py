from __future__ import annotations

from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from silva_model.provenance import DEFAULT_BACKBONE
from silva_pipeline import sources
from silva_pipeline.paths import data_dir
from silva_pipeline.ratings_log import RatingsLog
from silva_pipeline.resources.env import env_field


class RatingsSource(dg.ConfigurableResource):
    """Where the person's ratings live. `kind` picks the reader; `fingerprint()` changes
    whenever the ratings do, which is what the new-ratings sensor watches."""

    kind: Literal["demo", "file", "folder", "pictoria"] = env_field(
        "SILVA_SOURCE", "demo", "demo (synthetic), file (CSV/Parquet), folder (ratings/<1..5>/...), pictoria"
    )
    path: str = env_field("SILVA_RATINGS", "", "ratings file, ratings folder, or pictoria database file")
    library_root: str = env_field(
        "SILVA_LIBRARY_ROOT", "", "pictoria: folder that posts.full_path is relative to"
    )
    precomputed_backbone: str = Field(
        default=DEFAULT_BACKBONE,
        description="pictoria: the backbone its stored vectors came from (Hub id or local folder)",
    )
    demo_size: int = env_field("SILVA_DEMO_SIZE", "4000", "demo: number of synthetic rated embeddings", int)
    demo_seed: int = 0

    def _path(self) -> Path:
        if not self.path:
            raise ValueError(f"ratings source kind {self.kind!r} needs `path`")
        return Path(self.path).expanduser()

    def load(self) -> sources.RatingsLoad:
        """The source's ratings, with silva's own ratings log on top (the latest rating wins)."""
        return sources.with_log(self._load_source(), RatingsLog.default().entries())

    def _load_source(self) -> sources.RatingsLoad:
        if self.kind == "demo":
            return sources.demo_ratings(data_dir() / "demo", self.demo_size, self.demo_seed)
        if self.kind == "file":
            return sources.read_ratings_file(self._path())
        if self.kind == "folder":
            return sources.read_ratings_folder(self._path())
        return sources.read_pictoria(
            self._path(), self.library_root or None, vectors_backbone=self.precomputed_backbone
        )

    def fingerprint(self) -> str:
        """Changes whenever the ratings do, in the source or in silva's ratings log."""
        return f"{self._source_fingerprint()}+{RatingsLog.default().fingerprint()}"

    def _source_fingerprint(self) -> str:
        if self.kind == "demo":
            return f"demo:{self.demo_size}:{self.demo_seed}"
        if self.kind == "file":
            return sources.fingerprint_file(self._path())
        if self.kind == "folder":
            return sources.fingerprint_folder(self._path())
        return sources.fingerprint_pictoria(self._path())
