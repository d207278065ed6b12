"""The manifest contract: the one table the trainer, the evaluator and the pipeline share.

Parquet with columns
  - `embedding`: fixed-size list of D float32 (D = 1152 for SigLIP2-SO400M),
  - `personal_score`: integer rating 1..5,
  - `split`: "train" | "val" | "test", a function of the embedding's bytes (`splits.py`),
  - `post_id`: optional integer id, only used to name rows in messages,
  - `backbone`: optional, dictionary-encoded: the JSON of each row's `BackboneSpec` (where its
    embedding came from). Training refuses a manifest whose rows disagree.
  - `copy_signature`: optional: each image's pixel signature, fixed-size list of 128 float32,
    NaN rows where none (`copies.py`).

Splits group copies of one illustration (by the embeddings' cosine and the pixel signatures, the
rule recorded in the schema metadata as `silva.copy_rule`): a re-encoded, resized, cropped,
mirrored, recoloured or framed copy lands in its original's split.

How the columns are stored (and embeddings moved to NumPy without a per-row loop): `parquet.py`;
a manifest is written with `write_parquet`, whose float lists any parquet reader reads as floats.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from silva_model.copies import (
    DEFAULT_COPY_RULE,
    SIGNATURE_COLUMN,
    CopyRule,
    near_duplicate_groups,
    signatures_of,
    signatures_to_arrow,
)
from silva_model.head import EMBED_DIM, NUM_CLASSES
from silva_model.parquet import (
    TableError,
    backbone_column,
    backbones_from_arrow,
    embeddings_from_arrow,
    embeddings_to_arrow,
    name_rows,
    read_streaming,
)
from silva_model.provenance import BackboneMismatchError, BackboneSpec, common_backbone
from silva_model.ratings import HIGHEST, LOWEST
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


class ManifestError(TableError):
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
        rows = [np.flatnonzero(self.backbone_codes == u) for u in used]
        where = [f"row(s) {name_rows(r, self.post_id, 3)}" for r in rows]
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
    codes, groups = split_codes_for(x, hashes, fractions, copy_rule, signatures)
    validate_arrays(ManifestArrays(x, y.astype(np.int64), codes, pid, hashes), groups=lambda: groups)
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


def copy_groups_of(table: pa.Table, m: ManifestArrays) -> np.ndarray:
    """The manifest's groups of copies, regrouped by the rule it records, over its embeddings and
    pixel signatures: the grouping its splits were drawn by."""
    return near_duplicate_groups(m.embeddings, signatures_of(table), copy_rule_of(table))


def near_duplicate_leaks(table: pa.Table, m: ManifestArrays) -> tuple[int, np.ndarray]:
    """(number of groups of copies spread over more than one split, rows of the first one)."""
    groups = copy_groups_of(table, m)
    leaks = groups_across_splits(groups, m.split_codes)
    return int(leaks.size), (np.flatnonzero(groups == leaks[0]) if leaks.size else np.zeros(0, np.int64))


@contextmanager
def _decoding() -> Iterator[None]:
    """A column that cannot be decoded breaks the contract: its error is a ManifestError."""
    try:
        yield
    except ManifestError:
        raise
    except TableError as e:
        raise ManifestError(str(e)) from e


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
    if embeddings is None:
        with _decoding():
            embeddings = embeddings_from_arrow(table.column("embedding"), post_id)
    x = embeddings
    if dim is not None and x.shape[1] != dim:
        raise ManifestError(f"embeddings have length {x.shape[1]}, expected {dim} (rows 0.. all)")

    score_col = table.column("personal_score")
    if not pa.types.is_integer(score_col.type):
        raise ManifestError(f"column 'personal_score' must be integers 1..5, got {score_col.type}")
    if score_col.null_count:
        raise ManifestError(
            f"personal_score is null at row(s) {name_rows(np.flatnonzero(score_col.is_null()), post_id)}"
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
        where = name_rows(unknown, post_id)
        raise ManifestError(f"unknown split {vals} at row(s) {where}; expected {SPLITS}")
    bb_codes, specs = None, []
    if "backbone" in table.column_names:
        with _decoding():
            bb_codes, specs = backbones_from_arrow(table.column("backbone"))
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
        raise ManifestError(f"embedding has NaN or inf at row(s) {name_rows(nonfinite, pid)}")
    zero = np.flatnonzero(peak == 0)
    if zero.size:
        raise ManifestError(
            f"embedding is all zeros at row(s) {name_rows(zero, pid)}: it has no direction to score"
        )
    # The head L2-normalises in float32; beyond this its squared norm overflows to inf.
    huge = np.flatnonzero(peak * np.sqrt(x.shape[1]) > np.sqrt(np.finfo(np.float32).max))
    if huge.size:
        raise ManifestError(
            f"embedding values up to {peak[huge[0]]:.3g} at row(s) {name_rows(huge, pid)}: "
            "far beyond any image embedding (its norm overflows float32)"
        )


def validate_arrays(
    m: ManifestArrays,
    required_splits: tuple[str, ...] = ("train",),
    groups: Callable[[], np.ndarray] | None = None,
) -> dict[str, dict[int, int]]:
    """Check values; return per-split class counts. Raises ManifestError naming rows. `groups`:
    the rows' groups of copies, asked for only to say why a split came out empty."""
    pid = m.post_id
    check_embedding_values(m.embeddings, pid)
    bad = np.flatnonzero((m.scores < LOWEST) | (m.scores > HIGHEST))
    if bad.size:
        raise ManifestError(
            f"personal_score outside 1..5 at row(s) {name_rows(bad, pid)}: {m.scores[bad[:5]].tolist()}"
        )
    _check_duplicates(m)
    counts: dict[str, dict[int, int]] = {}
    for code, name in enumerate(SPLITS):
        sel = m.scores[m.split_codes == code]
        counts[name] = {c: int(n) for c, n in enumerate(np.bincount(sel, minlength=NUM_CLASSES + 1)[1:], 1)}
    empty = [s for s in required_splits if sum(counts[s].values()) == 0]
    if empty:
        why = "" if groups is None else _in_groups(groups())
        raise ManifestError(
            f"split(s) {empty} are empty ({len(m)} rows in all){why}; rate more images "
            "or change the split fractions"
        )
    return counts


def _in_groups(groups: np.ndarray) -> str:
    """How the rows were grouped, when copies explain a split left empty: each group takes one."""
    sizes = np.bincount(np.unique(groups, return_inverse=True)[1])
    n, largest = len(groups), int(sizes.max())
    if largest > 1 and 2 * largest >= n:
        return (
            f": {largest} of {n} images were judged copies of one another (one group, which takes one "
            "split); if they are not copies, the copy rule is too loose for these images"
        )
    return f": the {n} images form {len(sizes)} groups of copies, each in one split" if len(sizes) < n else ""


def conflicting_copies(x: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows whose embedding bytes another row shares under another rating. One
    picture under two files (its metadata stripped, a lossless re-encode) rated differently can
    be neither rating; the manifest leaves such rows out, named, as `_check_duplicates` demands."""
    x = np.ascontiguousarray(x)
    if not len(x):
        return np.zeros(0, bool)
    keys = x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    _, group = np.unique(keys, return_inverse=True)
    ratings = np.asarray(ratings, np.float64)
    low, high = np.full(group.max() + 1, np.inf), np.full(group.max() + 1, -np.inf)
    np.minimum.at(low, group, ratings)
    np.maximum.at(high, group, ratings)
    return low[group] != high[group]


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
                f"{SPLITS[m.split_codes[pair[1]]]}) at rows {name_rows(pair, m.post_id)}"
            )
        if m.scores[a] != m.scores[b]:
            raise ManifestError(
                f"the same embedding has two ratings ({m.scores[pair[0]]} and {m.scores[pair[1]]}) "
                f"at rows {name_rows(pair, m.post_id)}"
            )


def load_manifest(
    source: str | Path | pa.Table,
    dim: int | None = EMBED_DIM,
    required_splits: tuple[str, ...] = ("train",),
) -> ManifestArrays:
    """Path or table -> validated arrays: the one entry point training and evaluation use."""
    if isinstance(source, pa.Table):
        arrays = to_arrays(source, dim)
    else:
        with _decoding():
            table, x = read_streaming(source)
        arrays = to_arrays(table, dim, x)
    validate_arrays(arrays, required_splits, groups=lambda: copy_groups_of(table, arrays))
    return arrays
