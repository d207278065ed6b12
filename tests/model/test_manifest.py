"""The manifest contract: splits, validation naming rows, the stored format."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silva_model.manifest import (
    ManifestError,
    build_manifest,
    build_table,
    load_manifest,
    to_arrays,
    validate_arrays,
)
from silva_model.parquet import TableError, embeddings_from_arrow, write_parquet
from silva_model.provenance import BackboneSpec
from silva_model.splits import SPLITS, assign_split_codes, content_hash

D = 16


def assign_splits(x: np.ndarray) -> np.ndarray:
    """Each row's split name, by content hash alone."""
    return np.asarray(SPLITS, dtype=object)[assign_split_codes(content_hash(x))]


def validate_manifest(table: pa.Table, dim: int | None, **kw) -> dict:
    return validate_arrays(to_arrays(table, dim), **kw)


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)).astype(np.float32)
    y = rng.integers(1, 6, n)
    return x, y


def test_splits_are_deterministic_order_independent_and_default_80_10_10():
    x, _ = _data(20_000)
    s = assign_splits(x)
    perm = np.random.default_rng(1).permutation(len(x))
    assert np.array_equal(assign_splits(x[perm]), s[perm])  # row order does not matter
    assert np.array_equal(assign_splits(x[:100]), s[:100])  # other rows do not matter
    frac = np.array([(s == k).mean() for k in SPLITS])
    assert np.allclose(frac, [0.8, 0.1, 0.1], atol=0.01)


def test_split_depends_on_every_byte():
    x, _ = _data(2000)
    h = content_hash(x)
    assert len(np.unique(h)) == len(h)
    y = x.copy()
    y[:, -1] = np.nextafter(y[:, -1], np.float32(np.inf))  # flip one ulp in the last value
    assert np.all(content_hash(y) != h)


def test_split_fractions_validated():
    with pytest.raises(ValueError, match="sum"):
        assign_split_codes(np.zeros(3, np.uint64), (0.5, 0.5, 0.5))


def test_roundtrip_is_lossless_and_atomic(tmp_path):
    x, y = _data()
    t = build_manifest(x, y, post_id=np.arange(len(y)) + 100, dim=D)
    assert pa.types.is_fixed_size_list(t.schema.field("embedding").type)
    path = write_parquet(t, tmp_path / "m.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["m.parquet"]  # no temp file left behind
    a = load_manifest(path, dim=D)
    assert np.array_equal(a.embeddings, x) and a.embeddings.flags.c_contiguous
    assert np.array_equal(a.scores, y) and np.array_equal(a.post_id, np.arange(len(y)) + 100)
    assert np.array_equal(np.asarray(SPLITS)[a.split_codes], assign_splits(x))


def test_variable_size_lists_from_other_writers_are_accepted(tmp_path):
    x, y = _data(50)
    t = pa.table(
        {
            "embedding": pa.array(x.tolist(), pa.list_(pa.float64())),
            "personal_score": pa.array(y),
            "split": pa.array(assign_splits(x).tolist()),
        }
    )
    pq.write_table(t, tmp_path / "m.parquet")
    a = load_manifest(tmp_path / "m.parquet", dim=D, required_splits=())
    np.testing.assert_array_equal(a.embeddings, x)


def test_fingerprint_ignores_row_order():
    x, y = _data()
    a = to_arrays(build_manifest(x, y, dim=D), dim=D)
    perm = np.random.default_rng(0).permutation(len(y))
    b = to_arrays(build_manifest(x[perm], y[perm], dim=D), dim=D)
    assert a.fingerprint() == b.fingerprint()
    c = to_arrays(build_manifest(x, np.where(y == 5, 4, y), dim=D), dim=D)
    assert c.fingerprint() != a.fingerprint()


def _table(x, y, split=None, post_id=None):
    codes = assign_split_codes(content_hash(x)) if split is None else split
    return build_table(x, y, codes, post_id)


def test_wrong_length_names_the_row():
    x, y = _data(10)
    rows = x.tolist()
    rows[7] = rows[7][:-1]
    t = pa.table(
        {
            "embedding": pa.array(rows, pa.list_(pa.float32())),
            "personal_score": pa.array(y),
            "split": pa.array(["train"] * 10),
        }
    )
    with pytest.raises(ManifestError, match=r"row\(s\) 7 .*have \[15\]"):
        validate_manifest(t, dim=D)
    with pytest.raises(ManifestError, match="expected 1152"):
        validate_manifest(_table(x, y), dim=1152)


def test_nan_and_inf_name_the_rows():
    x, y = _data(20)
    x[3, 0] = np.nan
    x[11, 5] = np.inf
    with pytest.raises(ManifestError, match=r"NaN or inf at row\(s\) 3 \(post_id 103\), 11 \(post_id 111\)"):
        validate_manifest(_table(x, y, post_id=np.arange(20) + 100), dim=D)


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_rating_outside_1_to_5(bad):
    x, y = _data(20)
    y[4] = bad
    with pytest.raises(ManifestError, match=r"outside 1..5 at row\(s\) 4"):
        build_manifest(x, y, dim=D)
    with pytest.raises(ManifestError, match=r"outside 1..5 at row\(s\) 4"):
        validate_manifest(_table(x, y), dim=D)


def test_float_ratings_and_null_ratings_rejected():
    x, y = _data(10)
    t = _table(x, y).set_column(1, "personal_score", pa.array(y.astype(float)))
    with pytest.raises(ManifestError, match="must be integers"):
        validate_manifest(t, dim=D)
    t = _table(x, y).set_column(1, "personal_score", pa.array([1, None] + [2] * 8, pa.int64()))
    with pytest.raises(ManifestError, match=r"null at row\(s\) 1"):
        validate_manifest(t, dim=D)


def test_unknown_split_and_missing_column():
    x, y = _data(10)
    t = _table(x, y).set_column(2, "split", pa.array(["train"] * 9 + ["holdout"]))
    with pytest.raises(ManifestError, match=r"unknown split \['holdout'\] at row\(s\) 9"):
        validate_manifest(t, dim=D)
    with pytest.raises(ManifestError, match="lacks column"):
        validate_manifest(t.drop(["split"]), dim=D)


def test_same_embedding_in_two_splits_or_with_two_ratings():
    x, y = _data(30)
    x[20] = x[5]
    y[20] = y[5]
    codes = assign_split_codes(content_hash(x))
    codes[20] = (codes[5] + 1) % 3
    with pytest.raises(ManifestError, match="same embedding is in two splits .* rows 5, 20"):
        validate_manifest(_table(x, y, codes), dim=D)
    y[20] = y[5] % 5 + 1
    with pytest.raises(ManifestError, match="same embedding has two ratings .* rows 5, 20"):
        validate_manifest(_table(x, y), dim=D)
    y[20] = y[5]
    validate_manifest(_table(x, y), dim=D, required_splits=())  # an exact duplicate is harmless


def test_only_an_empty_train_split_breaks_the_contract():
    """A few dozen ratings, or copies grouped together, may leave no val row: training then
    chooses on inner folds of the train split, so the contract asks for train rows only."""
    x, y = _data(10)
    counts = validate_manifest(_table(x, y, np.zeros(10, np.int8)), dim=D)
    assert sum(counts["train"].values()) == 10 and sum(counts["val"].values()) == 0
    with pytest.raises(ManifestError, match=r"split\(s\) \['train'\] are empty"):
        validate_manifest(_table(x, y, np.full(10, 2, np.int8)), dim=D)
    with pytest.raises(ManifestError, match=r"\['train', 'val'\] are empty"):
        validate_manifest(_table(x, y, np.full(10, 2, np.int8)), dim=D, required_splits=("train", "val"))


def test_counts_per_split_and_class_returned():
    x, y = _data(2000)
    counts = validate_manifest(_table(x, y), dim=D)
    assert sum(sum(c.values()) for c in counts.values()) == 2000
    assert counts["train"][3] == int(((y == 3) & (assign_splits(x) == "train")).sum())


def test_unreadable_or_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_manifest(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ManifestError, match="not a readable parquet"):
        load_manifest(tmp_path / "bad.parquet")


def test_null_embedding_row():
    x, y = _data(5)
    rows = x.tolist()
    rows[2] = None
    t = pa.table(
        {
            "embedding": pa.array(rows, pa.list_(pa.float32(), D)),
            "personal_score": pa.array(y),
            "split": pa.array(["train"] * 5),
        }
    )
    with pytest.raises(TableError, match=r"null at row\(s\) 2"):
        embeddings_from_arrow(t.column("embedding"))  # the codec names the row...
    with pytest.raises(ManifestError, match=r"null at row\(s\) 2"):
        to_arrays(t, dim=D)  # ...and in a manifest it breaks the contract


def test_written_manifest_keeps_provenance_and_threshold(taste_data, tmp_path):
    spec = BackboneSpec(model="m", weights="cd" * 32)
    path = write_parquet(
        build_manifest(taste_data.embeddings[:300], taste_data.ratings[:300], backbone=spec),
        tmp_path / "m.parquet",
    )
    m = load_manifest(path)
    assert m.backbone() == spec
    import pyarrow.parquet as pq

    from silva_model.copies import DEFAULT_COPY_RULE
    from silva_model.manifest import copy_rule_of

    assert copy_rule_of(pq.read_table(path)) == DEFAULT_COPY_RULE


def test_an_absurd_embedding_row_is_refused_by_the_contract(taste_data):
    from silva_model.manifest import ManifestError, build_manifest

    x = taste_data.embeddings[:200].copy()
    x[17] = 1e30
    with pytest.raises(ManifestError, match=r"1e\+30 at row\(s\) 17"):
        build_manifest(x, taste_data.ratings[:200])
    x[17] = 0.0
    with pytest.raises(ManifestError, match="all zeros at row"):
        build_manifest(x, taste_data.ratings[:200])
