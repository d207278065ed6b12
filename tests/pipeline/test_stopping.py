"""A supervised server stops on Ctrl-C or SIGTERM, with whatever it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from helpers import alive, as_a_script_backgrounds_it

from silva_pipeline.stopping import finishing, raise_if_stopped, stop_group, stoppable, until_stopped

STUBBORN = "import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (2, 15)]; time.sleep(600)"
SERVER = f"""
import subprocess, sys, time
stubborn = subprocess.Popen([sys.executable, "-c", {STUBBORN!r}])
print(stubborn.pid, flush=True)
time.sleep(600)  # until Ctrl-C, leaving `stubborn` behind
"""
SUPERVISOR = f"""
import sys
from silva_pipeline.stopping import supervise
print("up", flush=True)
sys.exit(supervise([sys.executable, "-c", {SERVER!r}], grace=10))
"""


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, "SIGINT to its group"])
def test_sigterm_or_a_closed_terminal_stops_a_server_and_what_it_left_though_ctrl_c_was_ignored(stop):
    """The server ends on the SIGINT it is passed; a process it started that ignores both signals
    is killed with the group, and the supervisor says it was stopped (130). SIGHUP: a closed
    terminal reaches the supervisor alone, the server being in a group of its own."""
    command = [sys.executable, "-c", SUPERVISOR]
    script = as_a_script_backgrounds_it
    sup = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, preexec_fn=script, start_new_session=True
    )
    try:
        assert sup.stdout.readline().strip() == "up"
        stubborn = int(sup.stdout.readline())
        sent = time.monotonic()
        if stop == "SIGINT to its group":  # `kill -INT -PGID`, a script's Ctrl-C: the server is not in it
            os.killpg(sup.pid, signal.SIGINT)
        else:
            sup.send_signal(stop)
        assert sup.wait(timeout=30) == 130
        assert time.monotonic() - sent < 20
        deadline = time.monotonic() + 5
        while alive(stubborn) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(stubborn)
    finally:
        sup.kill()


def test_the_callers_signal_handling_is_back_after():
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    with stoppable():
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_nohup_keeps_its_meaning():
    """`nohup silva-ui &` asked to survive a closed terminal: SIGHUP stays ignored."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stoppable():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)


def test_a_stop_while_a_command_starts_ends_it_quietly_though_the_shell_ignored_ctrl_c():
    """Breaker's finding: `kill -INT` in the seconds `silva-ui` spent before its server started (a
    script's `&`: SIGINT ignored) was lost, and the UI came up anyway."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def starting() -> int:
        signal.raise_signal(signal.SIGINT)
        time.sleep(5)  # the server would start here
        return 0

    try:
        assert until_stopped(starting) == 130
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_stop_repeated_while_finishing_waits_for_the_cleanup():
    """Breaker's finding: SIGTERM repeated while `silva-ui --postgres` stopped PostgreSQL cut that
    short with a traceback. Inside `finishing` it waits, and interrupts after."""
    done = []
    with pytest.raises(KeyboardInterrupt), stoppable():
        with finishing():
            signal.raise_signal(signal.SIGTERM)
            done.append("cleaned up")
        done.append("not reached")
    assert done == ["cleaned up"]


def test_an_mlflow_server_stopped_while_it_starts_is_not_left_running(tmp_path, monkeypatch):
    """Breaker's finding: SIGTERM to `silva-ui --postgres` while its MLflow server started left
    that server running (in a session of its own, and not yet handed back to be stopped)."""
    import silva_pipeline.local_services as services

    started = []

    def interrupted(url, proc, timeout, what):
        started.append(proc.pid)
        raise KeyboardInterrupt

    monkeypatch.setattr(services, "wait_for_http", interrupted)
    with pytest.raises(KeyboardInterrupt):
        services.start_mlflow_server(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    assert started and not alive(started[0])


def test_a_stop_dagster_took_over_and_forgot_is_still_raised():
    """CI's finding: SIGTERM to `silva-run` landing between two steps was captured by Dagster's
    in-process run and dropped when it ended; the run succeeded and silva-run finished (exit 0)."""
    from dagster._utils.interrupts import capture_interrupts  # what execute_in_process wraps a run in

    with stoppable():
        raise_if_stopped()  # nothing yet
        with capture_interrupts():
            signal.raise_signal(signal.SIGTERM)
        with pytest.raises(KeyboardInterrupt):
            raise_if_stopped()
        raise_if_stopped()  # once


def test_a_group_whose_leader_is_stopped_but_not_yet_reaped_is_over_at_once():
    """The caller reaps its own child after `stop_group` returns: until then the child is a zombie
    and still a member of its group, which is no reason to wait out the grace (every server's stop
    took its full 30 s, and MLflow's was SIGKILLed after it had ended)."""
    leader = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    started = time.monotonic()
    stop_group(leader.pid, 30)
    assert time.monotonic() - started < 10
    assert leader.wait(timeout=5) == -signal.SIGTERM  # it was asked, not killed


MAIN_THREAD_ENDS = """
import ctypes, signal, sys, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
threading.Thread(target=lambda: time.sleep(600)).start()
print("up", flush=True)
ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the process runs on in its other one
"""


def test_a_process_that_looks_like_a_zombie_but_runs_is_still_killed():
    """Breaker: a process whose main thread has ended shows as a zombie while its other threads
    run; `stop_group` took it for gone and never sent SIGKILL."""
    leader = subprocess.Popen(
        [sys.executable, "-c", MAIN_THREAD_ENDS], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert leader.stdout.readline().strip() == "up"
        deadline = time.monotonic() + 10
        while psutil.Process(leader.pid).status() != psutil.STATUS_ZOMBIE:  # its main thread ended
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop_group(leader.pid, 30)
        assert leader.wait(timeout=10) == -signal.SIGKILL
    finally:
        leader.kill()
