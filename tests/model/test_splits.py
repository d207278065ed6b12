"""Content-keyed splits: a row's split is a pure function of its bytes, and copies share one."""

from __future__ import annotations

import numpy as np
import pytest

from silva_model.splits import (
    DEFAULT_FRACTIONS,
    assign_split_codes,
    content_hash,
    group_split_codes,
    groups_across_splits,
)


def _x(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def test_the_hash_is_pinned_so_existing_workspaces_keep_their_splits():
    """Changing the hash moves every image of every workspace to a new split (test rows into
    train): this must fail loudly, not pass quietly."""
    x = (np.arange(3 * 8, dtype=np.float32).reshape(3, 8) - 5) / 7
    assert content_hash(x).tolist() == [0xE554861FF883C2E3, 0x96D0EDAE468B1958, 0x3E9953DCDA81BD9F]
    assert assign_split_codes(content_hash(x)).tolist() == [1, 0, 0]


def test_the_hash_is_a_function_of_each_row_alone():
    """Rows hashed together, one by one, in another order or across chunk boundaries (more rows
    than one hashing chunk) hash the same."""
    x = _x(10_000)
    h = content_hash(x)
    assert np.array_equal(content_hash(x[::-1]), h[::-1])
    assert np.array_equal(content_hash(x[4_090:4_100]), h[4_090:4_100])
    assert all(content_hash(x[i : i + 1])[0] == h[i] for i in (0, 4_095, 4_096, 9_999))
    assert len(np.unique(h)) == len(h)


def test_the_hash_reads_the_float32_value_not_the_array_it_came_in():
    """Float64 that holds float32 values, a big-endian array or a strided view: same bytes, same hash."""
    x = _x(50)
    h = content_hash(x)
    assert np.array_equal(content_hash(x.astype(np.float64)), h)
    assert np.array_equal(content_hash(x.astype(">f4")), h)
    wide = np.zeros((50, 32), np.float32)
    wide[:, ::2] = x
    assert np.array_equal(content_hash(wide[:, ::2]), h)


def test_every_bit_and_the_width_count():
    x = _x(200)
    h = content_hash(x)
    for col in (0, 7, 15):
        y = x.copy()
        y[:, col] = np.nextafter(y[:, col], np.float32(np.inf))
        assert np.all(content_hash(y) != h)
    signed_zero = np.zeros((1, 4), np.float32)
    signed_zero[0, 2] = -0.0
    assert content_hash(signed_zero) != content_hash(np.zeros((1, 4), np.float32))  # other bytes
    assert content_hash(np.zeros((1, 4), np.float32)) != content_hash(np.zeros((1, 8), np.float32))


def test_content_hash_refuses_anything_but_a_matrix():
    with pytest.raises(ValueError, match=r"2-d \(rows, dim\) array, got shape \(5,\)"):
        content_hash(np.zeros(5, np.float32))


def test_split_codes_follow_the_fractions():
    h = content_hash(_x(40_000))
    codes = assign_split_codes(h)
    assert np.allclose(np.bincount(codes, minlength=3) / len(h), DEFAULT_FRACTIONS, atol=0.01)
    assert np.all(assign_split_codes(h, (1.0, 0.0, 0.0)) == 0)
    assert np.all(assign_split_codes(h, (0.0, 0.0, 1.0)) == 2)
    edge = np.array([0, np.iinfo(np.uint64).max], np.uint64)
    assert assign_split_codes(edge).tolist() == [0, 2]


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.8, 0.2), (1.2, -0.1, -0.1)])
def test_bad_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="3 non-negative numbers summing to 1"):
        assign_split_codes(np.zeros(3, np.uint64), fractions)


def test_a_lone_image_keeps_its_own_split_and_a_group_shares_one():
    h = content_hash(_x(3_000))
    groups = np.arange(3_000)
    groups[1:1_000:3] = groups[0:999:3]  # pairs (0, 1), (3, 4), ...
    groups[2:1_000:3] = groups[0:999:3]  # ... of three: (0, 1, 2), (3, 4, 5), ...
    codes = group_split_codes(h, groups)
    assert np.array_equal(codes[1_000:], assign_split_codes(h[1_000:]))  # lone images
    assert groups_across_splits(groups, codes).size == 0
    assert np.all(codes[0:999:3] == codes[1:1_000:3]) and np.all(codes[0:999:3] == codes[2:1_000:3])


def test_a_groups_split_depends_on_its_members_not_on_labels_or_order():
    h = content_hash(_x(600))
    groups = np.repeat(np.arange(200), 3)
    codes = group_split_codes(h, groups)
    perm = np.random.default_rng(1).permutation(600)
    relabelled = (199 - groups)[perm]
    assert np.array_equal(group_split_codes(h[perm], relabelled), codes[perm])


def test_groups_reach_val_and_test_at_the_fractions():
    """The lowest of a group's hashes alone would put groups in train far above 80 %."""
    h = content_hash(_x(40_000))
    groups = np.repeat(np.arange(8_000), 5)
    codes = group_split_codes(h, groups)[::5]
    assert np.allclose(np.bincount(codes, minlength=3) / len(codes), DEFAULT_FRACTIONS, atol=0.015)


def test_no_rows_no_splits():
    assert group_split_codes(np.zeros(0, np.uint64), np.zeros(0, np.int64)).shape == (0,)
    assert groups_across_splits(np.zeros(0, np.int64), np.zeros(0, np.int8)).size == 0


def test_groups_across_splits_names_each_leaking_group_once():
    groups = np.array([0, 0, 1, 1, 2, 2, 2, 3])
    codes = np.array([0, 0, 0, 2, 1, 1, 0, 2], np.int8)
    assert groups_across_splits(groups, codes).tolist() == [1, 2]
