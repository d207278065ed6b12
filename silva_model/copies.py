"""What counts as two copies of one illustration: the embeddings' cosine, and the pixels.

A library holds copies: re-encodes, resizes, crops, mirrored or recoloured versions, reposts with a
frame added. They must share a split, or a copy in train answers for its original in test. The
embeddings' cosine alone does not separate them: measured with the tiny test backbone
(`bench/near_duplicates.py`), 10 % crops, 5° rotations, mirrors, brightness changes and frames fall
well below any cosine that distinct images stay under. So every decoded image also gets a pixel
signature: an 8×8 grey thumbnail, zero-mean and unit-norm, once as it is and once with a uniform
frame stripped (`SIGNATURE_DIM` = 128 floats). Two signatures compare by the best correlation over
both thumbnails of each, as they are and mirrored.

Two images are copies when any of these holds (the thresholds as measured there):
- cosine > `cosine` (0.985): re-encodes and resizes;
- pixel correlation > `pixels` (0.90): crops, rotations, mirrors, colour shifts, frames;
- pixel correlation > 0.65 and cosine > 0.90: what one signal alone sees only half of.
Rows without a signature (vectors from a source, no file) are judged by the cosine alone.

Copies form groups around a centre, each member a copy of its centre (`near_duplicate_groups`):
grouping by chains of copies of copies joined 75 of 80 distinct images into one group when a
backbone judged 1.8 % of pairs copies, and can chain a library's variations of one piece.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image

from silva_model.splits import content_hash

SIDE = 8  # the thumbnail's side: coarse enough that a 10 % crop moves content under one cell
SIGNATURE_DIM = 2 * SIDE * SIDE
SIGNATURE_COLUMN = "copy_signature"  # in the embedding cache, embedding tables and the manifest
_WORK_SIDE = 64  # the image is first reduced to this: about 2 ms for a 1.7 MP image, on one core
_FRAME_TOLERANCE = 12  # grey levels a frame's pixels may differ from its corner


@dataclass(frozen=True)
class CopyRule:
    """When two images count as copies (see the module docstring for what each threshold does)."""

    cosine: float = 0.985
    pixels: float = 0.90
    joint_pixels: float = 0.65
    joint_cosine: float = 0.90

    def copies(self, cosine: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        return (
            (cosine > self.cosine)
            | (pixels > self.pixels)
            | ((pixels > self.joint_pixels) & (cosine > self.joint_cosine))
        )


DEFAULT_COPY_RULE = CopyRule()


def _thumb(grey: np.ndarray) -> np.ndarray:
    t = np.asarray(Image.fromarray(grey).resize((SIDE, SIDE), Image.BOX), np.float32).ravel()
    t -= t.mean()
    norm = np.linalg.norm(t)
    return t / norm if norm > 0 else t


def _strip_frame(grey: np.ndarray) -> np.ndarray:
    """`grey` without its flat outer rows and columns (a mat, a letterbox, a flat margin), peeled
    one ring at a time so a frame goes before what it surrounds; never below half size."""
    g = grey.astype(np.int16)
    h, w = g.shape
    t, b, left, r = 0, h, 0, w

    def flat(line: np.ndarray) -> bool:  # its ends may blend with a side peeled already
        inner = line[1:-1] if line.size > 2 else line
        return int(inner.max()) - int(inner.min()) <= _FRAME_TOLERANCE

    peeled = True
    while peeled:
        peeled = False
        if b - t > h // 2 and flat(g[t, left:r]):
            t, peeled = t + 1, True
        if b - t > h // 2 and flat(g[b - 1, left:r]):
            b, peeled = b - 1, True
        if r - left > w // 2 and flat(g[t:b, left]):
            left, peeled = left + 1, True
        if r - left > w // 2 and flat(g[t:b, r - 1]):
            r, peeled = r - 1, True
    return grey[t:b, left:r]


def pixel_signature(image: Image.Image) -> np.ndarray:
    """(SIGNATURE_DIM,) float32 of an RGB image: its thumbnail as is, then without its frame."""
    w, h = image.size
    scale = _WORK_SIDE / max(w, h, 1)
    small = image.convert("L").resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    grey = np.asarray(small, np.uint8)
    return np.concatenate([_thumb(grey), _thumb(_strip_frame(grey))]).astype(np.float32)


def _mirrored(s: np.ndarray) -> np.ndarray:
    return s.reshape(len(s), 2, SIDE, SIDE)[..., ::-1].reshape(len(s), -1)


def pixel_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, SIGNATURE_DIM) x (m, SIGNATURE_DIM) -> (n, m): the best correlation of any thumbnail of
    one with any thumbnail of the other, as is or mirrored; -1 where either has no signature.
    Two framed images (each lost a margin to `_strip_frame`) are compared without their frames
    only, or any two images in the same frame would look alike."""
    half = SIDE * SIDE
    a0, b0 = np.nan_to_num(a), np.nan_to_num(b)
    mb = _mirrored(b0)
    theirs = {"as is": [b0[:, :half], mb[:, :half]], "stripped": [b0[:, half:], mb[:, half:]]}
    both_framed = np.ix_(_framed(a0), _framed(b0))  # a mirror is framed when its original is
    best = np.full((len(a), len(b)), -1.0, np.float32)
    for mine_kind, mine in (("as is", a0[:, :half]), ("stripped", a0[:, half:])):
        for their_kind, views in theirs.items():
            for view in views:
                sim = mine @ view.T
                if mine_kind == their_kind == "as is":
                    sim[both_framed] = -1.0
                np.maximum(best, sim, out=best)
    best[np.isnan(a).any(1)] = -1.0
    best[:, np.isnan(b).any(1)] = -1.0
    return best


def _framed(s: np.ndarray) -> np.ndarray:
    """Which signatures lost a margin to `_strip_frame` (their two thumbnails differ)."""
    half = SIDE * SIDE
    return ~np.isclose(s[:, :half], s[:, half:], atol=1e-6).all(1)


def signatures_to_arrow(signatures: np.ndarray) -> pa.FixedSizeListArray:
    """(N, SIGNATURE_DIM) float32 -> an Arrow column. An image without a signature stays a NaN
    row, not a null: parquet cannot read back fixed-size lists with null rows."""
    x = np.ascontiguousarray(signatures, np.float32).reshape(-1, SIGNATURE_DIM)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), SIGNATURE_DIM)


def signatures_of(table: pa.Table) -> np.ndarray:
    """A table's SIGNATURE_COLUMN -> (rows, SIGNATURE_DIM), NaN where null or the table (written
    before signatures existed) has none."""
    out = no_signatures(table.num_rows)
    if SIGNATURE_COLUMN not in table.column_names:
        return out
    arr = table.column(SIGNATURE_COLUMN).combine_chunks()
    arr = arr.cast(pa.list_(pa.float32(), SIGNATURE_DIM))
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    values = arr.flatten().to_numpy().reshape(-1, SIGNATURE_DIM)  # flatten() skips null rows
    out[valid] = values
    return out


def no_signatures(n: int) -> np.ndarray:
    return np.full((n, SIGNATURE_DIM), np.nan, np.float32)


_BLOCK_ROWS = 2048


def _unit_rows(raw: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm, in float64 per block: huge rows must not overflow (validation
    names them)."""
    x = np.empty_like(raw)
    for s in range(0, len(raw), _BLOCK_ROWS):
        block = raw[s : s + _BLOCK_ROWS].astype(np.float64)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        x[s : s + _BLOCK_ROWS] = block / np.where(norms > 0, norms, 1.0)
    return x


@dataclass(frozen=True)
class CopyPairs:
    """The pairs of rows judged copies (`first` < `second`), and how alike each pair is: the
    cosine plus the pixel correlation (-1 where either has no signature)."""

    first: np.ndarray  # (P,) int64
    second: np.ndarray  # (P,) int64
    likeness: np.ndarray  # (P,) float32


def copy_pairs(
    embeddings: np.ndarray, signatures: np.ndarray | None = None, rule: CopyRule = DEFAULT_COPY_RULE
) -> CopyPairs:
    """Every pair of rows `rule` judges copies: an exact all-pairs search in blocks, O(N^2 D)."""
    x = _unit_rows(np.ascontiguousarray(embeddings, dtype=np.float32))
    n = len(x)
    sig = no_signatures(n) if signatures is None else np.asarray(signatures, np.float32)
    has_pixels = not np.isnan(sig).all()
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for s in range(0, n, _BLOCK_ROWS):
        cos = x[s : s + _BLOCK_ROWS] @ x[s:].T  # the upper triangle is enough: the relation is symmetric
        pix = pixel_similarity(sig[s : s + _BLOCK_ROWS], sig[s:]) if has_pixels else np.full_like(cos, -1.0)
        i, j = np.nonzero(rule.copies(cos, pix))
        i, j = i[j > i], j[j > i]
        found.append((i + s, j + s, cos[i, j] + pix[i, j]))
    if not found:
        return CopyPairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    first, second, likeness = (np.concatenate(parts) for parts in zip(*found, strict=True))
    return CopyPairs(first.astype(np.int64), second.astype(np.int64), likeness.astype(np.float32))


def _between_images(pairs: CopyPairs, image: np.ndarray) -> CopyPairs:
    """The rows' pairs as pairs of images (`image`: each row's image): rows with the same embedding
    bytes are one image, a copy of another when any of its rows is, as alike as its most alike
    row (which row holds a signature does not matter, nor their order)."""
    a, b = image[pairs.first], image[pairs.second]
    first, second, likeness = np.minimum(a, b), np.maximum(a, b), pairs.likeness
    keep = first != second
    first, second, likeness = first[keep], second[keep], likeness[keep]
    order = np.lexsort((likeness, second, first))
    first, second, likeness = first[order], second[order], likeness[order]
    last = np.append((first[1:] != first[:-1]) | (second[1:] != second[:-1]), True)[: first.size]
    return CopyPairs(first[last], second[last], likeness[last])


def _centres(pairs: CopyPairs, rank: np.ndarray) -> np.ndarray:
    """Which images are centres: greedily by `rank`, highest first, every image not a copy of a
    centre chosen already (the lexicographically first maximal independent set), computed in
    rounds: an undecided image that outranks its undecided copies is a centre, its copies are not."""
    n = len(rank)
    src = np.concatenate([pairs.first, pairs.second])
    dst = np.concatenate([pairs.second, pairs.first])
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    linked = np.unique(src)
    starts = np.searchsorted(src, linked)
    centre, undecided = np.zeros(n, bool), np.ones(n, bool)
    while undecided.any():
        best = np.full(n, -1, np.int64)
        if linked.size:
            best[linked] = np.maximum.reduceat(np.where(undecided[dst], rank[dst], -1), starts)
        chosen = undecided & (rank > best)
        centre |= chosen
        undecided[chosen] = False
        undecided[dst[chosen[src]]] = False
    return centre


def groups_around_centres(pairs: CopyPairs, keys: np.ndarray) -> np.ndarray:
    """(n,) group labels of n images, given the pairs judged copies and each image's distinct
    `keys` (its content hash): every image joins the centre it is most alike among those it is a
    copy of, so a group holds at most its centre and the centre's copies.
    Centres are ranked by how many copies each has (an original before its copies), then by how
    alike it is to them in all (an original before a re-encode that has as many), then by key.
    Likeness is summed in integer units of 2^-16, exactly, whatever the order of the pairs."""
    n = len(keys)
    ends = np.concatenate([pairs.first, pairs.second])
    degree = np.bincount(ends, minlength=n)
    units = np.rint(np.concatenate([pairs.likeness, pairs.likeness]) * 2.0**16).astype(np.int64)
    alike = np.zeros(n, np.int64)
    np.add.at(alike, ends, units)
    rank = np.empty(n, np.int64)
    rank[np.lexsort((keys, alike, degree))] = np.arange(n)
    centre = _centres(pairs, rank)
    label = np.arange(n)
    head = np.concatenate([pairs.second, pairs.first])
    keep = centre[head] & ~centre[ends]
    member, head, likeness = ends[keep], head[keep], units[keep]
    order = np.lexsort((rank[head], likeness, member))  # the last per member: most alike, then rank
    member, head = member[order], head[order]
    last = np.append(member[1:] != member[:-1], True)[: member.size]
    label[member[last]] = head[last]
    return label


def near_duplicate_groups(
    embeddings: np.ndarray, signatures: np.ndarray | None = None, rule: CopyRule = DEFAULT_COPY_RULE
) -> np.ndarray:
    """(N, D) embeddings and (N, SIGNATURE_DIM) signatures (NaN rows: none; None: no pixels at all)
    -> (N,) group labels. Every group forms around a centre, and each member is a copy of its
    centre by `rule` (exact copies: one image), so a chain of copies of copies cannot join a
    whole set into one group. The partition depends only on the rows, not on their order.
    Exact all-pairs search in blocks: O(N^2 D)."""
    raw = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = raw.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    keys, image = np.unique(content_hash(raw), return_inverse=True)
    label = groups_around_centres(_between_images(copy_pairs(raw, signatures, rule), image), keys)
    return np.unique(label, return_inverse=True)[1].astype(np.int64)[image]
