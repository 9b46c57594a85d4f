"""messenger.log_to_stderr(): the core's log lines reach stderr once it is called, filtered as
asked, and not before. Each case runs in a child process (logging is set up once per
process)."""

from typing import Callable, List, Optional

import pytest

from conftest import Process

# A tracker and a client in one process: the tracker logs the join (target
# messenger::tracker) and the client's metrics when it quits (target messenger::metrics).
SCRIPT = r"""
import sys
import messenger
if sys.argv[1] == "call":
    first = messenger.log_to_stderr(*sys.argv[2:])
    print("set up:", first, messenger.log_to_stderr(), flush=True)
with messenger.Tracker() as tracker:
    with messenger.Client(tracker, "ann", faults="") as ann:
        ann.join("lobby")
print("done", flush=True)
"""

JOIN = "INFO messenger::tracker: ann joined lobby as member 1"
METRICS = "INFO messenger::metrics: metrics ann: sent 0, received 0"


def run(start: Callable[..., Process], args: List[str], rust_log: Optional[str]) -> List[str]:
    """Runs SCRIPT with ``args`` and returns its stderr lines."""
    child = start(["-c", SCRIPT] + args, {"RUST_LOG": rust_log} if rust_log is not None else None)
    if args[0] == "call":
        # The first call sets logging up; a second one finds it set up already.
        child.expect("^set up: True False$")
    child.expect("^done$")
    assert child.rest() == []
    assert child.wait() == 0, "\n".join(child.all_stderr())
    return child.all_stderr()


def has(lines: List[str], text: str) -> bool:
    return any(text in line for line in lines)


@pytest.fixture(autouse=True)
def no_rust_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUST_LOG", raising=False)


def test_nothing_is_logged_without_it(processes: Callable[..., Process]) -> None:
    # Even with RUST_LOG set: it only matters once log_to_stderr() is called.
    assert run(processes, ["no-call"], rust_log="debug") == []


def test_the_default_filter_is_info(processes: Callable[..., Process]) -> None:
    stderr = run(processes, ["call"], rust_log=None)
    assert has(stderr, JOIN), stderr
    assert has(stderr, METRICS), stderr


def test_the_filter_argument_selects_targets(processes: Callable[..., Process]) -> None:
    metrics_only = run(processes, ["call", "messenger::metrics=info"], rust_log=None)
    assert has(metrics_only, METRICS) and not has(metrics_only, JOIN), metrics_only
    tracker_only = run(processes, ["call", "messenger::tracker=info"], rust_log=None)
    assert has(tracker_only, JOIN) and not has(tracker_only, METRICS), tracker_only
    # Joins are info: a warn filter hides them.
    assert not has(run(processes, ["call", "warn"], rust_log=None), JOIN)


def test_without_an_argument_rust_log_is_the_filter(processes: Callable[..., Process]) -> None:
    stderr = run(processes, ["call"], rust_log="messenger::metrics=info")
    assert has(stderr, METRICS) and not has(stderr, JOIN), stderr
    # An explicit filter wins over RUST_LOG.
    stderr = run(processes, ["call", "messenger::tracker=info"], rust_log="messenger::metrics=info")
    assert has(stderr, JOIN) and not has(stderr, METRICS), stderr
