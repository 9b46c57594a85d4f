"""A smoke test of the installed wheel, run on every supported CPython (mk/python.mk runs it
on 3.9 and 3.13 with the one abi3 wheel). Plain Python, no pytest: `python smoke.py`."""

import sys
import threading
from typing import Any, List, Tuple

import messenger
import messenger.classic


def main() -> None:
    got = threading.Condition()
    received: List[Tuple[str, int, bytes, str]] = []
    members = threading.Event()
    reported: List[Any] = []
    sys.unraisablehook = reported.append

    def on_message(m: messenger.Message) -> None:
        with got:
            received.append((m.sender, m.seq, m.data, m.text))
            got.notify_all()
        raise RuntimeError("reported, and delivery goes on")

    def on_view(v: messenger.GroupView) -> None:
        if len(v.members) == 2:
            members.set()

    with messenger.Tracker() as tracker:
        with messenger.Client(tracker, "ann", on_view=on_view) as ann, messenger.Client(
            tracker.address, "bob", on_message=on_message
        ) as bob:
            ann.join("smoke", order="total")
            bob.join("smoke", order="total")
            assert members.wait(20), "views"
            ann.send("smoke", "h\u00e9")
            ann.send("smoke", b"\x00\xff")
            with got:
                assert got.wait_for(lambda: len(received) == 2, 20), received
            assert received == [
                ("ann", 1, "h\u00e9".encode(), "h\u00e9"),
                ("ann", 2, b"\x00\xff", "\x00\ufffd"),
            ], received
            assert len(reported) == 2 and reported[0].exc_type is RuntimeError
            assert [m.name for m in bob.members("smoke")] == ["ann", "bob"]
            try:
                messenger.Client(tracker, "ann")
                raise AssertionError("a taken username was accepted")
            except messenger.UsernameTaken:
                pass
            try:
                bob.join("smoke", order="fifo")
                raise AssertionError("joined twice")
            except messenger.AlreadyMember:
                pass
        assert str(ann.metrics()).startswith("-----Performance analytics -----")
        assert tracker.stats().clients == 0
    assert messenger.classic.MODES == {"FIFO": "fifo", "TOTAL_ORDER": "total"}
    print(
        "smoke test passed: messenger %s on Python %s"
        % (messenger.__version__, sys.version.split()[0])
    )


if __name__ == "__main__":
    main()
