"""Typed values that assets hand each other besides tables and heads (stored as JSON)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Release:
    """A released head: the local folder, its MLflow registry version and where it went on the Hub."""

    path: str
    registry_version: str
    hub: str
    test_spearman: float | None = None
