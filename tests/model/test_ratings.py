"""What a rating is, said once: every reader and writer asks `rating_problem`."""

from __future__ import annotations

import numpy as np
import pytest

from silva_model.ratings import rating_problem


@pytest.mark.parametrize("value", [1, 5, "3", "4.0", 2.0, np.int8(4)])
def test_a_rating_from_a_file_may_be_text_or_a_whole_float(value):
    assert rating_problem(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "rating is empty"),
        (0, "rating 0 is outside 1..5"),
        ("6", "rating '6' is outside 1..5"),
        (3.5, "rating 3.5 is not a whole number"),
        (float("nan"), "rating nan is not a whole number"),
        ("great", "rating 'great' is not a number"),
        (True, "rating True is not a number"),
    ],
)
def test_what_is_no_rating_says_why(value, problem):
    assert rating_problem(value) == problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (3.5, "rating 3.5 is not an integer"),
        (4.0, "rating 4.0 is not an integer"),
        ("4", "rating '4' is not an integer"),
        (True, "rating True is not an integer"),
        (6, "rating 6 is outside 1..5"),
    ],
)
def test_a_program_must_hand_an_int(value, problem):
    assert rating_problem(value, exact=True) == problem
    assert rating_problem(np.int64(3), exact=True) is None
