"""What the rating page's pair and rank modes ask the person to compare, from the rating queue.

The queue is already the head's most uncertain images spread over the library, rated (re-rates)
and unrated alike. A comparison teaches most where the head cannot tell the order: two images
whose predicted ratings are close relative to their spread, P(first better) near one half. Pairs
are matched greedily, least sure first, each image in one pair at most; groups are runs of close
predicted ratings. Every proposal says why, in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

GROUP_SIZE = 6
_NEIGHBOURS = 3  # candidate partners per image, among the nearest predicted ratings


@dataclass(frozen=True)
class Proposal:
    members: tuple[int, ...]  # queue positions: a pair as shown (left, right), or a group
    why: str


def first_better(mu_a: float, sd_a: float, mu_b: float, sd_b: float) -> float:
    """P(a is better than b) when each predicted rating is normal with its own spread."""
    spread = math.sqrt(sd_a**2 + sd_b**2) or 1e-6
    return 0.5 * (1 + math.erf((mu_a - mu_b) / (spread * math.sqrt(2))))


def _predicted(queue: list[dict[str, Any]]) -> list[tuple[float, float, int]]:
    """(expected rating, spread, position), sorted; a missing spread takes the queue's median."""
    sds = sorted(q["rating_sd"] for q in queue if q.get("rating_sd") is not None) or [1.0]
    median = sds[len(sds) // 2]
    rows = [
        (float(q["expected_rating"]), float(q["rating_sd"] if q.get("rating_sd") is not None else median), i)
        for i, q in enumerate(queue)
        if q.get("expected_rating") is not None
    ]
    return sorted(rows)


def propose_pairs(queue: list[dict[str, Any]]) -> list[Proposal]:
    rows = _predicted(queue)
    candidates = []
    for k, (mu_a, sd_a, i) in enumerate(rows):
        for mu_b, sd_b, j in rows[k + 1 : k + 1 + _NEIGHBOURS]:
            p = first_better(mu_a, sd_a, mu_b, sd_b)
            candidates.append((abs(p - 0.5), i, j, mu_a, sd_a, mu_b, sd_b))
    used: set[int] = set()
    out = []
    for _, i, j, mu_a, sd_a, mu_b, sd_b in sorted(candidates):
        if i in used or j in used:
            continue
        used |= {i, j}
        left, right = (i, j) if (i + j) % 2 else (j, i)  # neither side is always the higher one
        mu_l, sd_l, mu_r, sd_r = (mu_a, sd_a, mu_b, sd_b) if left == i else (mu_b, sd_b, mu_a, sd_a)
        p = first_better(mu_l, sd_l, mu_r, sd_r)
        out.append(
            Proposal(
                (left, right),
                f"silva cannot tell which is better: it expects {mu_l:.1f} ± {sd_l:.1f} on the left "
                f"and {mu_r:.1f} ± {sd_r:.1f} on the right ({p:.0%} that the left one is)",
            )
        )
    return out


def propose_groups(queue: list[dict[str, Any]], size: int = GROUP_SIZE) -> list[Proposal]:
    rows = _predicted(queue)
    out = []
    for s in range(0, len(rows) - 1, size):
        group = rows[s : s + size]
        if len(group) < 2:
            break
        lo, hi = group[0][0], group[-1][0]
        members = tuple(i for *_, i in sorted(group, key=lambda r: r[2]))  # not shown in predicted order
        out.append(
            Proposal(
                members,
                f"silva expects all of these between {lo:.1f} and {hi:.1f}: their order is yours to say",
            )
        )
    return out
