"""How well silva's copy rule finds copies, and what it groups that it should not.

    uv run python bench/near_duplicates.py [--originals 300] [--backbone PATH]

On illustration-like images (tests/support/copy_kinds.py) and every kind of copy there, prints the share of
copies each signal misses (cosine alone, pixels alone, the rule), the distinct pairs it groups
(random pairs and "series" pairs that share background and half their shapes), the largest group
among distinct images, and where groups land (train share by group size) under the old anchor
(lowest member hash) and the new one (a hash of the group). Without --backbone it embeds with the
tiny random test backbone (what the tests measure with); pass a SigLIP folder to measure a real one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from copy_kinds import COPY_KINDS, illustration, similar_pair  # noqa: E402

from silva_model.backbone import SiglipEmbedder  # noqa: E402
from silva_model.copies import (  # noqa: E402
    DEFAULT_COPY_RULE,
    CopyRule,
    near_duplicate_groups,
    pixel_signature,
    pixel_similarity,
)
from silva_model.splits import _splitmix64, assign_split_codes, content_hash, group_split_codes  # noqa: E402

COSINE_ONLY = CopyRule(pixels=2.0, joint_pixels=2.0)
PIXELS_ONLY = CopyRule(cosine=2.0, joint_cosine=2.0)


def _pairwise(emb: np.ndarray, sig: np.ndarray, other_emb: np.ndarray, other_sig: np.ndarray):
    return (emb * other_emb).sum(1), np.diag(pixel_similarity(sig, other_sig))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--originals", type=int, default=300)
    p.add_argument("--backbone", help="a SigLIP save_pretrained folder (default: the tiny test one)")
    a = p.parse_args()
    if a.backbone is None:
        from helpers import save_tiny_siglip

        a.backbone = str(save_tiny_siglip(Path(tempfile.mkdtemp()) / "tiny"))
    embedder = SiglipEmbedder(a.backbone, device="cpu")
    rng = np.random.default_rng(0)
    originals = [illustration(rng) for _ in range(a.originals)]
    emb = embedder.embed_images(originals)
    sig = np.stack([pixel_signature(im) for im in originals])
    rules = {
        "cosine > 0.985 alone": COSINE_ONLY,
        "pixels > 0.90 alone": PIXELS_ONLY,
        "the rule": DEFAULT_COPY_RULE,
    }

    print(f"backbone: {a.backbone}\n{a.originals} originals, one copy of each per kind\n")
    print("copies missed (share of pairs not judged copies)")
    print(f"| kind | {' | '.join(rules)} |\n|---|{'---|' * len(rules)}")
    missed = {name: [] for name in rules}
    library_emb, library_sig = [emb], [sig]  # the originals and one copy each, of every kind in turn
    for k, (kind, make) in enumerate(COPY_KINDS.items()):
        copies = [make(im) for im in originals]
        copy_emb, copy_sig = embedder.embed_images(copies), np.stack([pixel_signature(c) for c in copies])
        library_emb.append(copy_emb[k :: len(COPY_KINDS)])
        library_sig.append(copy_sig[k :: len(COPY_KINDS)])
        cos, pix = _pairwise(emb, sig, copy_emb, copy_sig)
        row = []
        for name, rule in rules.items():
            miss = ~rule.copies(cos, pix)
            missed[name].append(miss)
            row.append(f"{miss.mean():.3f}")
        print(f"| {kind} | {' | '.join(row)} |")
    print(f"| all | {' | '.join(f'{np.concatenate(m).mean():.3f}' for m in missed.values())} |\n")

    iu = np.triu_indices(len(originals), 1)
    cos_all, pix_all = (emb @ emb.T)[iu], pixel_similarity(sig, sig)[iu]
    pairs = [similar_pair(np.random.default_rng(10_000 + i)) for i in range(a.originals)]
    pe = [embedder.embed_images(list(pair)) for pair in pairs]
    cos_sim = np.array([(x[0] * x[1]).sum() for x in pe])
    pix_sim = np.array(
        [pixel_similarity(pixel_signature(u)[None], pixel_signature(v)[None])[0, 0] for u, v in pairs]
    )
    print("distinct images grouped as copies")
    print("| signal | random pairs | series pairs | largest group of distinct images |\n|---|---|---|---|")
    for name, rule in rules.items():
        groups = near_duplicate_groups(emb, sig, rule)
        print(
            f"| {name} | {rule.copies(cos_all, pix_all).sum()} of {cos_all.size} | "
            f"{rule.copies(cos_sim, pix_sim).sum()} of {cos_sim.size} | {np.bincount(groups).max()} |"
        )

    print("\nwhere groups of k copies land (share in train; 0.80 is proportional), 20,000 groups each")
    print("| k | lowest member hash (before) | hash of the group (now) |\n|---|---|---|")
    h = _splitmix64(np.arange(1, 100_001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    for k in (1, 2, 3, 5):
        groups = np.repeat(np.arange(20_000), k)
        hashes = h[: 20_000 * k]
        anchor = np.full(20_000, np.iinfo(np.uint64).max, np.uint64)
        np.minimum.at(anchor, groups, hashes)
        before = (assign_split_codes(anchor)[groups] == 0).mean()
        now = (group_split_codes(hashes, groups) == 0).mean()
        print(f"| {k} | {before:.3f} | {now:.3f} |")

    x, s = np.concatenate(library_emb), np.concatenate(library_sig)
    hashes = content_hash(x)
    old_groups = near_duplicate_groups(x, None, COSINE_ONLY)
    anchor = np.full(int(old_groups.max()) + 1, np.iinfo(np.uint64).max, np.uint64)
    np.minimum.at(anchor, old_groups, hashes)
    before = assign_split_codes(anchor)[old_groups]
    now = group_split_codes(hashes, near_duplicate_groups(x, s))
    print(
        f"\nwhen this lands, on {len(x)} images ({a.originals} originals and one copy of each, of every "
        f"kind in turn): {int((before != now).sum())} images change split"
    )


if __name__ == "__main__":
    main()
