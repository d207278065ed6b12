"""What a rating is: a whole number from 1 to 5, the scale the head's four bars cut. Every place
that takes a rating (a ratings file, a folder name, pictoria, silva's ratings log, the rating
page) asks `rating_problem`, so the scale is said once."""

from __future__ import annotations

import numbers

LOWEST, HIGHEST = 1, 5


def rating_problem(value: object, exact: bool = False) -> str | None:
    """Why `value` is not a rating, or None when it is one. Files hold text and floats, so "4"
    and 4.0 pass; with `exact` (what a program hands the ratings log or the page posts) only an
    integer does, so 3.5, "4" and True are refused rather than read as something else."""
    if value is None:
        return "rating is empty"
    if exact and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        return f"rating {value!r} is not an integer"
    if isinstance(value, bool):
        return f"rating {value!r} is not a number"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"rating {value!r} is not a number"
    if not number.is_integer():
        return f"rating {value!r} is not a whole number"
    if not LOWEST <= number <= HIGHEST:
        return f"rating {value!r} is outside {LOWEST}..{HIGHEST}"
    return None
