"""The release format: save_pretrained, digests, tampering refused, loading from the Hub cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import populate_hub_cache

from silva_model import HeadConfig, OrdinalHead, Scorer
from silva_model.cli import main as silva
from silva_model.metrics import MIN_EVAL_ROWS
from silva_model.provenance import sha256_file
from silva_model.release import (
    IntegrityError,
    load_head,
    resolve_pretrained,
    save_checkpoint,
    save_pretrained,
)


@pytest.fixture
def release(tmp_path):
    head = OrdinalHead(HeadConfig(embed_dim=32, hidden=(16,)))
    return save_pretrained(
        head,
        tmp_path / "release",
        metrics={"test": {"n": 10, "spearman": 0.5}},
        extra={"data": {"n_train": 8}},
    ), head


def test_load_from_offline_hub_cache(release, tmp_path, monkeypatch):
    folder, head = release
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "someone/silva-head", folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    path = resolve_pretrained("someone/silva-head")
    assert path.parent.parent == cache / "models--someone--silva-head"
    scorer = Scorer.from_pretrained("someone/silva-head", device="cpu")
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    np.testing.assert_allclose(
        scorer.score_embeddings(x), Scorer(head.eval(), device="cpu").score_embeddings(x), rtol=1e-6
    )
    with pytest.raises(Exception, match="(?i)offline|cache"):
        Scorer.from_pretrained("someone/not-cached", device="cpu")


def test_local_folder_and_bad_inputs(release, tmp_path):
    folder, _ = release
    head, meta = load_head(folder)
    assert meta["metrics"]["test"]["spearman"] == 0.5 and meta["data"]["n_train"] == 8
    assert load_head(str(folder))[1] == meta  # a path as text loads and verifies the same
    with pytest.raises(FileNotFoundError, match="holds no silva head"):
        load_head(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(IntegrityError, match="does not match the sha256 recorded in config.json"):
        load_head(folder)
    with pytest.raises(ValueError, match="could not be loaded"):
        load_head(folder, verify=False)
    with pytest.raises(FileNotFoundError, match="neither a local folder nor a valid Hub repo id"):
        resolve_pretrained("not a/valid//repo id")


def test_release_never_contains_pickles(release):
    folder, _ = release
    for f in folder.iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} looks like a pickle"
    assert json.loads((folder / "config.json").read_text())["format"] == "silva-ordinal-head"


def test_save_pretrained_replaces_an_existing_release(release):
    folder, _ = release
    other = OrdinalHead(HeadConfig(embed_dim=32, hidden=(8,)))
    save_pretrained(other, folder)
    head, _ = load_head(folder)
    assert head.config.hidden == (8,)
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())


def _flip(weights, byte_in_float: int) -> None:
    """Flip one byte of the first float32 of the file's tensor data (little endian: byte 0 is
    mantissa, byte 3 holds the sign and exponent)."""
    raw = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")  # safetensors: u64 header length, JSON header, data
    raw[start + byte_in_float] ^= 0x01
    weights.write_bytes(bytes(raw))


@pytest.mark.parametrize("byte_in_float", [0, 3], ids=["mantissa", "exponent"])
def test_one_changed_weight_byte_is_refused_with_one_line(release, tmp_path, capsys, byte_in_float):
    folder, _ = release
    manifest = tmp_path / "m.parquet"
    from silva_model.manifest import build_manifest
    from silva_model.parquet import write_parquet

    rng = np.random.default_rng(0)
    write_parquet(
        build_manifest(rng.standard_normal((30, 32)).astype(np.float32), rng.integers(1, 6, 30), dim=32),
        manifest,
    )
    _flip(folder / "model.safetensors", byte_in_float)
    with pytest.raises(IntegrityError, match=r"model\.safetensors does not match the sha256"):
        Scorer.from_pretrained(folder, device="cpu")
    assert silva(["score-manifest", str(manifest), "--head", str(folder)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.safetensors does not match" in err and "--no-verify" in err
    assert silva(["score-manifest", str(manifest), "--head", str(folder), "--no-verify"]) == 0


def test_a_changed_model_card_and_a_changed_checkpoint_are_refused(release, tmp_path):
    folder, head = release
    card = folder / "README.md"
    card.write_text(card.read_text().replace("one person's", "everyone's"))
    with pytest.raises(IntegrityError, match="README.md does not match"):
        load_head(folder)
    checkpoint = save_checkpoint(head, tmp_path / "ckpt", {"epoch": 1})
    assert json.loads((checkpoint / "best.json").read_text())["files"].keys() == {"best.safetensors"}
    load_head(checkpoint)
    _flip(checkpoint / "best.safetensors", 3)
    with pytest.raises(
        IntegrityError, match="best.safetensors does not match the sha256 recorded in best.json"
    ):
        load_head(checkpoint)


def test_a_hub_download_is_verified_the_same_way(release, tmp_path, monkeypatch):
    folder, _ = release
    _flip(folder / "model.safetensors", 0)
    cache = tmp_path / "hub"
    populate_hub_cache(cache, "someone/tampered", folder)
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    with pytest.raises(IntegrityError, match="model.safetensors does not match"):
        Scorer.from_pretrained("someone/tampered", device="cpu")


def test_the_model_card_shows_the_weights_digest(release):
    folder, _ = release
    files = json.loads((folder / "config.json").read_text())["files"]
    assert files["model.safetensors"] in (folder / "README.md").read_text()
    assert files == {f.name: sha256_file(f) for f in folder.iterdir() if f.name != "config.json"}


def test_the_card_gives_no_number_for_a_split_too_small_to_measure(tmp_path):
    """Walker: the run said "val: 6 image(s), too few to measure" while the card gave val a
    Spearman of 0.9710 and an interval; the card now says what the summary says."""
    head = OrdinalHead(HeadConfig(embed_dim=32, hidden=(16,)))
    metrics = {
        "val": {"n": 6, "spearman": 0.971, "qwk": 0.9},
        "test": {"n": 40, "spearman": 0.612},
        "oof": {"n": 15, "spearman": 0.0, "ratings_given": 1},  # walker: 15 images, all rated 4
    }
    intervals = {"val": {"spearman": (0.0, 1.0)}, "test": {"spearman": (0.4, 0.78)}}
    folder = save_pretrained(head, tmp_path / "r", metrics=metrics, extra={"intervals": intervals})
    card = (folder / "README.md").read_text()
    val = next(line for line in card.splitlines() if line.startswith("| val |"))
    assert f"too few to measure (it takes {MIN_EVAL_ROWS})" in val
    assert "0.971" not in val and "1.000" not in val
    one = next(line for line in card.splitlines() if line.startswith("| oof |"))
    assert "all given one rating: no order to measure" in one and "0.0000" not in one
    test = next(line for line in card.splitlines() if line.startswith("| test |"))
    assert "0.612" in test and "0.400 – 0.780" in test
