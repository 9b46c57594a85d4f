"""Every exception of the hierarchy, raised where it should be."""

import socket
import threading
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import messenger
from conftest import free_port

EXCEPTIONS = [
    messenger.UsernameTaken,
    messenger.InvalidName,
    messenger.AccessDenied,
    messenger.UnknownGroup,
    messenger.NotAMember,
    messenger.AlreadyMember,
    messenger.OrderMismatch,
    messenger.GroupFull,
    messenger.LimitReached,
    messenger.TrackerUnavailable,
    messenger.TrackerNotTrusted,
    messenger.ClosedError,
    messenger.MessageTooLarge,
    messenger.ConfigError,
    messenger.NetworkError,
    messenger.ProtocolError,
]


def test_one_hierarchy() -> None:
    assert issubclass(messenger.MessengerError, Exception)
    for exc in EXCEPTIONS:
        assert issubclass(exc, messenger.MessengerError), exc
        assert exc.__module__ == "messenger"
        assert exc.__doc__


@pytest.fixture
def ann(tracker: messenger.Tracker) -> Iterator[messenger.Client]:
    with messenger.Client(tracker, "ann") as client:
        yield client


def test_usernames(tracker: messenger.Tracker, ann: messenger.Client) -> None:
    with pytest.raises(messenger.UsernameTaken, match="ann"):
        messenger.Client(tracker, "ann")
    for bad in ["", "two words", "x" * 33, "tab\there"]:
        with pytest.raises(messenger.InvalidName):
            messenger.Client(tracker, bad)


def test_group_requests(tracker: messenger.Tracker, ann: messenger.Client) -> None:
    with pytest.raises(messenger.UnknownGroup):
        ann.members("nowhere")
    with pytest.raises(messenger.UnknownGroup):
        ann.leave("nowhere")
    with pytest.raises(messenger.InvalidName):
        ann.join("bad name")
    ann.join("lobby")
    with pytest.raises(messenger.AlreadyMember):
        ann.join("lobby")
    with pytest.raises(messenger.OrderMismatch, match="fifo"):
        with messenger.Client(tracker, "bob") as bob:
            bob.join("lobby", order="total")
    with messenger.Client(tracker, "cid") as cid:
        with pytest.raises(messenger.NotAMember):
            cid.leave("lobby")  # the tracker refuses
        with pytest.raises(messenger.NotAMember):
            cid.send("lobby", "hello")  # the client knows it is not a member
    with pytest.raises(messenger.MessageTooLarge, match="1200"):
        ann.send("lobby", b"x" * 100_000)


def test_access_policy(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[group]]\nname = "ops"\npassword = "s3cret"\n\n'
        '[[group]]\nname = "solo"\nmax_members = 1\n\n'
        '[[group]]\npattern = "team-*"\nallow = ["ann"]\n'
    )
    with messenger.Tracker(policy=policy) as tracker:
        with messenger.Client(tracker, "ann") as ann, messenger.Client(tracker, "bob") as bob:
            with pytest.raises(messenger.AccessDenied, match="password"):
                ann.join("ops")
            with pytest.raises(messenger.AccessDenied, match="wrong password"):
                ann.join("ops", password="guess")
            assert ann.join("ops", password="s3cret").group == "ops"
            ann.join("solo")
            with pytest.raises(messenger.GroupFull):
                bob.join("solo")
            ann.join("team-a")
            with pytest.raises(messenger.AccessDenied):
                bob.join("team-a")


def test_tracker_unavailable() -> None:
    with pytest.raises(messenger.TrackerUnavailable):
        messenger.Client(("127.0.0.1", free_port()), "ann")


def test_closed(tracker: messenger.Tracker) -> None:
    client = messenger.Client(tracker, "ann")
    client.join("lobby")
    final = client.quit()
    assert final.sent == 0
    calls: List[Callable[[], object]] = [
        lambda: client.send("lobby", "late"),
        lambda: client.join("other"),
        lambda: client.groups(),
        lambda: client.quit(),
    ]
    for call in calls:
        with pytest.raises(messenger.ClosedError):
            call()
    client.__exit__(None, None, None)  # after quit(): nothing left to do, no error
    assert client.metrics().sent == 0

    tracker.close()
    tracker.close()  # twice is fine
    with pytest.raises(messenger.ClosedError):
        tracker.stats()


def test_configuration(tracker: messenger.Tracker, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(messenger.ConfigError, match="cannot read the policy file"):
        messenger.Tracker(policy="/nonexistent/policy.toml")
    with pytest.raises(messenger.ConfigError):
        messenger.Client("not an address", "ann")
    with pytest.raises(messenger.ConfigError):
        messenger.Client(tracker, "ann", udp="nowhere")
    with pytest.raises(messenger.ConfigError):
        messenger.log_to_stderr("[[[")
    with pytest.raises(messenger.ConfigError, match="unknown key `drop`"):
        messenger.Client(tracker, "ann", faults="drop=0.5")
    with pytest.raises(messenger.ConfigError, match="probability"):
        messenger.Client(tracker, "ann", faults="loss=1.5")
    monkeypatch.setenv("MESSENGER_FAULTS", "loss=2")
    with pytest.raises(messenger.ConfigError, match="probability"):
        messenger.Client(tracker, "ann")


def test_network_error_has_the_os_error_as_cause(tracker: messenger.Tracker) -> None:
    with pytest.raises(messenger.NetworkError) as caught:
        messenger.Tracker(bind=tracker.address)
    assert isinstance(caught.value.__cause__, OSError)


def test_protocol_error_from_a_tracker_that_speaks_garbage() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_garbage() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"\x00\x00\x00\x03\xff\xff\xff")
            conn.recv(4096)  # until the client hangs up

    helper = threading.Thread(target=answer_garbage, daemon=True)
    helper.start()
    try:
        with pytest.raises(messenger.ProtocolError):
            # Plain frames: the fake tracker speaks no TLS (a TLS client would refuse it as
            # not trusted before reading any frame).
            messenger.Client(server.getsockname(), "ann", insecure=True)
    finally:
        helper.join(10)
        server.close()


def test_argument_errors(tracker: messenger.Tracker, ann: messenger.Client) -> None:
    ann.join("lobby")
    with pytest.raises(TypeError, match="str or bytes"):
        ann.send("lobby", 42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fifo"):
        ann.join("other", order="sorted")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callable"):
        messenger.Client(tracker, "bob", on_message=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tracker must be"):
        messenger.Client(5, "bob")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ann.flush(-1)
    with pytest.raises(ValueError):
        messenger.Tracker(heartbeat_interval=0)
    for window in [0, -1, 65_537, 10**30]:
        with pytest.raises(ValueError, match="window"):
            messenger.Client(tracker, "bob", window=window)
    with pytest.raises(TypeError):
        messenger.Client(tracker, "bob", window=16.0)  # type: ignore[arg-type]
    for timeout in [0.0, -1.0, float("nan"), float("inf")]:
        with pytest.raises(ValueError, match="suspect_timeout"):
            messenger.Client(tracker, "bob", suspect_timeout=timeout)
    # The accepted extremes connect.
    for window in [1, 65_536]:
        with messenger.Client(tracker, "bob", window=window):
            pass
