"""Clients that are never quit: freed, dropped inside their own callback, alive at exit."""

import gc
import os
import signal
import threading
import time
from typing import Callable, List

import messenger
from conftest import Inbox, Process

# Traffic still flowing, callbacks still running, and the script ends without quit(): the
# clients must stop before the interpreter finalizes (this crashed before the atexit hook).
EXIT_WITHOUT_QUIT = r"""
import messenger
tracker = messenger.Tracker()
def slow(m):
    sum(range(1000))
clients = [messenger.Client(tracker, n, on_message=slow) for n in ("ann", "bob", "cid")]
for c in clients:
    c.join("g", order="total")
for i in range(300):
    clients[0].send("g", str(i))
print("leaving", flush=True)
"""


def test_exit_with_live_clients(processes: Callable[..., Process]) -> None:
    for _ in range(3):
        child = processes(["-c", EXIT_WITHOUT_QUIT])
        child.expect("^leaving$")
        assert child.rest() == []
        assert child.wait() == 0, "\n".join(child.stderr)


def test_a_freed_client_stops_and_leaves_its_groups(tracker: messenger.Tracker) -> None:
    inbox = Inbox()
    with messenger.Client(tracker, "ann", **inbox.kwargs()) as ann:
        ann.join("g")
        bob = messenger.Client(tracker, "bob", on_message=inbox.on_message)
        bob.join("g")
        inbox.wait_members("g", ["ann", "bob"])
        del bob
        gc.collect()
        # The tracker saw bob's connection close and removed him.
        inbox.wait_members("g", ["ann"])


def test_a_client_freed_inside_its_own_callback(tracker: messenger.Tracker) -> None:
    """The last reference goes away on the callback thread itself."""
    inbox = Inbox()
    freed = threading.Event()
    holder: List[messenger.Client] = []

    def drop_myself(m: messenger.Message) -> None:
        holder.clear()
        freed.set()

    with messenger.Client(tracker, "ann", **inbox.kwargs()) as ann:
        ann.join("g")
        holder.append(messenger.Client(tracker, "bob", on_message=drop_myself))
        holder[0].join("g")
        inbox.wait_members("g", ["ann", "bob"])
        ann.send("g", "go away")
        assert freed.wait(10)
        inbox.wait_members("g", ["ann"])


# A client in another process, which the test then freezes with SIGSTOP: its TCP connection
# stays open, but it answers no heartbeat.
FROZEN_CLIENT = r"""
import sys, threading, messenger
c = messenger.Client(sys.argv[1], "zed")
c.join("g")
print("joined", flush=True)
threading.Event().wait()
"""


def test_the_heartbeat_interval_is_in_seconds(processes: Callable[..., Process]) -> None:
    with messenger.Tracker(heartbeat_interval=0.2, heartbeat_misses=2) as tracker:
        inbox = Inbox()
        with messenger.Client(tracker, "ann", **inbox.kwargs()) as ann:
            ann.join("g")
            child = processes(["-c", FROZEN_CLIENT, tracker.address])
            child.expect("^joined$")
            inbox.wait_members("g", ["ann", "zed"])
            frozen_at = time.monotonic()
            os.kill(child.proc.pid, signal.SIGSTOP)
            # Read as seconds, zed is dropped after two unanswered heartbeats (0.4 s or more);
            # read as milliseconds, it would be dropped at once (and ann with it, most likely);
            # read as anything larger, not within the wait.
            inbox.wait_members("g", ["ann"])
            waited = time.monotonic() - frozen_at
            assert waited >= 0.35, "dropped after %.3f s: not read as seconds" % waited
            assert tracker.stats().clients_dropped == 1
            os.kill(child.proc.pid, signal.SIGCONT)
