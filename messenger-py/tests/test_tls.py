"""The tracker over TLS from Python: its fingerprint, pinning it (in advance, or on first use
in a known-trackers file), a wrong pin refused, and plain TCP only when both sides ask."""

from pathlib import Path

import pytest

import messenger


def test_a_tracker_object_is_pinned_by_its_own_fingerprint(tmp_path: Path) -> None:
    with messenger.Tracker(state_dir=tmp_path / "state") as tracker:
        fingerprint = tracker.fingerprint
        assert fingerprint is not None and len(fingerprint) == 95
        assert (tmp_path / "state" / "tracker-identity.pem").exists()
        with messenger.Client(tracker, "ann") as client:
            client.join("room")


def test_a_pinned_fingerprint_is_accepted_and_a_wrong_one_refused(tmp_path: Path) -> None:
    with messenger.Tracker(state_dir=tmp_path / "state") as tracker:
        assert tracker.fingerprint is not None
        with messenger.Client(tracker.address, "ann", tracker_fingerprint=tracker.fingerprint):
            pass
        wrong = ":".join(["AB"] * 32)
        with pytest.raises(messenger.TrackerNotTrusted, match="not the pinned"):
            messenger.Client(tracker.address, "bob", tracker_fingerprint=wrong)
        with pytest.raises(ValueError):
            messenger.Client(tracker.address, "cid", tracker_fingerprint="nonsense")


def test_first_use_records_the_tracker_and_a_new_key_is_refused(tmp_path: Path) -> None:
    known = tmp_path / "known_trackers"
    with messenger.Tracker(state_dir=tmp_path / "one") as first:
        address = first.address
        with messenger.Client(address, "ann", known_trackers=known):
            pass
        assert known.read_text() == f"{address} {first.fingerprint}\n"
    with messenger.Tracker(bind=address, state_dir=tmp_path / "two"):
        with pytest.raises(messenger.TrackerNotTrusted, match="delete line 1"):
            messenger.Client(address, "ann", known_trackers=known)


def test_plain_tcp_only_when_both_sides_ask() -> None:
    with messenger.Tracker(insecure=True) as plain:
        assert plain.fingerprint is None
        with messenger.Client(plain.address, "ann", insecure=True):
            pass
        with messenger.Client(plain, "bob"):  # A Tracker object says it is insecure.
            pass
        with pytest.raises(messenger.TrackerNotTrusted, match="does not speak TLS"):
            messenger.Client(plain.address, "cid")
    with messenger.Tracker() as secure:
        with pytest.raises(messenger.MessengerError, match="requires TLS"):
            messenger.Client(secure.address, "dan", insecure=True)
    with pytest.raises(ValueError):
        messenger.Tracker(insecure=True, state_dir="x")
