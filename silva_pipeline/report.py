"""Markdown tables and plots for materialization metadata and MLflow artifacts."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]], limit: int = 50) -> str:
    rows = list(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows[:limit]:
        lines.append("| " + " | ".join(_cell(v) for v in r) + " |")
    if len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more | " + " | " * (len(headers) - 1))
    return "\n".join(lines)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def png_markdown(path: Path, alt: str) -> str:
    """Inline a PNG (Dagster metadata has no plot type; the docs embed base64 images)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_score_histograms(y: np.ndarray, score: np.ndarray, path: Path, title: str) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    bins = np.linspace(0, 1, 26)
    for c in range(1, 6):
        if (y == c).any():
            ax.hist(score[y == c], bins=bins, alpha=0.55, label=f"rated {c} (n={(y == c).sum()})")
    ax.set(xlabel="silva score", ylabel="images", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_calibration(y: np.ndarray, score: np.ndarray, path: Path, title: str) -> Path:
    """Mean expected rating (1 + 4 * score) against the given rating; the diagonal is perfect."""
    plt = _figure()
    expected = 1 + 4 * score
    classes = [c for c in range(1, 6) if (y == c).any()]
    means = [expected[y == c].mean() for c in classes]
    sds = [expected[y == c].std() for c in classes]
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([1, 5], [1, 5], "--", color="grey", label="perfect calibration")
    ax.errorbar(classes, means, yerr=sds, fmt="o-", capsize=3, label="mean ± sd")
    ax.set(xlabel="given rating", ylabel="expected rating", xlim=(0.5, 5.5), ylim=(0.5, 5.5), title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
