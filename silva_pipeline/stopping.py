"""How silva's long-running commands stop: Ctrl-C or SIGTERM, whatever the shell passed on, and
nothing they started left behind.

A script's `silva-ui &` starts it with SIGINT ignored (a shell without job control does that to
background commands), and `dagster dev` maps SIGTERM onto SIGINT's handler, so such a UI ignored
both and only SIGKILL ended it, leaving the webserver, daemon and code servers running. Hence
`stoppable` first, and `supervise` runs a server in a process group of its own: a terminal's
Ctrl-C reaches silva alone, which asks the server to stop once (its own orderly shutdown), a
second Ctrl-C or the grace running out kills the group, and whatever the server left of its
group goes with it. A closed terminal (SIGHUP) stops it the same way, unless `nohup` asked to
keep it running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import psutil

STOPS = (signal.SIGINT, signal.SIGTERM)
HANGUP = signal.SIGHUP  # a closed terminal: it reaches silva alone, not the server's own group


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


_WAKEUPS: list[int] = []  # the read end of each active `stoppable`'s wakeup pipe, innermost last


@contextmanager
def stoppable() -> Iterator[None]:
    """Inside, Ctrl-C and SIGTERM raise KeyboardInterrupt, even where the caller ignored or
    blocked them, and so does SIGHUP unless ignored (`nohup`); the caller's state is back after.
    A command started inside gets them at their defaults (an ignored signal is inherited across
    exec, a handler is not). Each stop that arrives is also noted, whoever handles it
    (`raise_if_stopped`)."""
    stops = STOPS if signal.getsignal(HANGUP) == signal.SIG_IGN else (*STOPS, HANGUP)
    before = {stop: signal.getsignal(stop) for stop in stops}
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, set(stops))
    read, write = os.pipe()
    for end in (read, write):
        os.set_blocking(end, False)
    wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _WAKEUPS.append(read)
    for stop in stops:
        signal.signal(stop, _interrupt)
    try:
        yield
    finally:
        for stop, handler in before.items():
            signal.signal(stop, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.set_wakeup_fd(wakeup)
        _WAKEUPS.pop()
        os.close(read)
        os.close(write)


def raise_if_stopped() -> None:
    """KeyboardInterrupt if a stop arrived since the last look. Dagster's in-process run takes
    Ctrl-C and SIGTERM over and, where one lands outside a step, forgets it when the run ends (its
    `capture_interrupts`): the run succeeds and the command would go on to the next."""
    if not _WAKEUPS:
        return
    arrived = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(_WAKEUPS[-1], 512):
            arrived += chunk
    if any(stop in arrived for stop in (*STOPS, HANGUP)):
        raise KeyboardInterrupt


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM to every process of the group (and SIGCONT, for one a terminal stopped), then
    SIGKILL to what is left once only zombies remain or after `grace` seconds (at once on another
    Ctrl-C): a process whose main thread ended shows as a zombie while its other threads run."""
    try:
        os.killpg(pgid, signal.SIGTERM)
        os.killpg(pgid, signal.SIGCONT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _running(pgid):
            time.sleep(0.1)
    except ProcessLookupError:
        return
    except KeyboardInterrupt:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _running(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs. A zombie does not: the caller's own child
    stays one, and in its group, until the caller reaps it after the stop."""
    os.killpg(pgid, 0)  # ProcessLookupError once the group is empty
    for process in psutil.process_iter():
        with contextlib.suppress(OSError, psutil.Error):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
    return False


@contextmanager
def finishing() -> Iterator[None]:
    """Stop signals wait while what was started is stopped: a Ctrl-C repeated then would cut the
    cleanup short (PostgreSQL left running); it takes effect after."""
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(STOPS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def until_stopped(main: Callable[[], int]) -> int:
    """A command's `main` inside `stoppable`: Ctrl-C or SIGTERM at any point, its server up or
    still starting, ends it quietly with 130."""
    with stoppable():
        try:
            return main()
        except KeyboardInterrupt:
            return 130


def supervise(command: Sequence[str], env: dict[str, str] | None = None, grace: float = 70.0) -> int:
    """Run `command` in a process group of its own until it ends or Ctrl-C/SIGTERM asks it to:
    then SIGINT to it, `grace` seconds for its own shutdown (dagster dev gives its children 60),
    and the group's leftovers stopped either way. Its exit status, or 130 when stopped."""
    with stoppable():
        child = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, process_group=0)
        leftovers = 5.0
        try:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGCONT)  # `stty tostop` stops a writer out of the foreground
            try:
                child.wait(timeout=grace)
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                leftovers = 0.0
            return 130
        finally:
            stop_group(child.pid, leftovers)
            child.wait()
