"""The chain silva-run and silva-demo run: a failure as one line, and a wait for the `gpu` pool
that frees dead runs' slots and ends on Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
from pipeline_support import held_by

from silva_pipeline.chain import Runner, first_failure, wait_for_pool
from silva_pipeline.dead_runs import this_process
from silva_pipeline.instance import ensure_instance


@dg.asset
def broken() -> int:
    raise dg.Failure(description="SILVA_RATINGS: the ratings file /nope does not exist")


@dg.asset
def unparsable() -> int:
    try:
        raise RuntimeError('could not parse `"a.png,1` ... (the rest of the file)')
    except RuntimeError as e:
        raise ValueError("/tmp/quote.csv: line 7 opens a quote that is never closed: close it") from e


class Picky(dg.ConfigurableResource):
    def setup_for_execution(self, context) -> None:
        raise dg.Failure(description="SILVA_LIBRARY: the library folder /nope does not exist")


@dg.asset
def needs_picky(picky: Picky) -> int:
    return 1


def test_a_failed_run_is_one_line_naming_the_step_and_its_cause():
    r = dg.materialize([broken], raise_on_error=False)
    failed = first_failure(r)
    assert failed.step == "broken" and failed.cause == "SILVA_RATINGS: the ratings file /nope does not exist"
    r = dg.materialize([needs_picky], resources={"picky": Picky()}, raise_on_error=False)
    failed = first_failure(r)
    assert failed.step == "the start of the run" and failed.cause.startswith("SILVA_LIBRARY: the library")
    # the step's own message, which names the file and line, not the parser's cause beneath it
    failed = first_failure(dg.materialize([unparsable], raise_on_error=False))
    assert failed.cause == "/tmp/quote.csv: line 7 opens a quote that is never closed: close it"


SEEN: list[str] = []  # the steps whose end the runner handed on, as the run goes


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    """Waits until the runner has handed on `first`'s end: lines come as steps end, not at the end."""
    deadline = time.monotonic() + 60
    while "first" not in SEEN:
        assert time.monotonic() < deadline, "the end of `first` was not handed on while the run went on"
        time.sleep(0.05)
    return first + 1


def test_each_step_is_handed_on_as_it_ends_not_when_the_run_ends(tmp_path):
    """Issue 39 walk: `silva-run > log` stayed empty for a minute, then printed every step at once."""
    SEEN.clear()
    job = dg.Definitions(assets=[first, second]).resolve_implicit_global_asset_job_def()

    def on_events(events: list[dg.DagsterEvent]) -> None:
        SEEN.extend(e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS)

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = Runner(job, instance, {}, print, on_events)(["first", "second"])
    assert result.success and SEEN == ["first", "second"]


def test_a_slot_held_by_a_dead_run_is_freed_before_waiting(tmp_path):
    with dg.DagsterInstance.from_config(str(ensure_instance(tmp_path / "dagster"))) as instance:
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()
        dead = held_by(instance, f"{this_process().split(':')[0]}:{ended.pid}:1.00")
        said = []
        wait_for_pool(instance, said.append)
        assert said == [] and instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE


WAIT = """
import sys
import dagster as dg
from silva_pipeline.chain import wait_for_pool
with dg.DagsterInstance.from_config(sys.argv[1]) as instance:
    wait_for_pool(instance, lambda line: print(line, flush=True))
"""


def _as_a_shell_starts_it() -> None:
    """Ctrl-C and SIGTERM at their defaults and unblocked, as a person's shell starts silva: in the
    whole suite the pytest worker running this test had passed both on ignored or blocked (an
    earlier test's state; the child waited out its 30 s). A script's `&` passes SIGINT on ignored
    too: silva's commands undo that themselves (`stoppable`), but this bare script does not."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_wait_for_a_slot_a_live_run_holds_ends_at_once_on_ctrl_c_or_sigterm(tmp_path, stop):
    home = ensure_instance(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        holder = held_by(instance, this_process())  # this test: alive
    command = [sys.executable, "-c", WAIT, str(home)]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=_as_a_shell_starts_it)
    line = waiting.stdout.readline()
    assert holder in line and "Ctrl-C stops" in line
    sent = time.monotonic()
    waiting.send_signal(stop)
    waiting.wait(timeout=30)
    assert waiting.returncode != 0 and time.monotonic() - sent < 10
