"""A supervised server stops on Ctrl-C or SIGTERM, with whatever it started."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import alive, as_a_script_backgrounds_it

from silva_pipeline.stopping import stoppable

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


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_a_closed_terminal_stops_a_server_and_what_it_left_though_ctrl_c_was_ignored(stop):
    """The server ends on the SIGINT it is passed; a process it started that ignores both signals
    is killed with the group, and the supervisor says it was stopped (130). SIGHUP: a closed
    terminal reaches the supervisor alone, the server being in a group of its own."""
    command = [sys.executable, "-c", SUPERVISOR]
    sup = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=as_a_script_backgrounds_it)
    try:
        assert sup.stdout.readline().strip() == "up"
        stubborn = int(sup.stdout.readline())
        sent = time.monotonic()
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
