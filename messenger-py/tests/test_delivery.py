"""Three clients in one process exchange messages in a fifo and a total-order group, over
loopback, with and without injected faults (loss, duplication, reordering)."""

import threading
from typing import Dict, List, Optional

import pytest

import messenger
from conftest import FAULTS, TIMEOUT, Inbox

NAMES = ["ann", "bob", "cid"]
PER_SENDER = 300


@pytest.mark.parametrize("faults", [None, FAULTS], ids=["clean", "faults"])
def test_three_clients_fifo_and_total(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch, faults: Optional[str]
) -> None:
    # The core reads MESSENGER_FAULTS when a client connects.
    if faults is None:
        monkeypatch.delenv("MESSENGER_FAULTS", raising=False)
    else:
        monkeypatch.setenv("MESSENGER_FAULTS", faults)
    inboxes = {name: Inbox() for name in NAMES}
    clients: Dict[str, messenger.Client] = {}
    try:
        for name in NAMES:
            clients[name] = messenger.Client(tracker, name, **inboxes[name].kwargs())
            clients[name].join("chat", order="fifo")
            clients[name].join("board", order="total")
        # Send only once every member knows every other: a member's stream starts at the
        # first message sent in a view that includes the receiver.
        for inbox in inboxes.values():
            inbox.wait_members("chat", NAMES)
            inbox.wait_members("board", NAMES)

        def talk(name: str) -> None:
            for i in range(PER_SENDER):
                clients[name].send("chat", "%s %d" % (name, i))
                clients[name].send("board", ("%s %d" % (name, i)).encode())

        senders = [threading.Thread(target=talk, args=(n,)) for n in NAMES]
        for t in senders:
            t.start()
        for t in senders:
            t.join(TIMEOUT)
            assert not t.is_alive()

        everything = PER_SENDER * len(NAMES)
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
                    assert [m.text for m in mine] == ["%s %d" % (sender, i) for i in range(PER_SENDER)]
                    assert [m.seq for m in mine] == list(range(1, PER_SENDER + 1))
                    assert all(m.own == (sender == name) for m in mine)
                    assert all(m.data == m.text.encode() for m in mine)
        # total: one agreed order, the same at every member.
        orders: List[List[str]] = [
            ["%s/%d" % (m.sender, m.seq) for m in inbox.in_group("board")]
            for inbox in inboxes.values()
        ]
        assert orders[0] == orders[1] == orders[2]

        for name, client in clients.items():
            metrics = client.metrics()
            assert metrics.sent == 2 * PER_SENDER
            assert metrics.received == 2 * PER_SENDER * (len(NAMES) - 1)
            assert metrics.total == metrics.sent + metrics.received
            assert metrics.throughput > 0
            assert 0 <= metrics.latency_p50 <= metrics.latency_p99 <= metrics.latency_max
    finally:
        for client in clients.values():
            client.quit()
    stats = tracker.stats()
    assert stats.clients == 0 and stats.groups == 0


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
