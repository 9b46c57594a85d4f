"""demo/tracker.py and demo/demo.py as processes, driven through stdin like a person would
(the classic API, messenger.classic)."""

import re
from typing import Callable, Dict, Iterator, Set

import pytest

from conftest import DEMO, Process, free_port

METRICS = [
    r"^-----Performance analytics -----$",
    r"^System throughput = \d+\.\d+ messages/sec$",
    r"^System latency = \d+\.\d+ ms",
]

Start = Callable[..., Process]


def expect_metrics(p: Process, sent: int, received: int) -> None:
    for pattern in METRICS:
        p.expect(pattern)
    p.expect(
        "^Messages sent = %d / Messages received = %d / Total messages = %d$"
        % (sent, received, sent + received)
    )


@pytest.fixture
def tracker_port(processes: Start) -> Iterator[int]:
    port = free_port()
    tracker = processes([str(DEMO / "tracker.py")], env={"MESSENGER_TRACKER_PORT": str(port)})
    tracker.expect("^Tracker running on 127.0.0.1:%d " % port)
    yield port
    tracker.interrupt()
    tracker.expect("^Tracker stopped$")
    assert tracker.wait() == 0


def chat(processes: Start, port: int, *args: str) -> Process:
    return processes([str(DEMO / "demo.py")] + list(args), env={"MESSENGER_TRACKER_PORT": str(port)})


def register(p: Process, name: str) -> None:
    p.write(name)
    p.expect("^Successfully registered to messenger application!$")


def test_three_chats_see_each_other(processes: Start, tracker_port: int) -> None:
    names = ["ann", "bob", "cid"]
    chats: Dict[str, Process] = {n: chat(processes, tracker_port) for n in names}
    for p in chats.values():
        p.expect("^Enter your username: $")
    # A taken name is asked again.
    register(chats["ann"], "ann")
    chats["bob"].write("ann")
    chats["bob"].expect("taken: choose another username")
    chats["bob"].expect("^Enter your username: $")
    register(chats["bob"], "bob")
    register(chats["cid"], "cid")

    for name, p in chats.items():
        p.write("!j lobby")
        p.expect("^joined lobby")
    # Everyone knows everyone before anyone speaks.
    chats["ann"].expect(r"^\* bob joined lobby$")
    chats["ann"].expect(r"^\* cid joined lobby$")
    chats["bob"].expect(r"^\* cid joined lobby$")

    for name, p in chats.items():
        p.write("!w lobby", "hello from %s" % name)
    for p in chats.values():
        got: Set[str] = set()
        while len(got) < len(names):
            line = p.expect(r"^in lobby (\w+) says:: hello from (\w+)$")
            m = re.match(r"^in lobby (\w+) says:: hello from (\w+)$", line)
            assert m and m.group(1) == m.group(2)
            got.add(m.group(1))

    ann = chats["ann"]
    ann.write("!g")
    ann.expect(r"^groups: lobby \(FIFO\)$")
    ann.write("!lm lobby")
    ann.expect("^members: ann, bob, cid$")
    ann.write("!w nowhere")
    ann.expect("^error: you are not in nowhere")
    ann.write("!lm nowhere")
    ann.expect("^error: .*nowhere")
    ann.write("!x")
    ann.expect("^unknown command !x")

    # A TOTAL_ORDER client cannot join the FIFO group; it can make its own.
    dan = chat(processes, tracker_port, "TOTAL_ORDER")
    register(dan, "dan")
    dan.write("!j lobby")
    dan.expect("^error: cannot join lobby: it is a FIFO group and this client runs in TOTAL_ORDER mode$")
    dan.write("!j board", "in order")
    dan.expect("^joined board")
    dan.expect("^in board dan says:: in order$")
    dan.write("!g")
    dan.expect(r"^groups: board \(TOTAL_ORDER\), lobby \(FIFO\)$")
    dan.write("!q")
    expect_metrics(dan, sent=1, received=0)
    assert dan.wait() == 0

    # cid leaves; the others are told. Then everyone's input ends: each prints its metrics.
    chats["cid"].write("!e lobby")
    chats["cid"].expect("^left lobby$")
    chats["ann"].expect(r"^\* cid left lobby$")
    for p in chats.values():
        p.close_input()
    for p in chats.values():
        expect_metrics(p, sent=1, received=2)
        assert p.wait() == 0


def test_sigint_ends_a_blocked_register_with_the_metrics(processes: Start, tracker_port: int) -> None:
    p = chat(processes, tracker_port)
    p.expect("^Enter your username: $")
    register(p, "eve")
    p.write("!j solo", "talking to myself")
    p.expect("^in solo eve says:: talking to myself$")
    # register() now waits for the next line of stdin, which never comes.
    p.interrupt()
    expect_metrics(p, sent=1, received=0)
    assert p.wait() == 0


def test_unsupported_mode_exits_with_status_3(processes: Start) -> None:
    p = chat(processes, free_port(), "CAUSAL")
    p.expect("^Unsupported message ordering mode$")
    assert p.wait() == 3
