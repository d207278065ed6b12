"""Loading a released head: local folder, offline pre-populated Hub cache, corrupt files."""

import json

import numpy as np
import pytest

from silva_model import HeadConfig, OrdinalHead, Scorer
from silva_model.checkpoint import load_head, resolve_pretrained, save_pretrained


@pytest.fixture
def release(tmp_path):
    head = OrdinalHead(HeadConfig(embed_dim=32, hidden=(16,)))
    return save_pretrained(
        head,
        tmp_path / "release",
        metrics={"test": {"n": 10, "spearman": 0.5}},
        extra={"data": {"n_train": 8}},
    ), head


def _populate_hub_cache(cache, repo_id, src, commit="0123456789abcdef0123456789abcdef01234567"):
    """The huggingface_hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in src.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def test_load_from_offline_hub_cache(release, tmp_path, monkeypatch):
    folder, head = release
    cache = tmp_path / "hub"
    _populate_hub_cache(cache, "someone/silva-head", folder)
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
    with pytest.raises(FileNotFoundError, match="holds no silva head"):
        load_head(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="could not be loaded"):
        load_head(folder)
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
