from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from silva_model.atomic import atomic_write_text
from silva_model.manifest import read_parquet, write_parquet
from silva_pipeline.paths import data_dir


class SilvaIOManager(dg.ConfigurableIOManager):
    """Stores Arrow tables as parquet and small dicts as JSON under the data folder, written
    atomically: readable by anything, never a pickle, and shared by every Dagster instance."""

    base_dir: str = Field(default="", description="empty: <data>/assets")

    def _base(self) -> Path:
        return Path(self.base_dir) if self.base_dir else data_dir() / "assets"

    def _stem(self, key: dg.AssetKey) -> Path:
        return self._base() / "/".join(key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        stem = self._stem(context.asset_key)
        if isinstance(obj, pa.Table):
            path = write_parquet(obj, stem.with_suffix(".parquet"))
        elif isinstance(obj, dict):
            path = stem.with_suffix(".json")
            atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str))
        else:
            raise TypeError(f"{context.asset_key.to_user_string()}: cannot store {type(obj).__name__}")
        context.add_output_metadata({"dagster/uri": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        stem = self._stem(context.asset_key)
        if stem.with_suffix(".parquet").exists():
            return read_parquet(stem.with_suffix(".parquet"))
        if stem.with_suffix(".json").exists():
            return json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
        raise FileNotFoundError(
            f"{context.asset_key.to_user_string()} has not been materialized yet (nothing at {stem}.*)"
        )
