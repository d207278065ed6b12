"""The one markdown-table writer: model cards, evaluation reports and Dagster metadata use it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
