"""Library scores as the pipeline publishes them, for the gallery's and export's tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FIELDS = [
    ("image_sha256", pa.string()),
    ("path", pa.string()),
    ("post_id", pa.int64()),
    ("shard", pa.string()),
    ("score", pa.float32()),
    ("expected_rating", pa.float32()),
    *((f"p{k}", pa.float32()) for k in range(1, 6)),
    ("uncertainty", pa.float32()),
    ("ood_distance", pa.float32()),
    ("ood_quantile", pa.float32()),
    ("out_of_domain", pa.bool_()),
    ("rating", pa.int8()),
    ("rated", pa.bool_()),
    ("neighbours", pa.list_(pa.string())),
    ("neighbour_similarity", pa.list_(pa.float32())),
    ("neighbour_ratings", pa.list_(pa.int8())),
    ("judge_share", pa.float32()),
    ("judge_shift", pa.float32()),
]


def sha_of(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def scores_row(path: str | Path | None, score: float, **extra) -> dict:
    """One image's row: its hash from its path (or `extra`), the rest from the score."""
    row = {
        "image_sha256": sha_of(str(path)),
        "path": str(path) if path is not None else None,
        "score": score,
        "expected_rating": 1 + 4 * score,
        "uncertainty": 0.5,
        "ood_quantile": 0.5,
        "out_of_domain": False,
        "shard": "s0",
        **{f"p{k}": 0.2 for k in range(1, 6)},
    }
    row.update(extra)
    row["rated"] = row.get("rating") is not None
    return row


def write_scores(path: Path, rows: list[dict], metadata: dict[bytes, bytes] | None = None) -> Path:
    """A library_scores parquet of these rows (columns a row lacks are null)."""
    schema = pa.schema(FIELDS, metadata=metadata)
    table = pa.table({name: [r.get(name) for r in rows] for name, _ in FIELDS}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path
