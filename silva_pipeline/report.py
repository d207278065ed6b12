"""Markdown tables and plots for materialization metadata and MLflow artifacts."""

from __future__ import annotations

import base64
import io

import numpy as np

from silva_model.head import expected_rating
from silva_model.tables import md_table

__all__ = ["md_table", "plot_calibration", "plot_histogram", "plot_score_histograms", "png_markdown"]


def png_markdown(png: bytes, alt: str, mime: str = "image/png") -> str:
    """Inline an image (Dagster metadata has no plot type; the docs embed base64 images)."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(png).decode()})"


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_score_histograms(y: np.ndarray, score: np.ndarray, title: str) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    bins = np.linspace(0, 1, 26)
    for c in range(1, 6):
        if (y == c).any():
            ax.hist(score[y == c], bins=bins, alpha=0.55, label=f"rated {c} (n={(y == c).sum()})")
    ax.set(xlabel="silva score", ylabel="images", title=title)
    ax.legend(fontsize=8)
    return _png(plt, fig)


def plot_histogram(values: np.ndarray, xlabel: str) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    ax.hist(values, bins=40, range=(1, 5), color="#4a7")
    ax.set(xlabel=xlabel, ylabel="images", title=f"{len(values)} library images")
    return _png(plt, fig)


def plot_calibration(y: np.ndarray, score: np.ndarray, title: str) -> bytes:
    """Mean expected rating (1 + 4 * score) against the given rating; the diagonal is perfect."""
    plt = _figure()
    expected = expected_rating(score)
    classes = [c for c in range(1, 6) if (y == c).any()]
    means = [expected[y == c].mean() for c in classes]
    sds = [expected[y == c].std() for c in classes]
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([1, 5], [1, 5], "--", color="grey", label="perfect calibration")
    ax.errorbar(classes, means, yerr=sds, fmt="o-", capsize=3, label="mean ± sd")
    ax.set(xlabel="given rating", ylabel="expected rating", xlim=(0.5, 5.5), ylim=(0.5, 5.5), title=title)
    ax.legend(fontsize=8)
    return _png(plt, fig)
