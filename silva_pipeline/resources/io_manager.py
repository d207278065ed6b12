"""Where assets' values live: one file per asset (partition) and run under the data root, in
formats anything can read, and the latest stored value of an asset."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from silva_model.active import OutOfFold
from silva_model.atomic import atomic_path, atomic_write_text
from silva_model.parquet import read_parquet, write_parquet
from silva_model.release import TrainedHead, load_head, save_checkpoint
from silva_pipeline.records import EmbedWork, EvaluationReport, Release
from silva_pipeline.resources.workspace import Workspace

_JSON_TYPES: dict[str, type] = {t.__name__: t for t in (EmbedWork, EvaluationReport, Release)}
# Tables the person's side reads (`silva rate`, the gallery, `silva score --explain`): each newest
# value is also published at one fixed place in the workspace (`Home.latest`), so they need no Dagster.
PUBLISHED = ("manifest", "library_scores", "rating_queue")


def latest_uri(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> Path | None:
    """Where the latest materialization of `key` (of one partition) was stored (its `dagster/uri`)."""
    if partition is None:
        event = instance.get_latest_materialization_event(key)
    else:
        found = instance.fetch_materializations(dg.AssetRecordsFilter(key, [partition]), limit=1).records
        event = found[0].event_log_entry if found else None
    mat = event.asset_materialization if event else None
    uri = mat.metadata.get("dagster/uri") if mat else None
    return Path(uri.value) if uri is not None else None


def previous_table(instance: dg.DagsterInstance, key: dg.AssetKey, columns: list[str]) -> pa.Table | None:
    """The `columns` of a table asset's latest stored value, read as the IO manager stored it:
    what an asset compares its new value with (a manifest's splits, a library's shards)."""
    path = latest_uri(instance, key)
    return read_parquet(path, columns) if path is not None and path.exists() else None


def store(obj: Any, stem: Path) -> Path:
    """Write one asset value beside `stem`, atomically, in a format anything can read."""
    if isinstance(obj, pa.Table):
        return write_parquet(obj, stem.with_suffix(".parquet"))
    if isinstance(obj, TrainedHead):
        return obj.save(stem.with_suffix(".head"))  # best.safetensors, then best.json (last)
    if isinstance(obj, OutOfFold):
        return _store_folds(obj, stem.with_suffix(".folds"))
    if type(obj).__name__ in _JSON_TYPES:
        path = stem.with_suffix(".json")
        atomic_write_text(path, json.dumps({"type": type(obj).__name__, "value": dataclasses.asdict(obj)}))
        return path
    raise TypeError(f"cannot store a {type(obj).__name__}")


def publish(stored: Path, target: Path) -> None:
    """Make `target` the stored file, atomically: a hard link (stored values are never
    overwritten), a copy where the file system has none."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(stored, tmp)
        except OSError:
            shutil.copyfile(stored, tmp)


def _store_folds(oof: OutOfFold, folder: Path) -> Path:
    """Out-of-fold predictions (a table, in the manifest's row order) and the fold heads (one
    checkpoint each), assembled beside `folder` and moved into place whole."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    predictions = {"expected": oof.expected, "score": oof.score, "pred": oof.pred}
    write_parquet(pa.table(predictions), tmp / "predictions.parquet")
    for k, head in enumerate(oof.heads):
        save_checkpoint(head, tmp / f"fold-{k}", {"fold": k})
    os.replace(tmp, folder)
    return folder


def _load_folds(folder: Path) -> OutOfFold:
    p = read_parquet(folder / "predictions.parquet")
    heads = [load_head(d)[0] for d in sorted(folder.glob("fold-*"), key=lambda d: int(d.name[5:]))]
    expected, score, pred = (p.column(c).to_numpy() for c in ("expected", "score", "pred"))
    return OutOfFold(expected, heads, score, pred)


def load(path: Path) -> Any:
    if path.suffix == ".parquet":
        return read_parquet(path)
    if path.suffix == ".head":
        return TrainedHead.load(path)
    if path.suffix == ".folds":
        return _load_folds(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    return _JSON_TYPES[doc["type"]](**doc["value"])


class SilvaIOManager(dg.ConfigurableIOManager):
    """Stores each asset's value once per run, under the data root at `assets/<asset key>
    [/<partition>]/<run id>.<kind>`: tables as parquet, heads as safetensors + JSON, reports as
    JSON. Never a pickle, never overwritten. A step reads what its own run produced upstream; an
    upstream asset (partition) that this run did not materialize is read from its latest
    materialization. So two runs at once never cross. Several partitions load as a dict keyed by
    partition, as Dagster's own do; one not materialized yet is left out with a warning (the
    library is scored as far as it is embedded). An op's output inside a graph asset (no asset
    key) goes to `assets/_steps/<run id>/<step>/<output>[/<mapping key>]/value.*`."""

    workspace: Workspace

    def _folder(self, key: dg.AssetKey) -> Path:
        return self.workspace.home().asset(*key.path)

    def _step_stem(self, identifier: list[str]) -> Path:
        run_id, *step = identifier
        return self._folder(dg.AssetKey(["_steps", run_id, *step])) / "value"

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_key:
            store(obj, self._step_stem(context.get_identifier()))
            return
        folder = self._folder(context.asset_key)
        if context.has_asset_partitions:
            folder = folder / context.asset_partition_key
        path = store(obj, folder / context.run_id)
        context.add_output_metadata({"dagster/uri": dg.MetadataValue.path(str(path))})
        name = context.asset_key.to_user_string()
        if name in PUBLISHED and not context.has_asset_partitions:
            publish(path, self.workspace.home().latest(name))

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_key:
            stem = self._step_stem(context.upstream_output.get_identifier())
            return load(next(stem.parent.glob(f"{stem.name}.*")))
        key = context.asset_key
        if not context.has_asset_partitions:
            path = self._find(context, key, None)
            if path is None:
                raise FileNotFoundError(
                    f"{key.to_user_string()} has not been materialized yet (nothing stored)"
                )
            return load(path)
        found = {pk: self._find(context, key, pk) for pk in context.asset_partition_keys}
        missing = [pk for pk, path in found.items() if path is None]
        if missing:
            context.log.warning(f"{key.to_user_string()}: {len(missing)} partition(s) not materialized yet")
        return {pk: load(path) for pk, path in found.items() if path is not None}

    def _find(self, context: dg.InputContext, key: dg.AssetKey, partition: str | None) -> Path | None:
        folder = self._folder(key) if partition is None else self._folder(key) / partition
        own = sorted(folder.glob(f"{context.step_context.run_id}.*"))
        path = own[0] if own else latest_uri(context.instance, key, partition)
        return path if path is not None and path.exists() else None
