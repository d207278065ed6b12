"""The `silva` command line.

    silva score IMG [IMG|DIR ...] (--repo-id ID | --head DIR) [--backbone ID|PATH] [--json]
                [--explain [--rated MANIFEST]]
    silva score-manifest MANIFEST (--repo-id ID | --head DIR) [--split S] [--out scores.parquet]
    silva train --manifest MANIFEST --out DIR [--config train.yaml] [--pairs pairs.csv]
    silva rate [--queue QUEUE] [--port 8765] [--demo]     (added by silva_app: entry point silva.commands)
    silva gallery [--scores SCORES] [--port 8766] [--demo]                           (silva_app too)
    silva export --to DIR [--top N] [--min-rating R] [--folder PREFIX] [--scores SCORES]   (silva_app)
    silva trial-backbone DIR

Exit codes: 0 every image scored; 1 some images could not be read (each is reported on
stderr and skipped); 2 nothing could be scored or the command was wrong.

Commands import torch, pyarrow and the model only when they run, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from silva_model import __version__
from silva_model.train_args import add_train_args

if TYPE_CHECKING:
    from silva_model.explain import Explanation, RatedSet
    from silva_model.scorer import Scorer

# Subcommands other packages add (entry points: a function taking the subparsers and the formatter).
COMMANDS_GROUP = "silva.commands"
SPLITS = ("train", "val", "test")  # silva_model.splits.SPLITS, without importing numpy for --help


def _add_head_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--repo-id", help="Hugging Face Hub repo id of a released head")
    src.add_argument("--head", help="local folder of a released head or a training checkpoint")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit; default: main)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="load the head even if its files differ from the sha256 digests recorded at release",
    )


def _scorer(a: argparse.Namespace) -> Scorer:
    from silva_model.scorer import Scorer

    return Scorer.from_pretrained(
        a.repo_id or a.head, revision=a.revision, device=a.device, verify=not a.no_verify
    )


def _rated_set(a: argparse.Namespace, scorer: Scorer) -> RatedSet:
    """The rated images `--explain` points to: `--rated`, else the manifest the release records
    it was trained on (`data.manifest` in its config.json)."""
    from silva_model.explain import read_rated

    recorded = (scorer.meta.get("data") or {}).get("manifest")
    if a.rated is None and not recorded:
        raise ValueError(
            "--explain needs the rated images the head learned from: this release records no "
            "data.manifest in its config.json, so pass --rated MANIFEST"
        )
    if a.rated is None and not Path(recorded).is_file():
        raise FileNotFoundError(
            f"--explain: the manifest this release was trained on ({recorded}, data.manifest in its "
            "config.json) is not on this machine; pass --rated MANIFEST"
        )
    return read_rated(a.rated or recorded, scorer.config.embed_dim)


def _explained(e: Explanation, row: int, rated: RatedSet) -> dict[str, Any]:
    """One image's explanation as `--json` writes it."""
    near = [
        {
            "path": rated.path[j],
            "image_sha256": rated.image_sha256[j],
            "rating": int(r),
            "similarity": round(float(s), 4),
        }
        for j, r, s in zip(e.neighbours[row], e.ratings[row], e.similarity[row], strict=True)
    ]
    share, shift = (None, None) if e.judge_share is None else (e.judge_share[row], e.judge_shift[row])
    return {
        "neighbours": near,
        "judge_share": None if share is None else round(float(share), 4),
        "judge_shift": None if shift is None else round(float(shift), 4),
    }


def _explain_lines(why: dict[str, Any]) -> list[str]:
    """One image's explanation as the text output shows it, under its score line."""
    lines = [
        f"  rated {n['rating']}, similarity {n['similarity']:.3f}: {n['path'] or n['image_sha256']}"
        for n in why["neighbours"]
    ]
    if why["judge_share"] is not None:
        lines.append(
            f"  judge: {100 * why['judge_share']:.0f} % of where it falls, {why['judge_shift']:+.2f} stars"
        )
    return lines


def _cmd_score(a: argparse.Namespace) -> int:
    from silva_model.images import expand_image_paths

    paths = expand_image_paths(a.images)
    if not paths:
        print("silva: no images found in the given paths", file=sys.stderr)
        return 2
    scorer = _scorer(a)
    rated = _rated_set(a, scorer) if a.explain or a.rated else None  # before embedding: fail fast
    embedder = scorer.embedder(a.backbone, batch_size=a.batch_size, num_workers=a.workers)
    progress = not a.quiet and sys.stderr.isatty()
    batch, scores = scorer.score_paths(paths, embedder, a.allow_backbone_mismatch, progress=progress)
    if rated is not None:
        from silva_model.explain import explain

        e = explain(scorer.head, batch.embeddings, rated.embeddings, rated.ratings, a.neighbours)
    for f in batch.failures:
        print(f"silva: skipped {f}", file=sys.stderr)
    for row, (i, s) in enumerate(zip(batch.indices, scores, strict=True)):
        rating = float(scorer.expected_rating(s))
        why = _explained(e, row, rated) if rated is not None else None
        if a.json:
            out = {"path": str(paths[i]), "score": round(float(s), 6), "expected_rating": round(rating, 4)}
            print(json.dumps(out | (why or {})))
        else:
            print(f"{s:.4f}\t{rating:.2f}\t{paths[i]}", *_explain_lines(why) if why else [], sep="\n")
    if not batch.indices:
        return 2
    return 1 if batch.failures else 0


def _cmd_score_manifest(a: argparse.Namespace) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from silva_model.atomic import atomic_path
    from silva_model.manifest import ManifestError, load_manifest
    from silva_model.metrics import compute_metrics

    arrays = load_manifest(a.manifest, dim=None, required_splits=())
    mask = arrays.mask(a.split) if a.split else np.ones(len(arrays), bool)
    if not mask.any():
        raise ManifestError(f"split {a.split!r} of {a.manifest} is empty")
    scorer = _scorer(a)
    scores, pred = scorer.predict(arrays.embeddings[mask])
    y = arrays.scores[mask]
    if a.out:
        cols = {
            "row": pa.array(np.flatnonzero(mask)),
            "split": pa.array(np.asarray(SPLITS)[arrays.split_codes[mask]]),
            "personal_score": pa.array(y),
            "score": pa.array(scores),
            "expected_rating": pa.array(scorer.expected_rating(scores)),
        }
        if arrays.post_id is not None:
            cols["post_id"] = pa.array(arrays.post_id[mask])
        with atomic_path(a.out) as tmp:
            pq.write_table(pa.table(cols), tmp)
    m = compute_metrics(y, scores, pred)
    summary = {
        "n": int(mask.sum()),
        "mean_score": float(scores.mean()),
        "spearman": m["spearman"],
        "qwk": m["qwk"],
        "mae": m["mae"],
        "out": a.out,
    }
    print(
        json.dumps(summary)
        if a.json
        else "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )
    return 0


def _cmd_train(a: argparse.Namespace) -> int:
    from silva_model.train import train_from_args

    return train_from_args(a)


def _cmd_trial_backbone(a: argparse.Namespace) -> int:
    from silva_model.random_siglip import TRIAL_VISION_CONFIG, save_trial_siglip

    folder = save_trial_siglip(a.folder)
    width = TRIAL_VISION_CONFIG["hidden_size"]
    pasted = shlex.quote(str(folder))  # a path with a space or a quote still pastes into a shell
    print(
        f"{folder}: a random SigLIP ({width}-wide embeddings) for trying silva offline; its scores mean "
        f"nothing. Use it with SILVA_BACKBONE={pasted} or --backbone {pasted}"
    )
    return 0


class _ShowDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help ends with its default, unless it has none to show (unset, a flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""


def build_parser() -> argparse.ArgumentParser:
    fmt = _ShowDefaults
    p = argparse.ArgumentParser(
        prog="silva", description="Score illustrations by one person's learned taste.", formatter_class=fmt
    )
    p.add_argument("--version", action="version", version=f"silva {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "score", help="score image files (folders are searched recursively)", formatter_class=fmt
    )
    s.add_argument("images", nargs="+", help="image files or folders")
    _add_head_args(s)
    s.add_argument("--backbone", help="SigLIP2 model id or local folder (default: the head's own backbone)")
    s.add_argument(
        "--allow-backbone-mismatch",
        action="store_true",
        help="score even when the embedder is not the backbone the head was trained on",
    )
    s.add_argument("--quiet", action="store_true", help="no progress bar (it is off anyway when not a TTY)")
    s.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    s.add_argument("--workers", type=int, default=4, help="image decoding threads")
    s.add_argument(
        "--explain",
        action="store_true",
        help="why each score: the nearest rated images with your ratings, and a judge's share",
    )
    s.add_argument(
        "--rated",
        help="with --explain: the manifest of rated images (default: data.manifest in the release's config)",
    )
    s.add_argument("--neighbours", type=int, default=5, help="with --explain: rated images shown per image")
    s.set_defaults(func=_cmd_score)
    m = sub.add_parser(
        "score-manifest", help="score the precomputed embeddings of a manifest", formatter_class=fmt
    )
    m.add_argument("manifest", help="a manifest parquet (see the manifest contract)")
    _add_head_args(m)
    m.add_argument("--split", choices=list(SPLITS), help="only this split (default: all rows)")
    m.add_argument("--out", help="write per-row scores to this parquet file")
    m.set_defaults(func=_cmd_score_manifest)
    t = sub.add_parser(
        "train", help="train a head on a manifest (what the pipeline runs)", formatter_class=fmt
    )
    add_train_args(t)
    t.set_defaults(func=_cmd_train)
    for command in entry_points(group=COMMANDS_GROUP):  # `silva rate`, from silva_app
        command.load()(sub, fmt)
    b = sub.add_parser(
        "trial-backbone",
        help="save a small random SigLIP to try silva offline (no download; scores mean nothing)",
        formatter_class=fmt,
    )
    b.add_argument("folder", help="where to save it (a save_pretrained folder)")
    b.set_defaults(func=_cmd_trial_backbone)
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except (FileNotFoundError, NotADirectoryError, ValueError, OSError) as e:  # ManifestError and
        print(f"silva: {e}", file=sys.stderr)  # PairsError are ValueErrors
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
