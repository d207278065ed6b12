from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
from pydantic import Field

from silva_model.atomic import atomic_write_text
from silva_model.checkpoint import TrainedHead
from silva_model.evaluate import EvaluationReport
from silva_model.manifest import read_parquet, write_parquet
from silva_pipeline.paths import data_dir
from silva_pipeline.records import Release

_JSON_TYPES: dict[str, type] = {t.__name__: t for t in (EvaluationReport, Release)}


def latest_uri(instance: dg.DagsterInstance, key: dg.AssetKey) -> Path | None:
    """Where the latest materialization of `key` was stored (its `dagster/uri`), if anywhere."""
    event = instance.get_latest_materialization_event(key)
    mat = event.asset_materialization if event else None
    uri = mat.metadata.get("dagster/uri") if mat else None
    return Path(uri.value) if uri is not None else None


def store(obj: Any, stem: Path) -> Path:
    """Write one asset value beside `stem`, atomically, in a format anything can read."""
    if isinstance(obj, pa.Table):
        return write_parquet(obj, stem.with_suffix(".parquet"))
    if isinstance(obj, TrainedHead):
        return obj.save(stem.with_suffix(".head"))  # best.safetensors, then best.json (last)
    if type(obj).__name__ in _JSON_TYPES:
        path = stem.with_suffix(".json")
        atomic_write_text(path, json.dumps({"type": type(obj).__name__, "value": dataclasses.asdict(obj)}))
        return path
    raise TypeError(f"cannot store a {type(obj).__name__}")


def load(path: Path) -> Any:
    if path.suffix == ".parquet":
        return read_parquet(path)
    if path.suffix == ".head":
        return TrainedHead.load(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    return _JSON_TYPES[doc["type"]](**doc["value"])


class SilvaIOManager(dg.ConfigurableIOManager):
    """Stores each asset's value once per run, at `<base>/<asset key>/<run id>.<kind>`: tables as
    parquet, heads as safetensors + JSON, reports as JSON. Never a pickle, never overwritten.
    A step reads what its own run produced upstream; an upstream asset that this run did not
    materialize is read from its latest materialization. So two runs at once never cross."""

    base_dir: str = Field(default="", description="empty: <data>/assets")

    def _folder(self, key: dg.AssetKey) -> Path:
        return (Path(self.base_dir) if self.base_dir else data_dir() / "assets") / "/".join(key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = store(obj, self._folder(context.asset_key) / context.run_id)
        context.add_output_metadata({"dagster/uri": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        own = sorted(self._folder(key).glob(f"{context.step_context.run_id}.*"))
        path = own[0] if own else latest_uri(context.instance, key)
        if path is None or not path.exists():
            raise FileNotFoundError(f"{key.to_user_string()} has not been materialized yet (nothing stored)")
        return load(path)
