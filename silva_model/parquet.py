"""How silva's tables are stored: embedding columns between Arrow and NumPy as one contiguous
float32 buffer (fixed-size list <-> reshape, never row by row), the per-row backbone column, and
the parquet format every table silva writes uses (manifests, embedding shards, library scores).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from silva_model.atomic import atomic_path
from silva_model.provenance import BackboneSpec


class TableError(ValueError):
    """A table is not what silva reads; the message names the offending rows."""


def name_rows(idx: np.ndarray, post_id: np.ndarray | None, limit: int = 5) -> str:
    """Rows as a message names them: indices, with post ids where known, the first few."""
    idx = np.asarray(idx).ravel()
    shown = [f"{int(i)}" + (f" (post_id {post_id[i]})" if post_id is not None else "") for i in idx[:limit]]
    more = f" (+{idx.size - limit} more)" if idx.size > limit else ""
    return ", ".join(shown) + more


def embeddings_to_arrow(embeddings: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise TableError(f"embeddings must be 2-d (rows, dim), got shape {x.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def embeddings_from_arrow(col: pa.Array | pa.ChunkedArray, post_id: np.ndarray | None = None) -> np.ndarray:
    """Arrow list column -> (N, D) float32 without a per-row loop. Accepts fixed-size and
    variable-size lists (what polars or pandas may write), and silva's stored float rows; every
    row must have the same length."""
    if pa.types.is_fixed_size_binary(col.type) and col.type.byte_width % 4 == 0:
        # silva's parquet storage read by plain pyarrow: raw little-endian float32 rows
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        col = pa.chunked_array([_floatname_rows(c, col.type.byte_width // 4) for c in chunks])
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not (
        pa.types.is_fixed_size_list(col.type)
        or pa.types.is_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        raise TableError(f"column 'embedding' must be a list of floats, got {col.type}")
    if not (pa.types.is_floating(col.type.value_type) or pa.types.is_integer(col.type.value_type)):
        raise TableError(f"column 'embedding' must hold floats, got {col.type}")
    n = len(col)
    if col.null_count:
        raise TableError(f"embedding is null at row(s) {name_rows(np.flatnonzero(col.is_null()), post_id)}")
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    else:
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        dim = int(np.bincount(lengths).argmax()) if n else 0
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise TableError(
                f"embeddings have different lengths: most have {dim}, but row(s) "
                f"{name_rows(bad, post_id)} have {lengths[bad[:5]].tolist()}"
            )
    values = col.flatten()
    if values.null_count:
        row = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0] // max(dim, 1)
        raise TableError(f"embedding has a null value at row {name_rows(np.array([row]), post_id)}")
    flat = values.to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(n, dim)


def backbone_column(codes: np.ndarray, specs: list[BackboneSpec]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes, dtype=np.int32)), pa.array([b.to_json() for b in specs], pa.string())
    )


def backbones_from_arrow(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, list[BackboneSpec]]:
    """A `backbone` column (dictionary-encoded or plain strings) -> (codes, specs)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    if col.null_count:
        raise TableError(f"backbone is null at row(s) {name_rows(np.flatnonzero(col.is_null()), None)}")
    specs = [BackboneSpec.from_value(v) for v in col.dictionary.to_pylist()]
    return col.indices.to_numpy(zero_copy_only=False).astype(np.int32), specs


ROW_GROUP_ROWS = 65_536
# A fixed-size list of float32 is stored in parquet as one fixed-length byte string per row (its
# little-endian floats). Parquet writes a list with a repetition and a definition level per float,
# which made the 1152-float column 10x slower to write and read than the bytes themselves; one
# 4,608-byte value per row is plain copying. The field metadata says how to turn it back, and
# `read_parquet` does, without copying.
FLOAT_ROWS_KEY = b"silva.float32_per_row"


def _to_storage(table: pa.Table) -> pa.Table:
    fields, cols = [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        t = f.type
        if pa.types.is_fixed_size_list(t) and pa.types.is_float32(t.value_type) and col.null_count == 0:
            dim = t.list_size
            chunks = []
            for c in col.chunks:
                values = c.flatten()  # honours the chunk's offset
                chunks.append(
                    pa.Array.from_buffers(
                        pa.binary(4 * dim), len(c), [None, values.buffers()[1]], offset=values.offset // dim
                    )
                )
            col = pa.chunked_array(chunks, pa.binary(4 * dim))
            f = pa.field(f.name, pa.binary(4 * dim), f.nullable, {FLOAT_ROWS_KEY: str(dim).encode()})
        fields.append(f)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))


def _from_storage(table: pa.Table) -> pa.Table:
    fields, cols = [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        meta = f.metadata or {}
        if FLOAT_ROWS_KEY in meta and pa.types.is_fixed_size_binary(f.type):
            dim = int(meta[FLOAT_ROWS_KEY])
            col = pa.chunked_array([_floatname_rows(c, dim) for c in col.chunks], pa.list_(pa.float32(), dim))
            f = pa.field(f.name, col.type, f.nullable)
        fields.append(f)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))


def _floatname_rows(chunk: pa.FixedSizeBinaryArray, dim: int) -> pa.FixedSizeListArray:
    """Fixed-length byte rows -> a fixed-size list of float32 over the same buffer (no copy)."""
    values = pa.Array.from_buffers(
        pa.float32(), len(chunk) * dim, [None, chunk.buffers()[1]], offset=chunk.offset * dim
    )
    return pa.FixedSizeListArray.from_arrays(values, dim)


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """Atomic parquet write in row groups of 64k rows. Embedding columns are stored as raw float
    rows (see FLOAT_ROWS_KEY), uncompressed, without dictionary or statistics: float embeddings
    barely compress (zstd saved 8 % for 3x the time), and dictionaries and statistics of random
    floats only cost time. Other columns are snappy-compressed."""
    path = Path(path)
    stored = _to_storage(table)
    raw = [f.name for f in stored.schema if FLOAT_ROWS_KEY in (f.metadata or {})]
    with atomic_path(path) as tmp:
        pq.write_table(
            stored,
            tmp,
            row_group_size=ROW_GROUP_ROWS,
            compression={c: ("none" if c in raw else "snappy") for c in stored.column_names},
            use_dictionary=[c for c in stored.column_names if c == "split"],
            write_statistics=[c for c in stored.column_names if c not in raw and c != "embedding"],
        )
    return path


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Memory-mapped read (the page cache is the buffer), only the `columns` asked for, with
    embedding rows turned back into fixed-size lists of float32 without a copy."""
    return _from_storage(pq.read_table(path, columns=columns, memory_map=True, pre_buffer=False))


def read_streaming(path: str | Path) -> tuple[pa.Table, np.ndarray | None]:
    """A table's small columns as a table, and its embeddings copied batch by batch into one
    array: reading needs the array plus a few MB, not two copies of the column."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"not found: {path}")
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 23)  # stream pages, not whole chunks
    except pa.ArrowInvalid as e:
        raise TableError(f"{path} is not a readable parquet file: {e}") from e
    names = pf.schema_arrow.names
    table = _from_storage(pf.read(columns=[c for c in names if c != "embedding"]))
    if "embedding" not in names:
        return table, None
    out: np.ndarray | None = None
    at = 0
    for batch in pf.iter_batches(batch_size=8_192, columns=["embedding"], use_threads=False):
        part = embeddings_from_arrow(_from_storage(pa.Table.from_batches([batch])).column(0))
        if out is None:
            out = np.empty((pf.metadata.num_rows, part.shape[1]), np.float32)
        elif part.shape[1] != out.shape[1]:
            raise TableError(f"embeddings change length ({out.shape[1]} to {part.shape[1]}) at row {at}")
        out[at : at + len(part)] = part
        at += len(part)
    return table, out if out is not None else np.zeros((0, 0), np.float32)
