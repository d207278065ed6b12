"""A content-addressed store of image embeddings, keyed by (image SHA-256, backbone id).

Each finished group of batches is written as its own parquet shard (atomically), so an
interrupted run keeps everything embedded so far and the next run embeds only what is left.
Shards are compacted into one file when they pile up.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from silva_model.atomic import atomic_write_text
from silva_model.copies import SIGNATURE_COLUMN, no_signatures, signatures_of, signatures_to_arrow
from silva_model.parquet import embeddings_from_arrow, embeddings_to_arrow, read_parquet, write_cache_parquet
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
        self.quarantined: list[tuple[Path, str]] = []  # (where the shard went, why)

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

    @property
    def _unreadable_file(self) -> Path:
        return self.folder / "unreadable.json"

    def unreadable(self) -> dict[str, str]:
        """The images (by SHA-256) whose bytes failed to decode, and how: the same bytes fail the
        same way, so they are named again without loading the backbone. Delete the file to try
        them all again."""
        try:
            found = json.loads(self._unreadable_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # none yet, or a file no run wrote: nothing remembered
            return {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def remember_unreadable(self, errors: dict[str, str]) -> None:
        """Add these images' decode errors (by SHA-256). Two workers writing at once may drop one
        of the two additions; an image dropped is only tried once more."""
        if errors:
            atomic_write_text(self._unreadable_file, json.dumps(self.unreadable() | errors, indent=1))

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.parquet"))

    def load(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(shas, embeddings, pixel signatures) of everything cached, NaN signatures for images
        cached before signatures existed; compacts the files if there are many."""
        table = self._read(None)
        if table is None:
            return np.array([], dtype=object), np.zeros((0, 0), np.float32), no_signatures(0)
        return (
            table.column("image_sha256").to_numpy(zero_copy_only=False),
            embeddings_from_arrow(table.column("embedding")),
            signatures_of(table),
        )

    def shas(self) -> np.ndarray:
        """The cached images' hashes alone, without reading an embedding: what planning needs."""
        table = self._read(["image_sha256"])
        return np.array([], dtype=object) if table is None else table.column(0).to_numpy(zero_copy_only=False)

    def lookup(self, shas: set[str]) -> dict[str, np.ndarray]:
        """The cached embeddings of these images (of those that are cached), by SHA-256."""
        table = self._read(["image_sha256", "embedding"]) if shas else None
        if table is None:
            return {}
        table = table.filter(pc.is_in(table.column("image_sha256"), pa.array(sorted(shas), pa.string())))
        found = embeddings_from_arrow(table.column("embedding"))
        return dict(zip(table.column("image_sha256").to_pylist(), found, strict=True))

    def _read(self, columns: list[str] | None) -> pa.Table | None:
        while True:
            try:
                return self._read_once(columns)
            except FileNotFoundError:  # another worker compacted the files listed: list again
                continue

    def _read_once(self, columns: list[str] | None) -> pa.Table | None:
        tables = []
        for p in self.shards():
            try:
                tables.append((p, read_parquet(p, columns)))
            except FileNotFoundError:
                raise
            except (OSError, pa.ArrowException) as e:
                self._quarantine(p, f"{type(e).__name__}: {e}")
        if not tables:
            return None
        table = pa.concat_tables([t for _, t in tables], promote_options="default")
        if (
            SIGNATURE_COLUMN in table.column_names and table.column(SIGNATURE_COLUMN).null_count
        ):  # shards from before signatures: NaN rows
            signatures = signatures_to_arrow(signatures_of(table))
            table = table.set_column(
                table.schema.get_field_index(SIGNATURE_COLUMN), SIGNATURE_COLUMN, signatures
            )
        if columns is None and len(tables) > _MAX_SHARDS:
            self._write(table, "compact")
            for p, _ in tables:
                p.unlink(missing_ok=True)
        return table

    def _quarantine(self, shard: Path, why: str) -> None:
        """Move an unreadable shard (a write cut short, a bad disk block) aside, so its images are
        embedded again instead of every later run failing on it."""
        target = self.folder / "quarantine" / shard.name
        target.parent.mkdir(exist_ok=True)
        os.replace(shard, target)
        self.quarantined.append((target, why))

    def add(self, shas: list[str], embeddings: np.ndarray, signatures: np.ndarray | None = None) -> None:
        """Cache rows; `signatures`: their pixel signatures (None: vectors that came without pixels)."""
        if shas:
            signatures = no_signatures(len(shas)) if signatures is None else signatures
            self._write(
                pa.table(
                    {
                        "image_sha256": pa.array(shas, pa.string()),
                        "embedding": embeddings_to_arrow(embeddings),
                        SIGNATURE_COLUMN: signatures_to_arrow(signatures),
                    }
                ),
                "part",
            )

    def _write(self, table: pa.Table, kind: str) -> None:
        self._seq += 1
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{self._seq:05d}-{kind}.parquet"
        write_cache_parquet(table, self.folder / name)
