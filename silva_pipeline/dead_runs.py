"""Runs whose process died (SIGKILL, out of memory, a closed laptop) are found and failed, and their
pool slots freed, when the next run starts.

Dagster frees a run's pool slots when the run ends, and marks a run whose process vanished as
failed only through the daemon's run monitoring, which runs started with `dagster asset
materialize` never get. So a killed CLI run stayed STARTED for ever, holding its `gpu` slot and
blocking every later step in that pool. Every silva run records the process that executes it (host,
pid and the process's start time, so a reused pid is not mistaken for it); every silva executor
first fails the runs of this host whose process is gone and frees what they held.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dagster as dg
import psutil

PROCESS_TAG = "silva/process"
UNFINISHED = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def this_process() -> str:
    """`host:pid:start time` of the current process, what PROCESS_TAG holds."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.2f}"


def process_gone(owner: str) -> bool:
    """True when `owner` (a PROCESS_TAG value) names a process of this host that no longer runs.
    A process of another host is never judged from here."""
    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return False
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" != started
    except psutil.NoSuchProcess:
        return True


def reap_dead_runs(instance: dg.DagsterInstance, log=None) -> list[str]:
    """Fail the unfinished runs whose process is gone and free the pool slots (and queued claims)
    of every run that is over. Returns the run ids failed."""
    failed = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        owner = run.tags.get(PROCESS_TAG)
        if owner and process_gone(owner):
            instance.report_run_failed(run, f"its process ({owner}) is gone: it was killed or crashed")
            failed.append(run.run_id)
            if log is not None:
                log.warning(f"run {run.run_id} had died without ending (process {owner}); marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        holders = storage.get_concurrency_run_ids()
        if holders:
            over = instance.get_run_records(dg.RunsFilter(run_ids=list(holders), statuses=FINISHED))
            for record in over:
                storage.free_concurrency_slots_for_run(record.dagster_run.run_id)
    return failed


class _ReapingExecutor(dg.Executor):
    """`inner`, after tagging the run with its process and reaping dead runs."""

    def __init__(self, inner: dg.Executor) -> None:
        self.inner = inner

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        instance = plan_context.instance
        instance.add_run_tags(plan_context.run_id, {PROCESS_TAG: this_process()})
        reap_dead_runs(instance, plan_context.log)
        yield from self.inner.execute(plan_context, execution_plan)

    @property
    def retries(self):
        return self.inner.retries

    @property
    def step_dependency_config(self):
        return self.inner.step_dependency_config


def _reaping(base: dg.ExecutorDefinition) -> dg.ExecutorDefinition:
    """`base` (same name, config and requirements) whose runs first reap the dead ones."""
    return dg.ExecutorDefinition(
        name=base.name,
        config_schema=base.config_schema,
        requirements=base.get_requirements,
        executor_creation_fn=lambda init_context: _ReapingExecutor(base.executor_creation_fn(init_context)),
        description=f"{base.description or base.name}; first fails the runs whose process died",
    )


in_process_executor = _reaping(dg.in_process_executor)
multiprocess_executor = _reaping(dg.multiprocess_executor)
