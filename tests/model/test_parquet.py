"""How silva's tables are stored: the open layout other tools read as floats, the private layout
for caches, old files, Arrow <-> NumPy without copies, and errors that name rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from silva_model import parquet as silva_parquet
from silva_model.manifest import build_manifest, load_manifest, to_arrays
from silva_model.parquet import (
    ROW_GROUP_ROWS,
    TableError,
    embeddings_from_arrow,
    embeddings_to_arrow,
    name_rows,
    read_parquet,
    read_streaming,
    write_cache_parquet,
    write_parquet,
)
from silva_model.provenance import BackboneSpec

WRITERS = [write_parquet, write_cache_parquet]


def _x(n: int = 300, d: int = 1152, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def _manifest(x: np.ndarray) -> pa.Table:
    return build_manifest(x, np.random.default_rng(1).integers(1, 6, len(x)), dim=x.shape[1], copy_rule=None)


def test_the_open_layout_reads_as_float32_lists_in_polars_pandas_and_duckdb(tmp_path):
    x = _x()
    path = write_parquet(_manifest(x), tmp_path / "m.parquet")

    stored = pq.read_schema(path).field("embedding").type  # plain pyarrow, no silva code
    assert pa.types.is_fixed_size_list(stored) and stored.list_size == 1152
    assert stored.value_type == pa.float32()

    frame = pl.read_parquet(path)
    assert frame.schema["embedding"] == pl.Array(pl.Float32, 1152)
    np.testing.assert_array_equal(frame["embedding"].to_numpy(), x)

    cells = pd.read_parquet(path)["embedding"]
    assert cells.iloc[0].dtype == np.float32
    np.testing.assert_array_equal(np.stack(cells.to_numpy()), x)

    rel = duckdb.sql(f"SELECT typeof(embedding) AS t, embedding FROM read_parquet('{path}')")
    rows = rel.fetchall()
    assert {t for t, _ in rows} == {"FLOAT[]"}
    np.testing.assert_array_equal(np.array([e for _, e in rows], np.float32), x)


def test_the_contract_check_reads_a_manifest_that_plain_pyarrow_loaded(tmp_path):
    """What silva-train's validate_manifest sees: a file read by pyarrow alone, no silva reader."""
    x = _x(200, 16)
    path = write_parquet(_manifest(x), tmp_path / "m.parquet")
    np.testing.assert_array_equal(to_arrays(pq.read_table(path), dim=16).embeddings, x)


def test_the_private_layout_stores_byte_rows_that_only_silva_turns_back(tmp_path):
    x = _x()
    path = write_cache_parquet(pa.table({"embedding": embeddings_to_arrow(x)}), tmp_path / "c.parquet")
    stored = pq.read_schema(path).field("embedding")
    assert stored.type == pa.binary(4 * 1152) and stored.metadata[b"silva.float32_per_row"] == b"1152"
    assert read_parquet(path).schema.field("embedding").type == pa.list_(pa.float32(), 1152)
    np.testing.assert_array_equal(embeddings_from_arrow(pq.read_table(path).column("embedding")), x)


@pytest.mark.parametrize("write", WRITERS)
def test_sliced_multi_chunk_tables_round_trip_exactly(write, tmp_path):
    """Chunks with offsets: each layout must honour them, or rows shift."""
    x = _x()
    t = _manifest(x)
    t = pa.concat_tables([t.slice(0, 100), t.slice(100, 200)]).slice(10, 280)
    path = write(t, tmp_path / "m.parquet")
    back = read_parquet(path)
    assert back.schema == t.schema  # same types, nullability and the copy rule's metadata
    assert back.equals(t.combine_chunks())
    np.testing.assert_array_equal(load_manifest(path, required_splits=()).embeddings, x[10:290])


@pytest.mark.parametrize("write", WRITERS)
def test_an_empty_table_round_trips(write, tmp_path):
    empty = embeddings_to_arrow(np.zeros((0, 8), np.float32))
    t = pa.table({"embedding": empty, "k": pa.array([], pa.int64())})
    back = read_parquet(write(t, tmp_path / "e.parquet"))
    assert back.num_rows == 0 and back.schema == t.schema


@pytest.mark.parametrize("write", WRITERS)
def test_a_float_list_with_a_null_value_is_kept_as_it_is(write, tmp_path):
    """Only lists without a null are stored as float rows; a null inside a row must survive."""
    col = pa.FixedSizeListArray.from_arrays(pa.array([1.0, None, 3.0, 4.0], pa.float32()), 2)
    back = read_parquet(write(pa.table({"e": col}), tmp_path / "n.parquet"))
    assert back.column("e").to_pylist() == [[1.0, None], [3.0, 4.0]]


def test_old_manifests_in_the_byte_layout_still_load(tmp_path):
    """A workspace's manifest written before the open layout: bytes with silva's field key."""
    x = _x(200, 16)
    t = _manifest(x)
    i = t.schema.get_field_index("embedding")
    rows = pa.Array.from_buffers(pa.binary(64), len(x), [None, pa.py_buffer(x.tobytes())])
    field = pa.field("embedding", pa.binary(64), metadata={b"silva.float32_per_row": b"16"})
    old = t.set_column(i, field, rows)
    pq.write_table(old, tmp_path / "old.parquet")
    np.testing.assert_array_equal(load_manifest(tmp_path / "old.parquet", dim=16).embeddings, x)
    assert read_parquet(tmp_path / "old.parquet").equals(t)


def test_float_columns_are_stored_plain_and_the_rest_compressed_in_64k_row_groups(tmp_path):
    n = ROW_GROUP_ROWS + 10
    t = _manifest(_x(n, 4))
    meta = pq.ParquetFile(write_parquet(t, tmp_path / "m.parquet")).metadata
    assert meta.num_row_groups == 2 and meta.row_group(0).num_rows == ROW_GROUP_ROWS
    group = meta.row_group(0)
    cols = {meta.schema.column(j).path.split(".")[0]: group.column(j) for j in range(meta.num_columns)}
    assert cols["embedding"].compression == "UNCOMPRESSED" and cols["embedding"].statistics is None
    assert cols["personal_score"].compression == "SNAPPY" and cols["personal_score"].statistics is not None


@pytest.mark.parametrize("write", WRITERS)
def test_a_failed_write_leaves_the_old_file_and_no_temporary(write, tmp_path, monkeypatch):
    path = write(pa.table({"embedding": embeddings_to_arrow(_x(10, 4))}), tmp_path / "t.parquet")
    before = path.read_bytes()

    def write_half_then_fail(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(silva_parquet.pq, "write_table", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write(pa.table({"embedding": embeddings_to_arrow(_x(20, 4, seed=1))}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_a_single_chunk_of_float32_lists_becomes_numpy_without_a_copy():
    x = _x(50, 8)
    col = pa.chunked_array([embeddings_to_arrow(x)])
    out = embeddings_from_arrow(col)
    assert out.flags.c_contiguous and out.dtype == np.float32
    assert np.shares_memory(out, np.frombuffer(col.chunk(0).values.buffers()[1], np.float32))
    np.testing.assert_array_equal(out, x)


def test_lists_of_other_number_types_and_several_chunks_are_converted():
    x = _x(6, 3)
    col = pa.chunked_array([pa.array(x[:2].tolist(), pa.list_(pa.float64())), pa.array(x[2:].tolist())])
    out = embeddings_from_arrow(col)
    assert out.dtype == np.float32 and out.shape == (6, 3)
    np.testing.assert_array_equal(out, x)


def test_embeddings_to_arrow_refuses_anything_but_a_matrix():
    with pytest.raises(TableError, match=r"2-d \(rows, dim\), got shape \(4,\)"):
        embeddings_to_arrow(np.zeros(4, np.float32))


def test_bad_embedding_columns_name_the_row_and_post_id():
    pid = np.array([10, 11, 12])
    with pytest.raises(TableError, match=r"most have 2, but row\(s\) 1 \(post_id 11\) have \[3\]"):
        embeddings_from_arrow(pa.array([[1.0, 2.0], [1.0, 2.0, 3.0], [4.0, 5.0]]), pid)
    with pytest.raises(TableError, match=r"null value at row 2 \(post_id 12\)"):
        embeddings_from_arrow(pa.array([[1.0, 2.0], [1.0, 2.0], [4.0, None]]), pid)
    with pytest.raises(TableError, match="must be a list of floats, got string"):
        embeddings_from_arrow(pa.array(["a", "b"]))
    with pytest.raises(TableError, match="must hold floats"):
        embeddings_from_arrow(pa.array([["a"], ["b"]]))


def test_name_rows_shows_the_first_few_with_post_ids_and_counts_the_rest():
    assert name_rows(np.arange(7), None) == "0, 1, 2, 3, 4 (+2 more)"
    assert name_rows(np.array([1, 3]), np.array([5, 6, 7, 8])) == "1 (post_id 6), 3 (post_id 8)"


def test_backbone_column_round_trips_dictionary_or_plain_strings():
    specs = [BackboneSpec(model="a"), BackboneSpec(model="b", weights="cd" * 32)]
    col = silva_parquet.backbone_column(np.array([1, 0, 1]), specs)
    for given in (col, col.cast(pa.string())):
        codes, back = silva_parquet.backbones_from_arrow(pa.chunked_array([given]))
        assert [back[c] for c in codes] == [specs[1], specs[0], specs[1]]
    with pytest.raises(TableError, match=r"backbone is null at row\(s\) 1"):
        silva_parquet.backbones_from_arrow(pa.array([specs[0].to_json(), None]))


def test_read_streaming_gives_small_columns_and_one_embedding_array(tmp_path):
    x = _x(20_000, 8)  # more rows than one streamed batch
    table, emb = read_streaming(write_parquet(_manifest(x), tmp_path / "m.parquet"))
    assert "embedding" not in table.column_names and table.num_rows == 20_000
    assert emb.flags.c_contiguous
    np.testing.assert_array_equal(emb, x)
    table, emb = read_streaming(write_parquet(pa.table({"k": [1, 2]}), tmp_path / "k.parquet"))
    assert emb is None and table.column("k").to_pylist() == [1, 2]


def test_read_streaming_names_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.parquet"):
        read_streaming(tmp_path / "nope.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="bad.parquet is not a readable parquet file"):
        read_streaming(tmp_path / "bad.parquet")
