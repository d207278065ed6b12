"""Content-keyed splits: an embedding's split is a pure function of its bytes.

No ids, no row order, no other rows: the same embedding lands in the same split on every
machine and in every future manifest, so a re-rated or re-exported image can never leak from
train into test. The key is a 64-bit hash of the float32 little-endian bytes, computed in
vectorised NumPy (a fixed multiply-sum over 32-bit words, then a splitmix64 finaliser) so a
million rows take about a second rather than a per-row Python loop.
"""

from __future__ import annotations

import numpy as np

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_FRACTIONS: tuple[float, float, float] = (0.8, 0.1, 0.1)
_CHUNK_ROWS = 4_096  # rows hashed at once: the uint64 temporaries stay ~40 MB
_U64 = np.uint64
_GROUP_SALT = _U64(0x5D1A_C0E5_6A5E_D00D)  # a group's key differs from its lowest member's


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x + _U64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _column_keys(n_words: int) -> np.ndarray:
    # Odd multipliers: a change in any single word always changes the sum.
    return _splitmix64(np.arange(n_words, dtype=np.uint64)) | _U64(1)


def content_hash(embeddings: np.ndarray) -> np.ndarray:
    """(N, D) float32 -> (N,) uint64, a deterministic hash of each row's bytes."""
    x = np.ascontiguousarray(embeddings, dtype="<f4")
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d (rows, dim) array, got shape {x.shape}")
    words = x.view("<u4")
    keys = _column_keys(words.shape[1])
    out = np.empty(words.shape[0], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, words.shape[0], _CHUNK_ROWS):
            out[s : s + _CHUNK_ROWS] = (words[s : s + _CHUNK_ROWS].astype(np.uint64) * keys).sum(axis=1)
        return _splitmix64(out ^ _U64(words.shape[1]))


def _check_fractions(fractions: tuple[float, ...]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (len(SPLITS),) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"split fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    return f


def assign_split_codes(
    hashes: np.ndarray, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> np.ndarray:
    """Hashes -> split codes (0 train, 1 val, 2 test), by where hash/2^64 falls in the fractions."""
    u = (hashes >> _U64(11)).astype(np.float64) * 2.0**-53
    edges = np.cumsum(_check_fractions(fractions))[:-1]
    return np.searchsorted(edges, u, side="right").astype(np.int8)


def group_keys(hashes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each row's key, a pure function of its group's contents: a lone image its own hash, a group
    of copies a hash of the group (its lowest member hash, mixed again). The lowest of k hashes
    itself would sit in train far more often than 80 %, so groups would almost never reach val or
    test. Groups are labels 0..G-1."""
    if hashes.size == 0:
        return np.zeros(0, np.uint64)
    n_groups = int(groups.max()) + 1
    anchor = np.full(n_groups, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(anchor, groups, hashes)
    size = np.bincount(groups, minlength=n_groups)
    return np.where(size > 1, _splitmix64(anchor ^ _GROUP_SALT), anchor)[groups]


def group_split_codes(
    hashes: np.ndarray, groups: np.ndarray, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> np.ndarray:
    """A lone image keeps its own hash's split; a group of copies takes the split of its
    `group_keys` key, so copies share a split."""
    if hashes.size == 0:
        return np.zeros(0, np.int8)
    return assign_split_codes(group_keys(hashes, groups), fractions)


def groups_across_splits(groups: np.ndarray, split_codes: np.ndarray) -> np.ndarray:
    """Labels of the groups whose members sit in more than one split (leaks)."""
    if groups.size == 0:
        return np.zeros(0, np.int64)
    pairs = np.unique(np.stack([groups, split_codes.astype(np.int64)], 1), axis=0)
    labels, counts = np.unique(pairs[:, 0], return_counts=True)
    return labels[counts > 1]
