"""The whole graph in-process, as `silva-run` and `silva-demo` run it, in three stages: ratings
to a release and the library's shards; each new shard embedded; the library scored and the next
queue chosen.

Each run carries the process that executes it (so a run whose process is killed is recognised as
dead and reaped by the next one), and waits for a busy `gpu` pool here, where Ctrl-C stops it,
rather than inside Dagster's loop, which holds Ctrl-C back until a step starts. A run that fails
comes back as one line: the step and the cause.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg

from silva_pipeline.assets import MODEL_ASSETS, library_shards
from silva_pipeline.dead_runs import PROCESS_TAG, reap_dead_runs, this_process
from silva_pipeline.stopping import raise_if_stopped

POOL = "gpu"
EMBEDDING_STEPS = ("image_embeddings", "library_embeddings")


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM); run it again to go on from where it stopped"


@dataclass
class Failed(Exception):
    """A run that did not finish: which, where, why (and the traceback, for --verbose)."""

    run_id: str
    step: str
    cause: str
    detail: str = ""
    result: dg.ExecuteInProcessResult | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.step}: {self.cause}"


@dataclass
class Chain:
    """What a whole run of the graph produced, stage by stage."""

    model: dg.ExecuteInProcessResult | None = None
    loop: dg.ExecuteInProcessResult | None = None
    shards: list[dg.ExecuteInProcessResult] = field(default_factory=list)  # one run per new shard
    failed: Failed | None = None
    run_ids: list[str] = field(default_factory=list)

    def read_sources(self) -> bool:
        """Whether the ratings and the library were read: the setup this run was given works."""
        done = {
            e.step_key
            for e in (self.model.all_events if self.model else [])
            if e.event_type == dg.DagsterEventType.STEP_SUCCESS
        }
        return {"raw_ratings", "library"} <= done


def _message(error) -> str:
    """The cause of a serialized error, without Dagster's wrappers around the step's own error
    (whose message already says what its own cause meant) and without its exception class."""
    while getattr(error, "cause", None) is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    if error.cls_name == "DagsterExecutionInterruptedError":
        return INTERRUPTED
    text = (error.message or "").strip()
    head, sep, rest = text.partition(": ")
    named = sep and re.fullmatch(r"[A-Za-z_][\w.]*", head) and head.split(".")[-1] == error.cls_name
    return rest if named else text


def first_failure(result: dg.ExecuteInProcessResult) -> Failed:
    """What stopped a run: resources that could not start (a setting), a blocking check that
    failed, or the first step that failed."""
    for check in result.get_asset_check_evaluations():
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            where = f"check {check.asset_key.to_user_string()}:{check.check_name}"
            return Failed(result.run_id, where, check.description or "failed")
    for e in result.all_events:
        if e.event_type == dg.DagsterEventType.STEP_FAILURE:
            data = e.event_specific_data
            user = getattr(data, "user_failure_data", None)
            cause = user.description if user and user.description else _message(data.error)
            return Failed(result.run_id, e.step_key or "a step", cause, data.error.to_string())
    for e in result.all_events:  # no step failed: the run could not start (its resources, a setting)
        error = getattr(e.event_specific_data, "error", None)
        if e.event_type == dg.DagsterEventType.RUN_FAILURE and error is not None:
            return Failed(result.run_id, "the start of the run", _message(error), error.to_string())
    return Failed(result.run_id, "the run", "failed (see the run's log)")


def wait_for_pool(instance: dg.DagsterInstance, say: Callable[[str], None]) -> None:
    """Return once the `gpu` pool has a free slot (dead runs' slots freed first); until then say
    which run holds it, once, and poll, where Ctrl-C ends the wait."""
    said = False
    while True:
        reap_dead_runs(instance)
        info = instance.event_log_storage.get_concurrency_info(POOL)
        if info.slot_count == 0 or len(info.claimed_slots) < info.slot_count:
            return
        if not said:
            holders = ", ".join(sorted(info.active_run_ids))
            say(f"waiting for run(s) {holders}, which hold the `{POOL}` pool (Ctrl-C stops)")
            said = True
        time.sleep(1.0)


OnEvents = Callable[[list[dg.DagsterEvent]], None]


@contextmanager
def following(
    instance: dg.DagsterInstance, run_id: str, on_events: OnEvents, every: float = 0.5
) -> Iterator[None]:
    """Hand the run's step and materialization events to `on_events` while it runs (polling its
    event log from a thread, so a step's line is printed when the step ends, not the stage), and
    the last ones when it is over."""
    cursor: str | None = None
    stop = threading.Event()
    kinds = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION}

    def drain() -> None:
        nonlocal cursor
        while True:
            page = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds)
            cursor = page.cursor
            events = [
                r.event_log_entry.dagster_event for r in page.records if r.event_log_entry.dagster_event
            ]
            if events:
                on_events(events)
            if not page.has_more:
                return

    def poll() -> None:
        while not stop.wait(every):
            drain()

    thread = threading.Thread(target=poll, name=f"follow-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drain()


class Runner:
    """Runs selections of one job in-process on one instance, each tagged with this process;
    `on_events` sees each run's events as they happen."""

    def __init__(
        self,
        job: dg.JobDefinition,
        instance: dg.DagsterInstance,
        run_config: dict,
        say: Callable[[str], None],
        on_events: OnEvents = lambda events: None,
    ) -> None:
        self.job, self.instance, self.run_config, self.say = job, instance, run_config, say
        self.on_events = on_events
        self.run_ids: list[str] = []

    def __call__(self, keys: list[str], partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        for run_id in reap_dead_runs(self.instance):
            self.say(f"run {run_id} had died without ending (killed?): marked failed, its steps run again")
        if any(k.startswith(EMBEDDING_STEPS) for k in keys):
            wait_for_pool(self.instance, self.say)
        ops = {k: v for k, v in self.run_config.get("ops", {}).items() if k.startswith(tuple(keys))}
        run_id = str(uuid.uuid4())
        with following(self.instance, run_id, self.on_events):
            result = self.job.execute_in_process(
                instance=self.instance,
                run_config={**self.run_config, "ops": ops},
                raise_on_error=False,
                asset_selection=[dg.AssetKey(k) for k in keys],
                tags={PROCESS_TAG: this_process()},
                partition_key=partition_key,
                run_id=run_id,
            )
        self.run_ids.append(result.run_id)
        if not result.success:
            failed = first_failure(result)
            failed.result = result
            raise failed
        raise_if_stopped()  # a stop the run took over and forgot: the chain goes no further
        return result


def run_chain(run: Runner) -> Chain:
    """Ratings to release and the library's shards, each shard not embedded yet, then the
    library's scores and the queue; stops at the first failure (in `Chain.failed`)."""
    chain = Chain()
    try:
        chain.model = run([*MODEL_ASSETS, "library"])
        done = run.instance.get_materialized_partitions(dg.AssetKey("library_embeddings"))
        todo = [s for s in run.instance.get_dynamic_partitions(library_shards.name) if s not in done]
        started = time.perf_counter()
        for shard in todo:
            chain.shards.append(run(["library_embeddings"], partition_key=shard))
        seconds = time.perf_counter() - started
        run.say(f"{'library_embeddings, in all':<32}{seconds:7.1f} s  {len(todo)} new shard(s)")
        chain.loop = run(["library_scores", "rating_queue"])
    except Failed as failed:
        chain.failed = failed
        chain.model = chain.model or failed.result  # what it got to: the evaluation, the gate
    chain.run_ids = run.run_ids
    return chain
