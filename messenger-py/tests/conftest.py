"""Shared helpers: collectors that callbacks feed and tests wait on (with a timeout, never a
sleep), and child processes whose output is read line by line against a deadline."""

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Pattern, Union

import pytest

import messenger

# Keys and known trackers of this test run only, never the home directory's (`make
# test-python` sets them too). Every tracker started without a state directory of its own
# shares this key, as one user's trackers do, so the pins clients record stay true.
_DIRS = tempfile.mkdtemp(prefix="messenger-pytest-")
os.environ.setdefault("MESSENGER_STATE_DIR", os.path.join(_DIRS, "state"))
os.environ.setdefault("MESSENGER_CONFIG_DIR", os.path.join(_DIRS, "config"))

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"

#: Generous bounds for waits that normally end in milliseconds (a loaded 2-core CI machine).
TIMEOUT = 20.0

FAULTS = "loss=0.1,dup=0.05,reorder=0.2,seed=7"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """Collects what a client's callbacks receive; tests wait on it."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.messages: List[messenger.Message] = []
        self.views: Dict[str, messenger.GroupView] = {}
        self.events: List[object] = []

    def on_message(self, message: messenger.Message) -> None:
        with self.cond:
            self.messages.append(message)
            self.cond.notify_all()

    def on_view(self, view: messenger.GroupView) -> None:
        with self.cond:
            self.views[view.group] = view
            self.cond.notify_all()

    def on_event(self, event: object) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise AssertionError("timed out waiting for " + what)

    def in_group(self, group: str) -> List[messenger.Message]:
        with self.cond:
            return [m for m in self.messages if m.group == group]

    def wait_messages(self, group: str, count: int, timeout: float = TIMEOUT) -> None:
        self.wait(
            "%d messages in %s" % (count, group),
            lambda: sum(1 for m in self.messages if m.group == group) >= count,
            timeout,
        )

    def wait_members(self, group: str, names: List[str], timeout: float = TIMEOUT) -> None:
        def seen() -> bool:
            view = self.views.get(group)
            return view is not None and sorted(m.name for m in view.members) == sorted(names)

        self.wait("members %s of %s" % (names, group), seen, timeout)

    def kwargs(self) -> Dict[str, Any]:
        return dict(on_message=self.on_message, on_view=self.on_view, on_event=self.on_event)


@pytest.fixture
def tracker() -> Iterator[messenger.Tracker]:
    with messenger.Tracker() as t:
        yield t


class Process:
    """A child process whose stdout is read line by line on a thread."""

    def __init__(self, args: List[str], env: Optional[Dict[str, str]] = None) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable] + args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
            cwd=str(REPO),
        )
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        self.stderr: List[str] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def write(self, *lines: str) -> None:
        assert self.proc.stdin is not None
        for line in lines:
            self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_input(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def expect(self, pattern: Union[str, Pattern[str]], timeout: float = TIMEOUT) -> str:
        """The next output line matching ``pattern`` (a regex searched in the line); lines
        before it are kept in ``seen``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(self._report("timed out waiting for %r" % regex.pattern))
            if line is None:
                self.lines.put(None)
                raise AssertionError(self._report("output ended before %r" % regex.pattern))
            self.seen.append(line)
            if regex.search(line):
                return line

    def rest(self, timeout: float = TIMEOUT) -> List[str]:
        """Every remaining output line, until the process closes its stdout."""
        out: List[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(self._report("output did not end"))
            if line is None:
                self.lines.put(None)
                return out
            self.seen.append(line)
            out.append(line)

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def all_stderr(self, timeout: float = TIMEOUT) -> List[str]:
        """Every stderr line, once the process has closed its stderr (``stderr`` may still
        be filling while a process ends)."""
        self._stderr_pump.join(timeout)
        if self._stderr_pump.is_alive():
            raise AssertionError(self._report("stderr did not end"))
        return self.stderr

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _report(self, what: str) -> str:
        return "%s: %s\n--- stdout so far:\n%s\n--- stderr:\n%s" % (
            " ".join(self.args),
            what,
            "\n".join(self.seen),
            "\n".join(self.stderr),
        )


@pytest.fixture
def processes() -> Iterator[Callable[..., Process]]:
    """Starts child processes and kills whatever is left of them at the end of the test."""
    started: List[Process] = []

    def start(args: List[str], env: Optional[Dict[str, str]] = None) -> Process:
        p = Process(args, env)
        started.append(p)
        return p

    yield start
    for p in started:
        p.kill()
