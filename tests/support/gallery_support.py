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


def start_gallery(scores: Path, log: Path, *extra: str):
    """`silva gallery` as a person starts it; returns (process, url) once it answers."""
    from browser_support import start_silva

    return start_silva("gallery", "--scores", str(scores), "--log", str(log), *extra)


def gallery_library(root: Path, home_latest) -> tuple[Path, list[dict]]:
    """130 library images in two folders, best first in no order of the files: five rated, three
    out of domain, one cut short, one vanished; ten rated images outside it (in the manifest)
    that every explanation names. Returns the scores file and its rows."""
    import numpy as np
    from helpers import write_images

    rng = np.random.default_rng(7)
    images = write_images(root / "lib" / "a", 70, size=(300, 200)) + write_images(
        root / "lib" / "b", 60, seed=1, size=(200, 320)
    )
    rated = write_images(root / "rated", 10, seed=2, size=(240, 240))
    manifest = pa.table(
        {
            "image_sha256": [sha_of(str(p)) for p in rated],
            "path": list(map(str, rated)),
            "personal_score": [1, 2, 3, 4, 5] * 2,
        }
    )
    pq.write_table(manifest, home_latest("manifest"))
    score = rng.permutation(np.linspace(0.02, 0.98, len(images)))
    rows = []
    for k, (path, s) in enumerate(zip(images, score, strict=True)):
        near = rng.choice(10, 3, replace=False)
        rows.append(
            scores_row(
                path,
                float(s),
                uncertainty=float(rng.uniform(0.1, 1.5)),
                out_of_domain=k in (3, 40, 90),
                rating=int(1 + k % 5) if k % 26 == 5 else None,
                neighbours=[manifest["image_sha256"][int(j)].as_py() for j in near],
                neighbour_similarity=[0.93, 0.9, 0.85],
                neighbour_ratings=[int(manifest["personal_score"][int(j)].as_py()) for j in near],
                judge_share=0.25,
                judge_shift=0.3,
            )
        )
    images[10].write_bytes(images[10].read_bytes()[:60])  # cut short
    images[11].unlink()  # vanished after scoring
    return write_scores(root / "scores.parquet", rows), rows
