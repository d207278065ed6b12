"""The training options of `silva train` and `python -m silva_model.train`, in one place and
without importing torch, so `silva --help` stays instant."""

from __future__ import annotations

import argparse


def add_train_args(p: argparse.ArgumentParser) -> None:
    """`silva train` and `python -m silva_model.train` take the same options."""
    p.add_argument("--manifest", required=True, help="manifest parquet (embedding, personal_score, split)")
    p.add_argument("--out", required=True, help="folder for best.safetensors + best.json")
    p.add_argument("--config", help="YAML file of TrainConfig options (default: the built-in defaults)")
    p.add_argument("--pairs", help="CSV/Parquet of judged pairs: a, b, winner (a | b | tie)")
    p.add_argument(
        "--prior",
        help="a published judge to start from: Hub id or folder (silva-scorer head or silva release)",
    )
    p.add_argument("--epochs", type=int, help="override the config's epochs")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the config's device")
    p.add_argument("--seed", type=int, help="override the config's seed")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress")
