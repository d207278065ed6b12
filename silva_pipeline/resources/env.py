"""Resource fields whose default comes from the environment.

Dagster rebuilds a resource from run config whenever any of its fields is configured there, and
constructor arguments do not survive that: `embedder: {config: {batch_size: 8}}` would silently
drop a backbone passed to the constructor. A pydantic `default_factory` is evaluated on every
build, so an environment default holds under partial config too."""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field


def env_field(variable: str, default: str, description: str, cast: type = str) -> Any:
    return Field(
        default_factory=lambda: cast(os.environ.get(variable) or default),
        description=f"{description} (default: ${variable}, else {default!r})",
    )
