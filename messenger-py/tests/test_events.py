"""Departure events over real sockets on 127.0.0.1: a tracker that comes back with a policy
refusing one of a client's groups (Reconnected, RejoinFailed), a member whose datagrams
all vanish, removed from its group on the others' reports (Removed), and a sender whose first
message never arrives, whose later one is reported lost when it leaves (Lost)."""

from pathlib import Path
from typing import List, Literal

import pytest

import messenger
from conftest import Inbox

#: Short enough that the silent member is found soon, long enough (ten status periods of
#: 0.1 s) that a busy machine does not make a healthy member look silent.
SUSPECT_TIMEOUT = 1.0


def events_of(inbox: Inbox, kind: type) -> List[object]:
    with inbox.cond:
        return [e for e in inbox.events if isinstance(e, kind)]


def test_a_group_the_new_tracker_refuses_is_reported_as_rejoin_failed(tmp_path: Path) -> None:
    inbox = Inbox()
    first = messenger.Tracker()
    address = first.address
    ann = messenger.Client(first, "ann", faults="", **inbox.kwargs())
    try:
        ann.join("room")
        ann.join("hall")
        first.close()
        inbox.wait("TrackerLost", lambda: any(isinstance(e, messenger.TrackerLost) for e in inbox.events))

        # The tracker comes back on the same address with a policy: "room" now needs a
        # password ann does not have.
        policy = tmp_path / "policy.toml"
        policy.write_text('[[group]]\nname = "room"\npassword = "new"\n')
        with messenger.Tracker(bind=address, policy=policy) as second:
            inbox.wait(
                "Reconnected",
                lambda: any(isinstance(e, messenger.Reconnected) for e in inbox.events),
            )
            reconnected = events_of(inbox, messenger.Reconnected)
            assert len(reconnected) == 1
            assert isinstance(reconnected[0], messenger.Reconnected)
            assert reconnected[0].groups == ["hall"]
            failed = events_of(inbox, messenger.RejoinFailed)
            assert len(failed) == 1, failed
            refusal = failed[0]
            assert isinstance(refusal, messenger.RejoinFailed)
            assert refusal.group == "room"
            assert "password" in refusal.reason.lower(), refusal.reason
            assert "room" in repr(refusal)

            # The refused group is gone from the client; the other one works, with a member
            # who joined the new tracker.
            with pytest.raises(messenger.NotAMember):
                ann.send("room", "x")
            bob_inbox = Inbox()
            with messenger.Client(second, "bob", faults="", **bob_inbox.kwargs()) as bob:
                bob.join("hall")
                inbox.wait_members("hall", ["ann", "bob"])
                ann.send("hall", "still here")
                bob_inbox.wait_messages("hall", 1)
                assert [(m.sender, m.text) for m in bob_inbox.in_group("hall")] == [
                    ("ann", "still here")
                ]
            assert second.stats().groups == 1  # "hall"; nobody re-created "room"
    finally:
        ann.quit()


def test_a_member_silent_on_the_data_plane_is_removed() -> None:
    """cid's tracker connection is fine (it answers heartbeats) but every datagram it sends
    is dropped: ann and bob report it silent, the tracker takes it out of the group, and cid
    is told with Removed; the others go on without it."""
    with messenger.Tracker() as tracker:
        inboxes = {name: Inbox() for name in ("ann", "bob", "cid")}
        ann = messenger.Client(
            tracker, "ann", faults="", suspect_timeout=SUSPECT_TIMEOUT, **inboxes["ann"].kwargs()
        )
        bob = messenger.Client(
            tracker, "bob", faults="", suspect_timeout=SUSPECT_TIMEOUT, **inboxes["bob"].kwargs()
        )
        cid = messenger.Client(
            tracker,
            "cid",
            faults="loss=1.0",
            suspect_timeout=SUSPECT_TIMEOUT,
            **inboxes["cid"].kwargs(),
        )
        with ann, bob, cid:
            for client in (ann, bob, cid):
                client.join("quiet", order="total")
            for name in ("ann", "bob"):
                inbox = inboxes[name]

                def without_cid() -> bool:
                    view = inbox.views.get("quiet")
                    return (
                        view is not None
                        and view.left == ["cid"]
                        and [m.name for m in view.members] == ["ann", "bob"]
                    )

                inbox.wait("%s's view without cid" % name, without_cid, timeout=30)
            inboxes["cid"].wait(
                "Removed",
                lambda: any(isinstance(e, messenger.Removed) for e in inboxes["cid"].events),
                timeout=30,
            )
            removed = events_of(inboxes["cid"], messenger.Removed)
            assert len(removed) == 1 and isinstance(removed[0], messenger.Removed)
            assert removed[0].group == "quiet"
            assert "quiet" in repr(removed[0])
            for name in ("ann", "bob"):
                assert events_of(inboxes[name], messenger.Removed) == []
            stats = tracker.stats()
            assert stats.members_suspected >= 1
            assert stats.clients == 3, "cid is still connected"
            assert stats.clients_dropped == 0, "cid answered its heartbeats"
            assert cid.fault_counts().dropped > 0
            with pytest.raises(messenger.NotAMember):
                cid.send("quiet", "anyone?")

            # The survivors' total order goes on.
            for i in range(5):
                ann.send("quiet", "ann %d" % i)
                bob.send("quiet", "bob %d" % i)
            for name in ("ann", "bob"):
                inboxes[name].wait_messages("quiet", 10)
            logs = [
                [(m.sender, m.text) for m in inboxes[name].in_group("quiet")]
                for name in ("ann", "bob")
            ]
            assert logs[0] == logs[1]
            assert sorted(logs[0]) == sorted(
                [("ann", "ann %d" % i) for i in range(5)] + [("bob", "bob %d" % i) for i in range(5)]
            )


@pytest.mark.parametrize("order", ["fifo", "total"])
def test_messages_behind_a_gap_are_reported_lost_when_their_sender_leaves(
    order: Literal["fifo", "total"],
) -> None:
    """The fault injector drops every datagram carrying cid's first message (drop_seq=1), so
    its second one waits behind a gap at ann and bob that is never filled; when cid leaves
    (after its leave timeout: the first message is never stable), both report it Lost."""
    group = "lossy-" + order
    with messenger.Tracker() as tracker:
        inboxes = {name: Inbox() for name in ("ann", "bob", "cid")}
        ann = messenger.Client(tracker, "ann", faults="", **inboxes["ann"].kwargs())
        bob = messenger.Client(tracker, "bob", faults="", **inboxes["bob"].kwargs())
        cid = messenger.Client(tracker, "cid", faults="drop_seq=1", **inboxes["cid"].kwargs())
        with ann, bob, cid:
            for client in (ann, bob, cid):
                client.join(group, order=order)
            for name in ("ann", "bob"):
                inboxes[name].wait_members(group, ["ann", "bob", "cid"])
            # Too large to share a datagram: the second arrives, the first never does.
            cid.send(group, "first" + "x" * 900)
            cid.send(group, "second" + "x" * 900)
            cid.leave(group)
            assert cid.fault_counts().dropped >= 1
            for name in ("ann", "bob"):
                inbox = inboxes[name]
                inbox.wait("%s's Lost" % name, lambda: bool(events_of(inbox, messenger.Lost)))
                lost = events_of(inbox, messenger.Lost)
                assert len(lost) == 1, lost
                event = lost[0]
                assert isinstance(event, messenger.Lost)
                assert (event.group, event.sender, event.first, event.last) == (group, "cid", 2, 2)
                assert "cid" in repr(event)
                assert inbox.in_group(group) == [], "nothing of cid's is delivered"
