"""Typed values that assets hand each other besides tables and heads (stored as JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field

from silva_model.metrics import unmeasured


@dataclass
class Release:
    """A released head: the local folder, its MLflow registry version and where it went on the Hub."""

    path: str
    registry_version: str
    hub: str
    test_spearman: float | None = None


@dataclass
class EmbedWork:
    """What embedding some images into the cache did: counted per worker, summed over shards."""

    embedded: int = 0
    seconds: float = 0.0  # worker time, summed
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
    quarantined: int = 0  # unreadable cache files moved aside (their images embedded again)

    def __post_init__(self) -> None:
        self.failures = [(str(p), str(e)) for p, e in self.failures]  # lists, after JSON

    def __add__(self, other: EmbedWork) -> EmbedWork:
        return EmbedWork(
            self.embedded + other.embedded,
            self.seconds + other.seconds,
            self.failures + other.failures,
            self.quarantined + other.quarantined,
        )


@dataclass
class EvaluationReport:
    """What the `evaluation` asset hands downstream: metrics per split and the markdown report."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    markdown: str = ""
    # split -> metric -> [low, high]: percentile bootstrap, 1,000 resamples of the split's rows
    intervals: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def heldout_spearman(self) -> float | None:
        """The number releases are compared on; None when the test split was empty or says
        nothing (`unmeasured`: too few images, or all given one rating)."""
        test = self.metrics.get("test") or {}
        return None if not test or unmeasured(test) else test.get("spearman")
