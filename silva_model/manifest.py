"""The manifest contract: the one table the trainer, the evaluator and the pipeline share.

Parquet with columns
  - `embedding`: fixed-size list of D float32 (D = 1152 for SigLIP2-SO400M),
  - `personal_score`: integer rating 1..5,
  - `split`: "train" | "val" | "test", a function of the embedding's bytes (`splits.py`),
  - `post_id`: optional integer id, only used to name rows in messages,
  - `backbone`: optional, dictionary-encoded: the JSON of each row's `BackboneSpec` (where its
    embedding came from). Training refuses a manifest whose rows disagree.

  - `copy_signature`: optional, nullable: each image's pixel signature (`copies.py`).

Splits group copies of one illustration (by the embeddings' cosine and the pixel signatures, the
rule recorded in the schema metadata as `silva.copy_rule`): a re-encoded, resized, cropped,
mirrored, recoloured or framed copy lands in its original's split.

Embeddings move between Arrow and NumPy as one contiguous float32 buffer (fixed-size list
<-> reshape), never row by row.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from silva_model.atomic import atomic_path
from silva_model.copies import (
    DEFAULT_COPY_RULE,
    SIGNATURE_COLUMN,
    CopyRule,
    near_duplicate_groups,
    signatures_of,
    signatures_to_arrow,
)
from silva_model.head import EMBED_DIM, NUM_CLASSES
from silva_model.provenance import BackboneMismatchError, BackboneSpec, common_backbone
from silva_model.splits import (
    DEFAULT_FRACTIONS,
    SPLITS,
    content_hash,
    group_split_codes,
    groups_across_splits,
)

REQUIRED_COLUMNS = ("embedding", "personal_score", "split")
NEAR_DUPLICATE_KEY = b"silva.near_duplicate_cosine"  # what manifests before the copy rule recorded
COPY_RULE_KEY = b"silva.copy_rule"


class ManifestError(ValueError):
    """The manifest breaks the contract; the message names the first offending rows."""


@dataclass
class ManifestArrays:
    """The manifest as NumPy arrays: what training and evaluation actually consume."""

    embeddings: np.ndarray  # (N, D) float32, C-contiguous
    scores: np.ndarray  # (N,) int64 in 1..5
    split_codes: np.ndarray  # (N,) int8 index into SPLITS
    post_id: np.ndarray | None = None
    _hashes: np.ndarray | None = field(default=None, repr=False)
    backbone_codes: np.ndarray | None = None  # (N,) index into `backbones`; None: not recorded
    backbones: list[BackboneSpec] = field(default_factory=list)

    def content_hashes(self) -> np.ndarray:
        """Per-row content hash (computed once: splits, duplicates and the fingerprint share it)."""
        if self._hashes is None:
            self._hashes = content_hash(self.embeddings)
        return self._hashes

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def mask(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.split_codes == SPLITS.index(split)

    def subset(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        m = self.mask(split)
        return np.ascontiguousarray(self.embeddings[m]), self.scores[m]

    def backbone(self) -> BackboneSpec:
        """The backbone every row's embedding came from; a ManifestError naming rows of each
        side when they disagree."""
        if self.backbone_codes is None or not self.backbones:
            return BackboneSpec()
        used = np.unique(self.backbone_codes)
        where = [f"row(s) {_rows(np.flatnonzero(self.backbone_codes == u), self.post_id, 3)}" for u in used]
        try:
            return common_backbone([self.backbones[u] for u in used], where)
        except BackboneMismatchError as e:
            raise ManifestError(f"the manifest mixes backbones: {e}") from e

    def fingerprint(self) -> str:
        """Order-independent SHA-256 of (content hash, rating, split) over all rows."""
        rec = np.empty(len(self), dtype=[("h", "<u8"), ("y", "<i8"), ("s", "i1")])
        rec["h"], rec["y"], rec["s"] = self.content_hashes(), self.scores, self.split_codes
        rec.sort(order=["h", "y", "s"])
        return hashlib.sha256(rec.tobytes()).hexdigest()


def _rows(idx: np.ndarray, post_id: np.ndarray | None, limit: int = 5) -> str:
    idx = np.asarray(idx).ravel()
    shown = [f"{int(i)}" + (f" (post_id {post_id[i]})" if post_id is not None else "") for i in idx[:limit]]
    more = f" (+{idx.size - limit} more)" if idx.size > limit else ""
    return ", ".join(shown) + more


def embeddings_to_arrow(embeddings: np.ndarray) -> pa.FixedSizeListArray:
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2:
        raise ManifestError(f"embeddings must be 2-d (rows, dim), got shape {x.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def embeddings_from_arrow(col: pa.Array | pa.ChunkedArray, post_id: np.ndarray | None = None) -> np.ndarray:
    """Arrow list column -> (N, D) float32 without a per-row loop. Accepts fixed-size and
    variable-size lists (what polars or pandas may write), and silva's stored float rows; every
    row must have the same length."""
    if pa.types.is_fixed_size_binary(col.type) and col.type.byte_width % 4 == 0:
        # silva's parquet storage read by plain pyarrow: raw little-endian float32 rows
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        col = pa.chunked_array([_float_rows(c, col.type.byte_width // 4) for c in chunks])
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if not (
        pa.types.is_fixed_size_list(col.type)
        or pa.types.is_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        raise ManifestError(f"column 'embedding' must be a list of floats, got {col.type}")
    if not (pa.types.is_floating(col.type.value_type) or pa.types.is_integer(col.type.value_type)):
        raise ManifestError(f"column 'embedding' must hold floats, got {col.type}")
    n = len(col)
    if col.null_count:
        raise ManifestError(f"embedding is null at row(s) {_rows(np.flatnonzero(col.is_null()), post_id)}")
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
    else:
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        dim = int(np.bincount(lengths).argmax()) if n else 0
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise ManifestError(
                f"embeddings have different lengths: most have {dim}, but row(s) "
                f"{_rows(bad, post_id)} have {lengths[bad[:5]].tolist()}"
            )
    values = col.flatten()
    if values.null_count:
        row = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0] // max(dim, 1)
        raise ManifestError(f"embedding has a null value at row {_rows(np.array([row]), post_id)}")
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
        raise ManifestError(f"backbone is null at row(s) {_rows(np.flatnonzero(col.is_null()), None)}")
    specs = [BackboneSpec.from_value(v) for v in col.dictionary.to_pylist()]
    return col.indices.to_numpy(zero_copy_only=False).astype(np.int32), specs


def build_table(
    embeddings: np.ndarray,
    scores,
    split_codes: np.ndarray,
    post_id=None,
    backbone: BackboneSpec | tuple[np.ndarray, list[BackboneSpec]] | None = None,
    signatures: np.ndarray | None = None,
) -> pa.Table:
    """The manifest columns; `backbone` is one spec for every row, or (codes, specs) per row;
    `signatures`: each image's pixel signature (NaN rows: none), what the leakage check groups by."""
    cols = {
        "embedding": embeddings_to_arrow(embeddings),
        "personal_score": pa.array(np.asarray(scores, dtype=np.int8)),
        "split": pa.DictionaryArray.from_arrays(
            pa.array(np.asarray(split_codes, dtype=np.int8)), pa.array(list(SPLITS))
        ),
    }
    if post_id is not None:
        cols["post_id"] = pa.array(np.asarray(post_id, dtype=np.int64))
    if isinstance(backbone, BackboneSpec):
        backbone = (np.zeros(len(cols["personal_score"]), np.int32), [backbone])
    if backbone is not None:
        cols["backbone"] = backbone_column(*backbone)
    if signatures is not None:
        cols[SIGNATURE_COLUMN] = signatures_to_arrow(signatures)
    return pa.table(cols)


def build_manifest(
    embeddings: np.ndarray,
    scores,
    post_id=None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    dim: int = EMBED_DIM,
    backbone: BackboneSpec | None = None,
    copy_rule: CopyRule | None = DEFAULT_COPY_RULE,
    signatures: np.ndarray | None = None,
) -> pa.Table:
    """Embeddings + ratings -> a validated manifest table with content-hashed splits in which
    copies (by `copy_rule` over the embeddings and, where given, the pixel `signatures`) share a
    split (`copy_rule=None`: exact bytes only)."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ManifestError(f"embeddings must have shape (rows, {dim}), got {x.shape}")
    y = np.asarray(scores)
    if y.shape != (x.shape[0],):
        raise ManifestError(f"{x.shape[0]} embeddings but {y.shape} ratings")
    if y.dtype.kind not in "iu":
        raise ManifestError(f"ratings must be integers 1..5, got dtype {y.dtype}")
    pid = None if post_id is None else np.asarray(post_id)
    hashes = content_hash(x)
    codes, _ = split_codes_for(x, hashes, fractions, copy_rule, signatures)
    validate_arrays(ManifestArrays(x, y.astype(np.int64), codes, pid, hashes))
    return with_copy_rule(build_table(x, y, codes, pid, backbone, signatures), copy_rule)


def split_codes_for(
    x: np.ndarray,
    hashes: np.ndarray,
    fractions: tuple[float, float, float],
    copy_rule: CopyRule | None,
    signatures: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(split codes, group labels): content-hashed splits, groups of copies sharing one split."""
    groups = np.arange(len(hashes)) if copy_rule is None else near_duplicate_groups(x, signatures, copy_rule)
    return group_split_codes(hashes, groups, fractions), groups


def with_copy_rule(table: pa.Table, rule: CopyRule | None) -> pa.Table:
    """Record the grouping rule in the schema, where the leakage check finds it."""
    if rule is None:
        return table
    return table.replace_schema_metadata(
        {**(table.schema.metadata or {}), COPY_RULE_KEY: json.dumps(dataclasses.asdict(rule)).encode()}
    )


def copy_rule_of(table: pa.Table) -> CopyRule:
    """The rule a manifest was grouped by (an older manifest recorded its cosine alone)."""
    meta = table.schema.metadata or {}
    if COPY_RULE_KEY in meta:
        return CopyRule(**json.loads(meta[COPY_RULE_KEY]))
    if meta.get(NEAR_DUPLICATE_KEY):
        return CopyRule(cosine=float(meta[NEAR_DUPLICATE_KEY]))
    return DEFAULT_COPY_RULE


def near_duplicate_leaks(table: pa.Table, m: ManifestArrays) -> tuple[int, np.ndarray]:
    """(number of groups of copies spread over more than one split, rows of the first one), by
    the rule the manifest records, over its embeddings and pixel signatures."""
    groups = near_duplicate_groups(m.embeddings, signatures_of(table), copy_rule_of(table))
    leaks = groups_across_splits(groups, m.split_codes)
    return int(leaks.size), (np.flatnonzero(groups == leaks[0]) if leaks.size else np.zeros(0, np.int64))


def to_arrays(
    table: pa.Table, dim: int | None = EMBED_DIM, embeddings: np.ndarray | None = None
) -> ManifestArrays:
    """Convert (and type-check) a manifest table; value checks live in `validate_arrays`.
    `embeddings`: the embedding column, already read (`load_manifest` streams it from disk)."""
    missing = [
        c
        for c in REQUIRED_COLUMNS
        if c not in table.column_names and not (c == "embedding" and embeddings is not None)
    ]
    if missing:
        raise ManifestError(f"manifest lacks column(s) {missing}; has {table.column_names}")
    post_id = None
    if "post_id" in table.column_names:
        post_id = table.column("post_id").to_numpy(zero_copy_only=False)
    x = embeddings if embeddings is not None else embeddings_from_arrow(table.column("embedding"), post_id)
    if dim is not None and x.shape[1] != dim:
        raise ManifestError(f"embeddings have length {x.shape[1]}, expected {dim} (rows 0.. all)")

    score_col = table.column("personal_score")
    if not pa.types.is_integer(score_col.type):
        raise ManifestError(f"column 'personal_score' must be integers 1..5, got {score_col.type}")
    if score_col.null_count:
        raise ManifestError(
            f"personal_score is null at row(s) {_rows(np.flatnonzero(score_col.is_null()), post_id)}"
        )
    scores = score_col.to_numpy().astype(np.int64)

    split_col = table.column("split")
    if pa.types.is_dictionary(split_col.type):
        split_col = split_col.cast(pa.string())
    if not (pa.types.is_string(split_col.type) or pa.types.is_large_string(split_col.type)):
        raise ManifestError(f"column 'split' must be strings {SPLITS}, got {split_col.type}")
    codes = pc.index_in(split_col, value_set=pa.array(list(SPLITS))).to_numpy(zero_copy_only=False)
    unknown = np.flatnonzero(np.isnan(codes.astype(np.float64)))
    if unknown.size:
        vals = split_col.take(pa.array(unknown[:5])).to_pylist()
        raise ManifestError(f"unknown split {vals} at row(s) {_rows(unknown, post_id)}; expected {SPLITS}")
    bb_codes, specs = (
        backbones_from_arrow(table.column("backbone")) if "backbone" in table.column_names else (None, [])
    )
    return ManifestArrays(x, scores, codes.astype(np.int8), post_id, backbone_codes=bb_codes, backbones=specs)


def _row_peaks(x: np.ndarray, block: int = 16_384) -> tuple[np.ndarray, np.ndarray]:
    """(finite?, max |value|) per row, in row blocks so the temporaries stay small."""
    finite = np.empty(len(x), bool)
    peak = np.empty(len(x), np.float32)
    for s in range(0, len(x), block):
        b = x[s : s + block]
        finite[s : s + block] = np.isfinite(b).all(axis=1)
        peak[s : s + block] = np.maximum(b.max(axis=1), -b.min(axis=1)) if b.shape[1] else 0.0
    return finite, peak


def check_embedding_values(x: np.ndarray, pid: np.ndarray | None = None) -> None:
    """Every row must be a usable direction: finite, not all zeros, and with a norm float32 can hold."""
    finite, peak = _row_peaks(x)
    nonfinite = np.flatnonzero(~finite)
    if nonfinite.size:
        raise ManifestError(f"embedding has NaN or inf at row(s) {_rows(nonfinite, pid)}")
    zero = np.flatnonzero(peak == 0)
    if zero.size:
        raise ManifestError(
            f"embedding is all zeros at row(s) {_rows(zero, pid)}: it has no direction to score"
        )
    # The head L2-normalises in float32; beyond this its squared norm overflows to inf.
    huge = np.flatnonzero(peak * np.sqrt(x.shape[1]) > np.sqrt(np.finfo(np.float32).max))
    if huge.size:
        raise ManifestError(
            f"embedding values up to {peak[huge[0]]:.3g} at row(s) {_rows(huge, pid)}: "
            "far beyond any image embedding (its norm overflows float32)"
        )


def validate_arrays(
    m: ManifestArrays, required_splits: tuple[str, ...] = ("train", "val")
) -> dict[str, dict[int, int]]:
    """Check values; return per-split class counts. Raises ManifestError naming rows."""
    pid = m.post_id
    check_embedding_values(m.embeddings, pid)
    bad = np.flatnonzero((m.scores < 1) | (m.scores > NUM_CLASSES))
    if bad.size:
        raise ManifestError(
            f"personal_score outside 1..5 at row(s) {_rows(bad, pid)}: {m.scores[bad[:5]].tolist()}"
        )
    _check_duplicates(m)
    counts: dict[str, dict[int, int]] = {}
    for code, name in enumerate(SPLITS):
        sel = m.scores[m.split_codes == code]
        counts[name] = {c: int(n) for c, n in enumerate(np.bincount(sel, minlength=NUM_CLASSES + 1)[1:], 1)}
    empty = [s for s in required_splits if sum(counts[s].values()) == 0]
    if empty:
        raise ManifestError(
            f"split(s) {empty} are empty ({len(m)} rows in all); rate more images "
            "or change the split fractions"
        )
    return counts


def _check_duplicates(m: ManifestArrays) -> None:
    """The same embedding bytes must carry one rating and one split."""
    h = m.content_hashes()
    order = np.argsort(h, kind="stable")
    hs = h[order]
    same = np.flatnonzero(hs[1:] == hs[:-1])
    for i in same:
        a, b = order[i], order[i + 1]
        if not np.array_equal(m.embeddings[a], m.embeddings[b]):
            continue  # a 64-bit collision between different embeddings: not a duplicate
        pair = np.array(sorted((a, b)))
        if m.split_codes[a] != m.split_codes[b]:
            raise ManifestError(
                f"the same embedding is in two splits ({SPLITS[m.split_codes[pair[0]]]} and "
                f"{SPLITS[m.split_codes[pair[1]]]}) at rows {_rows(pair, m.post_id)}"
            )
        if m.scores[a] != m.scores[b]:
            raise ManifestError(
                f"the same embedding has two ratings ({m.scores[pair[0]]} and {m.scores[pair[1]]}) "
                f"at rows {_rows(pair, m.post_id)}"
            )


def validate_manifest(
    table: pa.Table, dim: int | None = EMBED_DIM, required_splits: tuple[str, ...] = ("train", "val")
) -> dict[str, dict[int, int]]:
    return validate_arrays(to_arrays(table, dim), required_splits)


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
            col = pa.chunked_array([_float_rows(c, dim) for c in col.chunks], pa.list_(pa.float32(), dim))
            f = pa.field(f.name, col.type, f.nullable)
        fields.append(f)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields, metadata=table.schema.metadata))


def _float_rows(chunk: pa.FixedSizeBinaryArray, dim: int) -> pa.FixedSizeListArray:
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


def write_manifest(table: pa.Table, path: str | Path) -> Path:
    return write_parquet(table, path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Memory-mapped read (the page cache is the buffer), only the `columns` asked for, with
    embedding rows turned back into fixed-size lists of float32 without a copy."""
    return _from_storage(pq.read_table(path, columns=columns, memory_map=True, pre_buffer=False))


def read_manifest(path: str | Path) -> pa.Table:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    try:
        return read_parquet(path)
    except pa.ArrowInvalid as e:
        raise ManifestError(f"{path} is not a readable parquet file: {e}") from e


def _read_streaming(path: str | Path) -> tuple[pa.Table, np.ndarray | None]:
    """The manifest's small columns as a table, and its embeddings copied batch by batch into one
    array: reading needs the array plus a few MB, not two copies of the column."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    try:
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 23)  # stream pages, not whole chunks
    except pa.ArrowInvalid as e:
        raise ManifestError(f"{path} is not a readable parquet file: {e}") from e
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
            raise ManifestError(f"embeddings change length ({out.shape[1]} to {part.shape[1]}) at row {at}")
        out[at : at + len(part)] = part
        at += len(part)
    return table, out if out is not None else np.zeros((0, 0), np.float32)


def load_manifest(
    source: str | Path | pa.Table,
    dim: int | None = EMBED_DIM,
    required_splits: tuple[str, ...] = ("train", "val"),
) -> ManifestArrays:
    """Path or table -> validated arrays: the one entry point training and evaluation use."""
    if isinstance(source, pa.Table):
        arrays = to_arrays(source, dim)
    else:
        table, x = _read_streaming(source)
        arrays = to_arrays(table, dim, x)
    validate_arrays(arrays, required_splits)
    return arrays
