"""The synthetic tastes the demo and the bench are made of."""

from __future__ import annotations

import numpy as np

from silva_model.synthetic import make_taste_dataset


def test_taste_is_exactly_linear_in_its_generator_terms():
    # the ceiling's ridge is a bound only if these terms span the taste: no residual at all,
    # while the latent and style alone (the terms a generic model must combine) leave one
    d = make_taste_dataset(2000, seed=5, n_clusters=6, rank=8, weights=(0.4, 0.3, 0.3))
    terms = d.generator_terms()
    assert terms.shape == (2000, 8 + 6 + 6 * 8 + 2)

    def residual(x: np.ndarray) -> float:
        x1 = np.hstack([x, np.ones((len(x), 1))])
        fit = x1 @ np.linalg.lstsq(x1, d.taste, rcond=None)[0]
        return float(np.std(d.taste - fit) / np.std(d.taste))

    assert residual(terms) < 1e-8
    assert residual(terms[:, : 8 + 6]) > 0.3
