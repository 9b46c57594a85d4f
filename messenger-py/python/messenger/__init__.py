"""Group messaging on a Rust core: a tracker for membership, UDP peer to peer for data.

Each group delivers in ``"fifo"`` order (every sender's messages in the order sent) or in
``"total"`` order (fifo, and every member delivers all messages in one agreed order)::

    import messenger

    with messenger.Tracker() as tracker:
        with messenger.Client(tracker, "alice", on_message=print) as alice:
            alice.join("lobby", order="total")
            alice.send("lobby", "hello")

Blocking calls release the GIL and can be interrupted with Ctrl-C. Callbacks run on the
client's own thread, one at a time, in delivery order per group; an exception raised in one
goes to ``on_error`` (or ``sys.unraisablehook``) and later deliveries go on.

``messenger.classic`` has the API of the project's original scripts. docs/PYTHON.md has the
rest.
"""

from typing import Union

from messenger._messenger import (
    AccessDenied,
    AlreadyMember,
    Client,
    ClosedError,
    ConfigError,
    FaultCounts,
    GroupFull,
    GroupInfo,
    GroupView,
    InvalidName,
    LimitReached,
    Lost,
    Member,
    Message,
    MessageTooLarge,
    MessengerError,
    Metrics,
    NetworkError,
    NotAMember,
    OrderMismatch,
    ProtocolError,
    Reconnected,
    RejoinFailed,
    Removed,
    Tracker,
    TrackerLost,
    TrackerStats,
    TrackerNotTrusted,
    TrackerUnavailable,
    UnknownGroup,
    UsernameTaken,
    __version__,
    log_to_stderr,
)

#: What ``on_event`` receives.
Event = Union[TrackerLost, Reconnected, RejoinFailed, Removed, Lost]

__all__ = [
    "AccessDenied",
    "AlreadyMember",
    "Client",
    "ClosedError",
    "ConfigError",
    "Event",
    "FaultCounts",
    "GroupFull",
    "GroupInfo",
    "GroupView",
    "InvalidName",
    "LimitReached",
    "Lost",
    "Member",
    "Message",
    "MessageTooLarge",
    "MessengerError",
    "Metrics",
    "NetworkError",
    "NotAMember",
    "OrderMismatch",
    "ProtocolError",
    "Reconnected",
    "RejoinFailed",
    "Removed",
    "Tracker",
    "TrackerLost",
    "TrackerStats",
    "TrackerNotTrusted",
    "TrackerUnavailable",
    "UnknownGroup",
    "UsernameTaken",
    "__version__",
    "log_to_stderr",
]
