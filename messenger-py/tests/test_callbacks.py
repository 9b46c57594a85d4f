"""Callbacks: the thread they run on, exceptions reported and not stopping delivery, calling
back into the client, views and events."""

import sys
import threading
from typing import Any, List, Tuple

import pytest

import messenger
from conftest import Inbox

COUNT = 20


def two_members(
    tracker: messenger.Tracker, inbox: Inbox, **callbacks: Any
) -> Tuple[messenger.Client, messenger.Client]:
    """``ann`` (plain) and ``bob`` (with ``callbacks``) in group ``g``, both knowing each other."""
    ann = messenger.Client(tracker, "ann", on_view=inbox.on_view)
    bob = messenger.Client(tracker, "bob", **callbacks)
    ann.join("g", order="total")
    bob.join("g", order="total")
    inbox.wait_members("g", ["ann", "bob"])
    return ann, bob


def test_callbacks_run_serially_on_the_client_thread(tracker: messenger.Tracker) -> None:
    inbox = Inbox()
    threads = set()
    active: List[messenger.Message] = []
    overlaps: List[int] = []

    def on_message(m: messenger.Message) -> None:
        active.append(m)
        if len(active) > 1:
            overlaps.append(m.seq)
        threads.add(threading.current_thread().ident)
        active.pop()
        inbox.on_message(m)

    ann, bob = two_members(tracker, inbox, on_message=on_message)
    with ann, bob:
        for i in range(COUNT):
            ann.send("g", str(i))
        inbox.wait_messages("g", COUNT)
    assert [m.text for m in inbox.messages] == [str(i) for i in range(COUNT)]
    assert overlaps == []
    assert len(threads) == 1 and threading.main_thread().ident not in threads


def test_exception_goes_to_unraisablehook_and_delivery_goes_on(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    inbox = Inbox()

    def on_message(m: messenger.Message) -> None:
        inbox.on_message(m)
        if m.seq % 2:
            raise RuntimeError("callback failed on %d" % m.seq)

    ann, bob = two_members(tracker, inbox, on_message=on_message)
    with ann, bob:
        for i in range(COUNT):
            ann.send("g", str(i))
        inbox.wait_messages("g", COUNT)
    assert [m.seq for m in inbox.messages] == list(range(1, COUNT + 1))
    assert len(reported) == COUNT // 2
    first = reported[0]
    assert first.exc_type is RuntimeError
    assert str(first.exc_value) == "callback failed on 1"
    assert first.exc_traceback is not None
    assert first.object is on_message


def test_exception_goes_to_on_error(tracker: messenger.Tracker) -> None:
    errors: List[BaseException] = []
    inbox = Inbox()

    def on_message(m: messenger.Message) -> None:
        inbox.on_message(m)
        raise KeyError(m.seq)

    ann, bob = two_members(tracker, inbox, on_message=on_message, on_error=errors.append)
    with ann, bob:
        for i in range(COUNT):
            ann.send("g", str(i))
        inbox.wait_messages("g", COUNT)
    assert [e.args for e in errors] == [(seq,) for seq in range(1, COUNT + 1)]
    assert all(isinstance(e, KeyError) and e.__traceback__ is not None for e in errors)


def test_a_failing_on_error_is_reported_too(
    tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    reported: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    inbox = Inbox()

    def on_message(m: messenger.Message) -> None:
        inbox.on_message(m)
        raise ValueError("first")

    def on_error(e: BaseException) -> None:
        raise RuntimeError("the hook failed too")

    ann, bob = two_members(tracker, inbox, on_message=on_message, on_error=on_error)
    with ann, bob:
        ann.send("g", "one")
        ann.send("g", "two")
        inbox.wait_messages("g", 2)
    assert [r.object for r in reported] == [on_error, on_error]
    assert all(r.exc_type is RuntimeError for r in reported)


def test_a_callback_can_call_the_client(tracker: messenger.Tracker) -> None:
    """bob answers every message from ann from inside his callback (send and members are
    blocking calls, made on the callback thread)."""
    ann_inbox = Inbox()
    bob_box: List[messenger.Client] = []
    failures: List[BaseException] = []

    def echo(m: messenger.Message) -> None:
        if m.sender == "ann":
            bob = bob_box[0]
            names = [x.name for x in bob.members(m.group)]
            bob.send(m.group, "pong %s %s" % (m.text, ",".join(names)))

    ann = messenger.Client(tracker, "ann", **ann_inbox.kwargs())
    bob = messenger.Client(tracker, "bob", on_message=echo, on_error=failures.append)
    bob_box.append(bob)
    with ann, bob:
        ann.join("g")
        bob.join("g")
        ann_inbox.wait_members("g", ["ann", "bob"])
        for i in range(COUNT):
            ann.send("g", "ping%d" % i)
        ann_inbox.wait(
            "the pongs",
            lambda: sum(1 for m in ann_inbox.messages if m.sender == "bob") == COUNT,
        )
    pongs = [m.text for m in ann_inbox.messages if m.sender == "bob"]
    assert pongs == ["pong ping%d ann,bob" % i for i in range(COUNT)]
    assert failures == []


def test_quit_from_inside_a_callback(tracker: messenger.Tracker) -> None:
    done = threading.Event()
    result: List[Any] = []
    box: List[messenger.Client] = []

    def quit_on_message(m: messenger.Message) -> None:
        result.append(box[0].quit())
        done.set()

    inbox = Inbox()
    ann, bob = two_members(tracker, inbox, on_message=quit_on_message)
    box.append(bob)
    with ann:
        ann.send("g", "bye")
        assert done.wait(10)
    assert result[0].received == 1
    with pytest.raises(messenger.ClosedError):
        bob.send("g", "late")


def test_views_and_events(tracker: messenger.Tracker) -> None:
    inbox = Inbox()
    ann = messenger.Client(tracker, "ann", **inbox.kwargs())
    ann.join("g")
    with messenger.Client(tracker, "bob") as bob:
        bob.join("g")
        inbox.wait("bob's join", lambda: "bob" in inbox.views["g"].joined)
        joined_view = inbox.views["g"]
        assert joined_view.order == "fifo" and joined_view.left == []
    inbox.wait("bob's departure", lambda: inbox.views["g"].left == ["bob"])
    assert inbox.views["g"].view_id > joined_view.view_id

    tracker.close()
    inbox.wait(
        "TrackerLost",
        lambda: any(isinstance(e, messenger.TrackerLost) for e in inbox.events),
    )
    lost = next(e for e in inbox.events if isinstance(e, messenger.TrackerLost))
    assert isinstance(lost.reason, str)
    assert "TrackerLost" in repr(lost)
    # Quitting without a tracker still stops the client and returns the metrics.
    assert ann.quit().sent == 0
