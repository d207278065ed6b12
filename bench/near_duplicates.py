"""How well silva finds copies and groups them, and what it groups that it should not.

    uv run python -m bench near_duplicates [--originals 300] [--backbone PATH] [--rows 20000]

On drawn images (`silva_model.drawings`: flat illustrations, varied scenes, 1/f "photos", series
and variations of one piece) and every kind of copy in `silva_model.copy_kinds`, with the tests'
tiny random SigLIP, the trial backbone as it was (a random tower, 8-pixel patches) and as
`silva trial-backbone` saves it now (4-pixel patches, whitened pooling), and --backbone if given,
prints:
- the share of copies each signal misses (cosine alone, pixels alone, the rule);
- the share of copies that land outside their original's group, in a library holding every kind
  of copy of every original, grouped by chains of copies (connected components) and around
  centres (silva's `near_duplicate_groups`);
- the distinct pairs judged copies and the largest group of distinct images, by family;
- a library of variations of one piece: how many groups each grouping makes of it;
- sets where a share of pairs is judged copies at random: the largest group each grouping makes;
- where groups of k images land (share in train) by the lowest member hash and a hash of the group;
- the cost of grouping --rows rows, chains and centres, measured in this run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from silva_model.backbone import SiglipEmbedder
from silva_model.copies import (
    DEFAULT_COPY_RULE,
    CopyPairs,
    CopyRule,
    copy_pairs,
    groups_around_centres,
    near_duplicate_groups,
    pixel_signature,
    pixel_similarity,
)
from silva_model.copy_kinds import COPY_KINDS, COSINE_ONLY
from silva_model.drawings import illustration, photo, scene, similar_pair, variations
from silva_model.random_siglip import (
    TEST_VISION_CONFIG,
    TRIAL_VISION_CONFIG,
    save_random_siglip,
    save_trial_siglip,
)
from silva_model.splits import _splitmix64, assign_split_codes, group_split_codes

PIXELS_ONLY = CopyRule(cosine=2.0, joint_cosine=2.0)
Embedded = tuple[np.ndarray, np.ndarray]  # (unit embeddings, pixel signatures)
Grouping = Callable[[np.ndarray, np.ndarray], np.ndarray]


def chains(pairs: CopyPairs, n: int) -> np.ndarray:
    """Connected components of the pairs judged copies: what silva grouped by before centres."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(pairs.first.size, np.int8), (pairs.first, pairs.second)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def chain_groups(x: np.ndarray, sig: np.ndarray) -> np.ndarray:
    return chains(copy_pairs(x, sig), len(x))


GROUPINGS: dict[str, Grouping] = {"chains": chain_groups, "centres": near_duplicate_groups}


def _embedders(folder: Path, extra: str | None) -> dict[str, SiglipEmbedder]:
    paths = {
        "tiny": save_random_siglip(folder / "tiny", TEST_VISION_CONFIG),
        "trial before": save_random_siglip(folder / "trial-before", {**TRIAL_VISION_CONFIG, "patch_size": 8}),
        "trial": save_trial_siglip(folder / "trial"),
    }
    if extra:
        paths[Path(extra).name] = Path(extra)
    return {name: SiglipEmbedder(p, device="cpu") for name, p in paths.items()}


def _embed(embedder: SiglipEmbedder, images: list[Image.Image]) -> Embedded:
    return embedder.embed_images(images), np.stack([pixel_signature(im) for im in images])


def _pairs(a: Embedded, b: Embedded) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, pixel correlation) of a[i] with b[i]."""
    return (a[0] * b[0]).sum(1), np.diag(pixel_similarity(a[1], b[1]))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    return "\n".join(lines + [f"| {' | '.join(r)} |" for r in rows])


def copies_missed(originals: dict[str, Embedded], copies: dict[str, dict[str, Embedded]]) -> str:
    """Per kind: the share of (original, copy) pairs each signal does not judge copies."""
    names = list(originals)
    header = ["kind", "pixels > 0.90 alone"] + [f"cosine > 0.985: {n}" for n in names]
    header += [f"the rule: {n}" for n in names]
    rows, missed = [], {h: [] for h in header[1:]}
    for kind in COPY_KINDS:
        pairs = {n: _pairs(originals[n], copies[n][kind]) for n in names}
        cells = {header[1]: ~PIXELS_ONLY.copies(*pairs[names[0]])}
        cells |= {f"cosine > 0.985: {n}": ~COSINE_ONLY.copies(*pairs[n]) for n in names}
        cells |= {f"the rule: {n}": ~DEFAULT_COPY_RULE.copies(*pairs[n]) for n in names}
        rows.append([kind] + [f"{cells[h].mean():.3f}" for h in header[1:]])
        for h in header[1:]:
            missed[h].append(cells[h])
    rows.append(["all"] + [f"{np.concatenate(missed[h]).mean():.3f}" for h in header[1:]])
    return _table(header, rows)


def copies_apart(originals: dict[str, Embedded], copies: dict[str, dict[str, Embedded]]) -> str:
    """Per kind: the share of copies outside their original's group, in a library of the originals
    and one copy of each of that kind; then in one library holding every kind of copy of each."""
    header, columns = ["kind"], []
    for name, (x, sig) in originals.items():
        libraries = {k: [(x, sig), copies[name][k]] for k in COPY_KINDS}
        libraries["every kind at once"] = [(x, sig)] + [copies[name][k] for k in COPY_KINDS]
        for how, grouping in GROUPINGS.items():
            header.append(f"{name}: {how}")
            column = []
            for parts in libraries.values():
                groups = grouping(*(np.concatenate(p) for p in zip(*parts, strict=True))).reshape(
                    len(parts), -1
                )
                column.append((groups[1:] != groups[0]).mean())
            columns.append(column)
    kinds = list(COPY_KINDS) + ["every kind at once"]
    return _table(header, [[kind] + [f"{c[i]:.3f}" for c in columns] for i, kind in enumerate(kinds)])


def distinct_judged(
    families: dict[str, dict[str, Embedded]], series: dict[str, tuple[Embedded, Embedded]]
) -> str:
    """Per backbone and family of distinct images: pairs above the cosine threshold and judged
    copies by the rule, and the largest group each grouping makes of them."""
    header = ["backbone", "images", "pairs with cosine > 0.985", "pairs judged copies"]
    header += [f"largest group: {how}" for how in GROUPINGS]
    rows = []
    for name, fams in families.items():
        for fam, (x, sig) in fams.items():
            iu = np.triu_indices(len(x), 1)
            cos, pix = (x @ x.T)[iu], pixel_similarity(sig, sig)[iu]
            largest = [str(np.bincount(g(x, sig)).max()) for g in GROUPINGS.values()]
            pairs = [
                f"{(cos > DEFAULT_COPY_RULE.cosine).mean():.4f}",
                f"{DEFAULT_COPY_RULE.copies(cos, pix).mean():.4f}",
            ]
            rows.append([name, f"{len(x)} {fam}"] + pairs + largest)
        cos, pix = _pairs(*series[name])
        rows.append(
            [name, f"{len(cos)} series pairs", f"{(cos > DEFAULT_COPY_RULE.cosine).mean():.4f}"]
            + [f"{DEFAULT_COPY_RULE.copies(cos, pix).mean():.4f}", "-", "-"]
        )
    return _table(header, rows)


def variation_groups(pieces: dict[str, list[Embedded]]) -> str:
    """Per backbone: the pieces' consecutive variations judged copies, and the groups each grouping
    makes of each piece (mean count, largest)."""
    header = ["backbone", "next variation judged a copy"]
    header += [f"{how}: groups per piece, largest" for how in GROUPINGS]
    rows = []
    for name, embedded in pieces.items():
        nxt = [DEFAULT_COPY_RULE.copies(*_pairs((x[:-1], s[:-1]), (x[1:], s[1:]))) for x, s in embedded]
        cells = []
        for grouping in GROUPINGS.values():
            sizes = [np.bincount(grouping(x, s)) for x, s in embedded]
            cells.append(f"{np.mean([len(z) for z in sizes]):.1f}, {max(z.max() for z in sizes)}")
        rows.append([name, f"{np.concatenate(nxt).mean():.3f}"] + cells)
    return _table(header, rows)


def false_pairs() -> str:
    """Sets of distinct images where a backbone judges a share p of all pairs copies at random,
    as the trial backbone did for 1.8 % of them: the largest group each grouping makes (mean of
    20 draws; one draw of 100,000)."""
    rows = []
    for n, p, draws in ((80, 0.018, 20), (108, 0.018, 20), (300, 0.018, 20), (100_000, 0.0001, 1)):
        largest = {how: [] for how in GROUPINGS}
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            m = rng.binomial(n * (n - 1) // 2, p)
            a, b = rng.integers(0, n, (2, m))
            a, b = np.minimum(a, b)[a != b], np.maximum(a, b)[a != b]
            pairs = CopyPairs(a, b, rng.uniform(1.8, 2.0, a.size).astype(np.float32))
            keys = rng.permutation(n).astype(np.uint64)
            largest["chains"].append(np.bincount(chains(pairs, n)).max())
            largest["centres"].append(np.bincount(groups_around_centres(pairs, keys)).max())
        rows.append([f"{n:,}", f"{p:.2%}"] + [f"{np.mean(v):.1f}" for v in largest.values()])
    return _table(["images", "pairs judged copies", "largest group: chains", "largest group: centres"], rows)


def group_landing() -> str:
    """Share in train of groups of k images, 20,000 groups each: 0.80 is proportional."""
    rows = []
    h = _splitmix64(np.arange(1, 100_001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    for k in (1, 2, 3, 5):
        groups = np.repeat(np.arange(20_000), k)
        hashes = h[: 20_000 * k]
        anchor = np.full(20_000, np.iinfo(np.uint64).max, np.uint64)
        np.minimum.at(anchor, groups, hashes)
        lowest = (assign_split_codes(anchor)[groups] == 0).mean()
        rows.append([str(k), f"{lowest:.3f}", f"{(group_split_codes(hashes, groups) == 0).mean():.3f}"])
    return _table(["k", "lowest member hash", "hash of the group (silva)"], rows)


def grouping_cost(n: int) -> str:
    """Seconds to group n rows (1152-d, signatures, a tenth of them near copies of another row),
    the best of two runs each."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 1152)).astype(np.float32)
    sig = rng.standard_normal((n, 128)).astype(np.float32)
    copied = rng.choice(n, n // 10, replace=False)
    x[copied] = x[rng.integers(0, n, len(copied))] + 0.003 * rng.standard_normal((len(copied), 1152))
    sig /= np.linalg.norm(sig.reshape(n, 2, 64), axis=2).repeat(64, 1)
    seconds = {how: np.inf for how in GROUPINGS}
    for _ in range(2):  # the best of two runs each, interleaved: the machine's load shifts
        for how, grouping in GROUPINGS.items():
            t = time.perf_counter()
            grouping(x, sig)
            seconds[how] = min(seconds[how], time.perf_counter() - t)
    rows = [[how, f"{s:.1f}"] for how, s in seconds.items()]
    rows.append(["centres / chains", f"{seconds['centres'] / seconds['chains']:.2f}"])
    return _table(["grouping", "seconds"], rows)


def _drawn(n: int) -> dict[str, list[Image.Image]]:
    """Every image the bench embeds, by name: originals, their copies, families, series, pieces."""
    rng = np.random.default_rng(0)
    originals = [illustration(rng) for _ in range(n // 2)] + [scene(rng) for _ in range(n - n // 2)]
    images = {"originals": originals} | {
        kind: [make(im) for im in originals] for kind, make in COPY_KINDS.items()
    }
    images |= {
        "illustrations": [illustration(rng) for _ in range(n)],
        "scenes": [scene(rng) for _ in range(n)],
        "photos": [photo(rng) for _ in range(n)],
    }
    pairs = [similar_pair(np.random.default_rng(10_000 + i)) for i in range(n)]
    images |= {"series a": [u for u, _ in pairs], "series b": [v for _, v in pairs]}
    return images | {f"piece {i}": variations(np.random.default_rng(20_000 + i), 40) for i in range(5)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench near_duplicates", description=__doc__.split("\n\n")[0])
    p.add_argument("--originals", type=int, default=300, help="originals (half illustrations, half scenes)")
    p.add_argument("--backbone", help="a SigLIP save_pretrained folder to measure too")
    p.add_argument("--rows", type=int, default=20_000, help="rows to time the grouping on")
    a = p.parse_args(argv)
    images = _drawn(a.originals)
    with tempfile.TemporaryDirectory() as folder:
        embedded = {
            n: {k: _embed(e, ims) for k, ims in images.items()}
            for n, e in _embedders(Path(folder), a.backbone).items()
        }
    orig = {n: e["originals"] for n, e in embedded.items()}
    copies = {n: {k: e[k] for k in COPY_KINDS} for n, e in embedded.items()}
    fams = {n: {f: e[f] for f in ("illustrations", "scenes", "photos")} for n, e in embedded.items()}
    series = {n: (e["series a"], e["series b"]) for n, e in embedded.items()}
    pieces = {n: [e[f"piece {i}"] for i in range(5)] for n, e in embedded.items()}
    half = a.originals // 2
    print(f"{a.originals} originals ({half} illustrations, {a.originals - half} scenes) and their copies\n")
    sections = {
        "copies missed (share of pairs not judged copies)": copies_missed(orig, copies),
        "copies outside their original's group": copies_apart(orig, copies),
        "distinct images judged copies": distinct_judged(fams, series),
        "5 pieces of 40 variations, each redrawing one element of the one before": variation_groups(pieces),
        "distinct images, a share of their pairs judged copies at random": false_pairs(),
        "where 20,000 groups of k images land (share in train; 0.80 is proportional)": group_landing(),
        f"grouping {a.rows:,} rows (1152-d, signatures, a tenth near copies; best of 2 runs)": grouping_cost(
            a.rows
        ),
    }
    for title, table in sections.items():
        print(f"{title}\n{table}\n")
    return 0
