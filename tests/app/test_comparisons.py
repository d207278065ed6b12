"""What the pair and rank modes propose to compare."""

from __future__ import annotations

from silva_app.comparisons import first_better, propose_groups, propose_pairs


def _queue(expected, sd):
    return [{"expected_rating": e, "rating_sd": s} for e, s in zip(expected, sd, strict=True)]


def test_pairs_are_those_the_head_is_least_sure_how_to_order_each_image_once():
    q = _queue([1.0, 3.0, 3.1, 4.9, 1.2, 4.0], [0.3, 0.8, 0.8, 0.3, 0.3, 0.2])
    pairs = propose_pairs(q)
    assert {frozenset(p.members) for p in pairs} == {frozenset({1, 2}), frozenset({0, 4}), frozenset({5, 3})}
    assert frozenset(pairs[0].members) == {1, 2}  # closest relative to their spread comes first
    assert "silva cannot tell which is better" in pairs[0].why and "%" in pairs[0].why
    assert abs(first_better(3.0, 0.8, 3.1, 0.8) - 0.5) < abs(first_better(4.0, 0.2, 4.9, 0.3) - 0.5)


def test_a_queue_without_spreads_still_pairs_and_groups_by_close_predictions():
    q = [{"expected_rating": float(i % 7), "rating_sd": None} for i in range(14)]
    assert len(propose_pairs(q)) == 7
    groups = propose_groups(q, size=6)
    assert [len(g.members) for g in groups] == [6, 6, 2]
    first = {q[i]["expected_rating"] for i in groups[0].members}
    assert max(first) - min(first) <= 3  # one run of close predictions, not a spread
    assert list(groups[0].members) == sorted(groups[0].members)  # shown in queue order, not by score
