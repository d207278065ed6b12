"""A content-addressed store of image embeddings, keyed by (image SHA-256, backbone id).

Each finished group of batches is written as its own parquet shard (atomically), so an
interrupted run keeps everything embedded so far and the next run embeds only what is left.
Shards are compacted into one file when they pile up.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from silva_model.atomic import atomic_write_text
from silva_model.manifest import embeddings_from_arrow, embeddings_to_arrow, read_parquet, write_parquet
from silva_model.provenance import BackboneSpec

_MAX_SHARDS = 32


def backbone_slug(backbone: str) -> str:
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", backbone.rstrip("/").split("/")[-1])[:48]
    return f"{tail}-{hashlib.sha256(backbone.encode()).hexdigest()[:10]}"


class EmbeddingCache:
    def __init__(self, root: Path, backbone: str) -> None:
        self.backbone = backbone
        self.folder = Path(root) / backbone_slug(backbone)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seq = 0

    def spec(self) -> BackboneSpec:
        """The backbone that filled this cache, as recorded by the first write (or just its id)."""
        path = self.folder / "backbone.json"
        if path.exists():
            return BackboneSpec.from_value(path.read_text(encoding="utf-8"))
        return BackboneSpec(model=self.backbone)

    def record_spec(self, spec: BackboneSpec) -> None:
        path = self.folder / "backbone.json"
        if not path.exists():
            atomic_write_text(path, spec.to_json())

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.parquet"))

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(shas, embeddings) of everything cached; compacts the shards if there are many."""
        shards = self.shards()
        if not shards:
            return np.array([], dtype=object), np.zeros((0, 0), np.float32)
        table = pa.concat_tables([read_parquet(p) for p in shards])
        if len(shards) > _MAX_SHARDS:
            self._write(table, "compact")
            for p in shards:
                p.unlink(missing_ok=True)
        return table.column("image_sha256").to_numpy(zero_copy_only=False), embeddings_from_arrow(
            table.column("embedding")
        )

    def add(self, shas: list[str], embeddings: np.ndarray) -> None:
        if shas:
            self._write(
                pa.table(
                    {
                        "image_sha256": pa.array(shas, pa.string()),
                        "embedding": embeddings_to_arrow(embeddings),
                    }
                ),
                "part",
            )

    def _write(self, table: pa.Table, kind: str) -> None:
        self._seq += 1
        name = f"shard-{time.time_ns():020d}-{self._seq:05d}-{kind}.parquet"
        write_parquet(table, self.folder / name)
