"""How silva's tables are stored: embedding columns between Arrow and NumPy as one contiguous
float32 buffer (fixed-size list <-> reshape, never row by row), the per-row backbone column, and
the two parquet layouts: the open one every table silva hands to others uses (`write_parquet`:
manifests, library scores, the rating queue), which any tool reads as floats, and a private one
for caches (`write_cache_parquet`: embedding shards). Both read back the same (`read_parquet`).
"""

from __future__ import annotations

from collections.abc import Callable
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
        # silva's private byte layout read by plain pyarrow: raw little-endian float32 rows
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        col = pa.chunked_array([_float_rows(c, col.type.byte_width // 4) for c in chunks])
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
# The private layout (`write_cache_parquet`): a fixed-size list of float32 stored as one
# fixed-length byte string per row (its little-endian floats), this field metadata saying how to
# turn it back. Parquet stores a list with levels per float; one 4,608-byte value per row is plain
# copying, several times faster, but other readers see bytes. Manifests written before the open
# layout used it too, so every read still turns it back.
FLOAT_ROWS_KEY = b"silva.float32_per_row"
_Convert = Callable[[pa.Field, pa.ChunkedArray], "tuple[pa.Field, list[pa.Array]] | None"]


def _is_float_rows(f: pa.Field, col: pa.ChunkedArray) -> bool:
    """A fixed-size list of float32 with no null row or value: embeddings and pixel signatures,
    which are written without compression, dictionary or statistics (random floats gain nothing:
    zstd saved 8 % of an embedding column for 3x the time)."""
    return (
        pa.types.is_fixed_size_list(f.type)
        and pa.types.is_float32(f.type.value_type)
        and col.null_count == 0
        and all(c.flatten().null_count == 0 for c in col.chunks)
    )


def _with_columns(table: pa.Table, convert: _Convert) -> pa.Table:
    """`table` with each column for which `convert(field, column)` gives (field, chunks) replaced."""
    fields, cols = [], []
    for f, col in zip(table.schema, table.columns, strict=True):
        new = convert(f, col)
        if new is not None:
            f, chunks = new
            col = pa.chunked_array(chunks, f.type)
        fields.append(f)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))


def _as_required_list(f: pa.Field, col: pa.ChunkedArray) -> tuple[pa.Field, list[pa.Array]] | None:
    """Float rows as a required list of required floats (no copy): parquet's definition levels
    then take 1 bit per float, not 2, and reading took about 0.7x the CPU of a nullable list's."""
    if not _is_float_rows(f, col):
        return None
    t = pa.list_(pa.field("element", pa.float32(), nullable=False), f.type.list_size)
    return pa.field(f.name, t, False, f.metadata), _relisted(col, t)


def _relisted(col: pa.ChunkedArray, t: pa.FixedSizeListType) -> list[pa.Array]:
    """A fixed-size list column's chunks as type `t` (another nullability), over the same values."""
    return [pa.FixedSizeListArray.from_arrays(c.flatten(), type=t) for c in col.chunks]


def _as_byte_rows(f: pa.Field, col: pa.ChunkedArray) -> tuple[pa.Field, list[pa.Array]] | None:
    """Float rows as fixed-length byte rows over the same buffer (the private layout)."""
    if not _is_float_rows(f, col):
        return None
    dim = f.type.list_size
    t = pa.binary(4 * dim)
    chunks = []
    for c in col.chunks:
        values = c.flatten()  # honours the chunk's offset
        chunks.append(
            pa.Array.from_buffers(t, len(c), [None, values.buffers()[1]], offset=values.offset // dim)
        )
    return pa.field(f.name, t, f.nullable, {FLOAT_ROWS_KEY: str(dim).encode()}), chunks


def _as_read(f: pa.Field, col: pa.ChunkedArray) -> tuple[pa.Field, list[pa.Array]] | None:
    """A stored float column back as the fixed-size list of float32 silva builds (no copy): from
    the private byte rows, or from the required list the open layout writes."""
    meta = f.metadata or {}
    if FLOAT_ROWS_KEY in meta and pa.types.is_fixed_size_binary(f.type):
        dim = int(meta[FLOAT_ROWS_KEY])
        return pa.field(f.name, pa.list_(pa.float32(), dim)), [_float_rows(c, dim) for c in col.chunks]
    if not (pa.types.is_fixed_size_list(f.type) and pa.types.is_float32(f.type.value_type)):
        return None
    if f.nullable and f.type.value_field.nullable:
        return None
    t = pa.list_(pa.float32(), f.type.list_size)
    return pa.field(f.name, t, True, f.metadata), _relisted(col, t)


def _float_rows(chunk: pa.FixedSizeBinaryArray, dim: int) -> pa.FixedSizeListArray:
    """Fixed-length byte rows -> a fixed-size list of float32 over the same buffer (no copy)."""
    values = pa.Array.from_buffers(
        pa.float32(), len(chunk) * dim, [None, chunk.buffers()[1]], offset=chunk.offset * dim
    )
    return pa.FixedSizeListArray.from_arrays(values, dim)


def _write(table: pa.Table, convert: _Convert, path: str | Path) -> Path:
    """Atomic write in row groups of 64k rows: float rows converted by `convert` and stored plain
    (see `_is_float_rows`), the other columns snappy-compressed."""
    path = Path(path)
    raw = {f.name for f, col in zip(table.schema, table.columns, strict=True) if _is_float_rows(f, col)}
    stored = _with_columns(table, convert)
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


def write_parquet(table: pa.Table, path: str | Path) -> Path:
    """The open layout, for every table silva hands to others (manifests, library scores, the
    rating queue, asset values): a float embedding is a list of float32 that polars
    (`Array(Float32, n)`), pandas (float32 arrays), DuckDB (`FLOAT[]`) and pyarrow read as floats."""
    return _write(table, _as_required_list, path)


def write_cache_parquet(table: pa.Table, path: str | Path) -> Path:
    """The private layout (`FLOAT_ROWS_KEY`), for caches no contract names: faster to write and
    read, but only silva's readers (and `embeddings_from_arrow`) see floats in it."""
    return _write(table, _as_byte_rows, path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Memory-mapped read of only the `columns` asked for, in either layout: parquet decodes each
    column into memory once, and float columns become the fixed-size lists of float32 silva built
    without another copy."""
    return _with_columns(pq.read_table(path, columns=columns, memory_map=True, pre_buffer=False), _as_read)


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
    table = _with_columns(pf.read(columns=[c for c in names if c != "embedding"]), _as_read)
    if "embedding" not in names:
        return table, None
    out: np.ndarray | None = None
    at = 0
    for batch in pf.iter_batches(batch_size=8_192, columns=["embedding"], use_threads=False):
        part = embeddings_from_arrow(_with_columns(pa.Table.from_batches([batch]), _as_read).column(0))
        if out is None:
            out = np.empty((pf.metadata.num_rows, part.shape[1]), np.float32)
        elif part.shape[1] != out.shape[1]:
            raise TableError(f"embeddings change length ({out.shape[1]} to {part.shape[1]}) at row {at}")
        out[at : at + len(part)] = part
        at += len(part)
    return table, out if out is not None else np.zeros((0, 0), np.float32)
