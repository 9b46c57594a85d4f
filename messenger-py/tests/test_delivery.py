"""Three clients in one process exchange messages in a fifo and a total-order group, over
loopback: without faults, with injected faults (loss, duplication, reordering; from the
``faults`` keyword or MESSENGER_FAULTS), and with a send window small enough to fill."""

import threading
from typing import Any, Dict, List, Tuple

import pytest

import messenger
from conftest import FAULTS, TIMEOUT, Inbox

NAMES = ["ann", "bob", "cid"]
PER_SENDER = 300


def exchange(
    tracker: messenger.Tracker, per_sender: int, **options: Any
) -> Dict[str, Tuple[messenger.Metrics, messenger.FaultCounts]]:
    """ann, bob and cid (made with ``options``) join a fifo and a total-order group and send
    ``per_sender`` messages to each, concurrently. Checks that every member delivers every
    message exactly once, each sender's in the order sent, and the total-order group in one
    order; returns each client's metrics and fault counts."""
    inboxes = {name: Inbox() for name in NAMES}
    clients: Dict[str, messenger.Client] = {}
    try:
        for name in NAMES:
            clients[name] = messenger.Client(tracker, name, **inboxes[name].kwargs(), **options)
            clients[name].join("chat", order="fifo")
            clients[name].join("board", order="total")
        # Send only once every member knows every other: a member's stream starts at the
        # first message sent in a view that includes the receiver.
        for inbox in inboxes.values():
            inbox.wait_members("chat", NAMES)
            inbox.wait_members("board", NAMES)

        def talk(name: str) -> None:
            for i in range(per_sender):
                clients[name].send("chat", "%s %d" % (name, i))
                clients[name].send("board", ("%s %d" % (name, i)).encode())

        senders = [threading.Thread(target=talk, args=(n,)) for n in NAMES]
        for t in senders:
            t.start()
        for t in senders:
            # A sender whose wake-up on a full window was lost would wait here for ever.
            t.join(60)
            assert not t.is_alive(), "a send did not return"

        everything = per_sender * len(NAMES)
        for inbox in inboxes.values():
            inbox.wait_messages("chat", everything, timeout=60)
            inbox.wait_messages("board", everything, timeout=60)

        for name, inbox in inboxes.items():
            # fifo: every sender's messages exactly once, in the order sent, seq 1, 2, ...
            for group in ("chat", "board"):
                log = inbox.in_group(group)
                assert len(log) == everything, (name, group)
                for sender in NAMES:
                    mine = [m for m in log if m.sender == sender]
                    assert [m.text for m in mine] == ["%s %d" % (sender, i) for i in range(per_sender)]
                    assert [m.seq for m in mine] == list(range(1, per_sender + 1))
                    assert all(m.own == (sender == name) for m in mine)
                    assert all(m.data == m.text.encode() for m in mine)
        # total: one agreed order, the same at every member.
        orders: List[List[str]] = [
            ["%s/%d" % (m.sender, m.seq) for m in inbox.in_group("board")]
            for inbox in inboxes.values()
        ]
        assert orders[0] == orders[1] == orders[2]

        results = {}
        for name, client in clients.items():
            metrics = client.metrics()
            assert metrics.sent == 2 * per_sender
            assert metrics.received == 2 * per_sender * (len(NAMES) - 1)
            assert metrics.total == metrics.sent + metrics.received
            assert metrics.throughput > 0
            assert 0 <= metrics.latency_p50 <= metrics.latency_p99 <= metrics.latency_max
            results[name] = (metrics, client.fault_counts())
    finally:
        for client in clients.values():
            client.quit()
    stats = tracker.stats()
    assert stats.clients == 0 and stats.groups == 0
    return results


@pytest.mark.parametrize("how", ["no-spec", "empty-spec"])
def test_three_clients_fifo_and_total(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "no-spec":
        monkeypatch.delenv("MESSENGER_FAULTS", raising=False)
        results = exchange(tracker, PER_SENDER)
    else:
        # faults="" means no faults, whatever the environment says.
        monkeypatch.setenv("MESSENGER_FAULTS", FAULTS)
        results = exchange(tracker, PER_SENDER, faults="")
    for name, (_, counts) in results.items():
        assert (counts.dropped, counts.duplicated, counts.delayed) == (0, 0, 0), (name, counts)


@pytest.mark.parametrize("how", ["keyword", "environment"])
def test_three_clients_under_injected_faults(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Loss, duplication and reordering on every client's outgoing datagrams; delivery stays
    exact, and the fault counts show that the faults really happened."""
    if how == "keyword":
        # An invalid MESSENGER_FAULTS would fail the connect: the keyword wins over it.
        monkeypatch.setenv("MESSENGER_FAULTS", "loss=2")
        results = exchange(tracker, PER_SENDER, faults=FAULTS)
    else:
        # The core reads MESSENGER_FAULTS when a client connects.
        monkeypatch.setenv("MESSENGER_FAULTS", FAULTS)
        results = exchange(tracker, PER_SENDER)
    for name, (_, counts) in results.items():
        assert counts.dropped > 0 and counts.duplicated > 0 and counts.delayed > 0, (name, counts)
        assert "dropped=%d" % counts.dropped in repr(counts)


def test_a_small_window_fills_and_drains_many_times(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 16-message window and 2,000 messages per sender, each sender outruns the
    acknowledgements: its sends wait for room in the window again and again, and every wait
    ends (a lost wake-up would hang a sender, which fails the test)."""
    monkeypatch.delenv("MESSENGER_FAULTS", raising=False)
    results = exchange(tracker, 2000, window=16)
    for name, (metrics, _) in results.items():
        assert metrics.window_waits >= 10, (name, metrics.window_waits)


def test_values_as_python_sees_them(tracker: messenger.Tracker) -> None:
    inbox = Inbox()
    ann_views = Inbox()
    with messenger.Client(tracker, "ann", on_view=ann_views.on_view) as ann, messenger.Client(
        tracker.address, "bob", **inbox.kwargs()
    ) as bob:
        assert ann.username == "ann" and ann.address.startswith("127.0.0.1:")
        view = ann.join("lobby", order="total")
        assert (view.group, view.order, view.joined, view.left) == ("lobby", "total", ["ann"], [])
        assert [m.name for m in view.members] == ["ann"]
        bob.join("lobby", "total")
        # ann's messages reach the members of her view when she sends: wait until it has bob.
        ann_views.wait_members("lobby", ["ann", "bob"])
        assert ann.send("lobby", b"\xff\x00raw") == 1
        assert ann.send("lobby", "h\u00e9llo") == 2
        inbox.wait_messages("lobby", 2)
        raw, text = inbox.in_group("lobby")
        assert raw.data == b"\xff\x00raw" and raw.text == "\ufffd\x00raw"
        assert text.data == "h\u00e9llo".encode() and text.text == "h\u00e9llo"
        assert (text.group, text.sender, text.seq, text.own) == ("lobby", "ann", 2, False)
        assert 0 < text.latency < TIMEOUT
        assert "ann" in repr(text)

        groups = bob.groups()
        assert [(g.name, g.order, g.members) for g in groups] == [("lobby", "total", 2)]
        members = bob.members("lobby")
        assert [m.name for m in members] == ["ann", "bob"]
        assert members[1].address == bob.address
        assert bob.tracker_stats().clients == 2
        assert bob.flush(5.0) is True

        bob.leave("lobby")
        assert [m.name for m in ann.members("lobby")] == ["ann"]
        block = str(ann.metrics()).splitlines()
        assert block[0] == "-----Performance analytics -----"
        assert block[1].startswith("System throughput = ") and block[1].endswith(" messages/sec")
        assert block[2].startswith("System latency = ")
        assert block[3] == "Messages sent = 2 / Messages received = 0 / Total messages = 2"
    final = bob.metrics()
    assert final.received == 2 and final.sent == 0
