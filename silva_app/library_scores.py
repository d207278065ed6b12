"""The library's scores as the person's side reads them: the newest the pipeline published, checked,
with the person's newer ratings from silva's log laid on top, and the one query the gallery and
`silva export` both run over them (filters and orders over NumPy and Arrow arrays, never a loop
over the library's rows).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from silva_app.home import Home, silva_home
from silva_model.parquet import read_parquet

SCORES_ASSET = "library_scores"
SCORED_BY_KEY = b"silva.scored_by"  # schema metadata: the head's MLflow run and the Dagster run
COLUMNS = (
    "image_sha256",
    "path",
    "post_id",
    "score",
    "expected_rating",
    "uncertainty",
    "out_of_domain",
    "rating",
)
WHY_COLUMNS = ("neighbours", "neighbour_similarity", "neighbour_ratings", "judge_share", "judge_shift")
FILTERS = ("all", "unrated", "rated", "disagreements", "out-of-domain")
SORTS = ("score", "uncertainty")


def latest_scores(home: Home | None = None) -> Path:
    """The newest library scores the pipeline wrote, where it publishes them in the workspace."""
    return (home or silva_home()).published(
        SCORES_ASSET,
        "score your library first (`uv run silva-run` with SILVA_LIBRARY_SOURCE and SILVA_LIBRARY; "
        "after the demo: --demo), or pass --scores",
    )


@dataclass(frozen=True)
class Query:
    """Which images, in which order: `sort` by score or uncertainty, highest first unless
    `ascending`; `filter` one of FILTERS (disagreements: rated images, the largest gap between
    the person's rating and the expected one first); a `folder` the path starts with; a range of
    expected ratings."""

    sort: str = "score"
    filter: str = "all"
    folder: str = ""
    min_rating: float | None = None
    max_rating: float | None = None
    ascending: bool = False

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort {self.sort!r} is not one of {list(SORTS)}")
        if self.filter not in FILTERS:
            raise ValueError(f"filter {self.filter!r} is not one of {list(FILTERS)}")


class LibraryScores:
    """The scores of every library image as arrays, in the table's order (a row index names an
    image), with the person's current rating of each: the pipeline's, or a newer one from the log."""

    def __init__(self, table: pa.Table, source: Path) -> None:
        self.source, self.table = source, table
        self.sha256 = table.column("image_sha256").combine_chunks()
        self.path = table.column("path").combine_chunks().cast(pa.string())
        self.post_id = table.column("post_id").combine_chunks()
        self.score = _floats(table, "score")
        self.expected = _floats(table, "expected_rating")
        self.uncertainty = _floats(table, "uncertainty")
        self.out_of_domain = table.column("out_of_domain").to_numpy(zero_copy_only=False).astype(bool)
        self.given = table.column("rating").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int8)
        self.rating = self.given.copy()  # 0: not rated
        self._orders: dict[str, np.ndarray] = {}
        self._folder: tuple[str, np.ndarray] | None = None
        self._why: pa.Table | None = None
        self._why_lock = threading.Lock()

    @classmethod
    def read(cls, path: str | Path) -> LibraryScores:
        """Read and check a library_scores table: one without its columns, or without a single
        image, is refused with what to do."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no library scores at {path}")
        names = pq.read_schema(path).names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{path} is not a library_scores table: it lacks column(s) {missing}")
        table = read_parquet(path, list(COLUMNS))
        if table.num_rows == 0:
            raise ValueError(
                f"{path} holds no scored images: the library is empty, or none of it is embedded "
                "yet (SILVA_LIBRARY_SOURCE and SILVA_LIBRARY name it; docs/rating.md)"
            )
        return cls(table, path)

    def __len__(self) -> int:
        return len(self.score)

    def overlay(self, entries: pa.Table) -> None:
        """Lay the ratings log's standing entries (`RatingsLog.entries()`) on the pipeline's
        ratings: per image, the latest logged rating wins."""
        latest = entries.group_by("image_sha256").aggregate([("id", "max")])
        ids = pc.index_in(latest["id_max"], value_set=entries["id"])
        rating = entries["rating"].take(ids).to_numpy(zero_copy_only=False)
        at = pc.index_in(self.sha256, value_set=latest["image_sha256"])
        logged = at.is_valid().to_numpy(zero_copy_only=False)
        self.rating = self.given.copy()
        self.rating[logged] = rating[at.fill_null(0).to_numpy(zero_copy_only=False)[logged]]

    def select(self, q: Query) -> np.ndarray:
        """Row indices of the images `q` asks for, in its order."""
        rated = self.rating > 0
        keep = {
            "all": np.ones(len(self), bool),
            "unrated": ~rated,
            "rated": rated,
            "disagreements": rated,
            "out-of-domain": self.out_of_domain,
        }[q.filter]
        if q.folder:
            keep = keep & self._under(q.folder)
        if q.min_rating is not None:
            keep = keep & (self.expected >= q.min_rating)
        if q.max_rating is not None:
            keep = keep & (self.expected <= q.max_rating)
        if q.filter == "disagreements":
            rows = np.flatnonzero(keep)
            gap = np.abs(self.rating[rows] - self.expected[rows])
            order = rows[np.argsort(-gap, kind="stable")]
        else:
            order = self._order(q.sort)
            order = order[keep[order]]
        return order[::-1] if q.ascending else order

    def _order(self, sort: str) -> np.ndarray:
        """Every row, highest `sort` first (computed once per key)."""
        if sort not in self._orders:
            values = self.score if sort == "score" else self.uncertainty
            self._orders[sort] = np.argsort(-values, kind="stable")
        return self._orders[sort]

    def _under(self, folder: str) -> np.ndarray:
        """Rows whose path starts with `folder` (the last one asked is kept: a page turn asks again)."""
        if self._folder is None or self._folder[0] != folder:
            hit = pc.starts_with(self.path, folder).fill_null(False)
            self._folder = (folder, hit.to_numpy(zero_copy_only=False))
        return self._folder[1]

    def why(self, i: int) -> dict[str, Any]:
        """Why image `i` scores as it does, as the pipeline stored it: its nearest rated images
        (`neighbours`: image_sha256, `neighbour_similarity`, `neighbour_ratings`) and a judge's
        share and shift; empty lists and nulls where the table predates them. Read on first use."""
        table = self.load_why()
        row = {c: table.column(c)[i].as_py() for c in table.column_names}
        return {c: row.get(c, [] if c.startswith("neighbour") else None) for c in WHY_COLUMNS}

    def load_why(self) -> pa.Table:
        """The explanation columns, read once (the gallery reads them in the background at start,
        so the first image opened does not wait for them)."""
        with self._why_lock:
            if self._why is None:
                names = pq.read_schema(self.source).names
                self._why = read_parquet(self.source, [c for c in WHY_COLUMNS if c in names])
            return self._why

    def name(self, i: int) -> str:
        """What an image is called on the page and in messages: its file name, else its hash."""
        path = self.path[i].as_py()
        return Path(path).name if path else f"{self.sha256[i].as_py()[:12]} (no file)"

    def scored_by(self, home: Home | None = None) -> str:
        """Which head scored these images, as far as the table records it, and its release."""
        meta = json.loads((self.table.schema.metadata or {}).get(SCORED_BY_KEY, b"{}"))
        run = meta.get("mlflow_run_id")
        if not run:
            return f"{self.source} (which head scored it is not recorded)"
        releases = (home or silva_home()).releases
        for config in sorted(releases.glob("[!.]*/config.json"), reverse=True):  # not a staged one
            if json.loads(config.read_text(encoding="utf-8")).get("mlflow_run_id") == run:
                return f"{self.source}, scored by release {config.parent} (MLflow run {run})"
        return f"{self.source}, scored by the head of MLflow run {run} (not released)"


def _floats(table: pa.Table, column: str) -> np.ndarray:
    return np.ascontiguousarray(table.column(column).to_numpy(zero_copy_only=False), np.float32)
