"""The API of the project's original Python scripts, driving the Rust core.

The first scripts run with only their Python 2 ``print`` statements ported and their import
pointed here::

    from messenger.classic import Client

    client = Client("127.0.0.1", 0, mode="TOTAL_ORDER")
    client.register("127.0.0.1", 50000)       # asks for a username, then chats on stdin

and ``Tracker("127.0.0.1", 50000).connect()`` runs a tracker until Ctrl-C.

The chat reads one command or message per line: ``!g`` (or ``!lg``) lists the groups, ``!lm
<group>`` a group's members, ``!j <group>`` joins (a group it creates uses the client's mode),
``!w <group>`` chooses where plain lines go, ``!e <group>`` leaves, ``!q`` quits. Delivered
messages print as ``in <group> <user> says:: <text>``. At ``!q``, at the end of the input or on
Ctrl-C the metrics block is printed (and reported to the tracker).
"""

import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Dict, Optional, Set

from messenger._messenger import (
    Client as _Client,
    ClosedError,
    GroupView,
    InvalidName,
    Lost,
    Message,
    MessengerError,
    NetworkError,
    OrderMismatch,
    Reconnected,
    RejoinFailed,
    Removed,
    TrackerLost,
    TrackerUnavailable,
    UsernameTaken,
    log_to_stderr,
)
from messenger._messenger import Tracker as _Tracker

if TYPE_CHECKING:
    from messenger._messenger import _Order

__all__ = ["Client", "Tracker", "MODES"]

#: The ordering modes of the original scripts, and the order a group created in each has.
MODES: Dict[str, "_Order"] = {"FIFO": "fifo", "TOTAL_ORDER": "total"}

#: At ``!q`` and at the end of the input, how long to wait (seconds) for this client's own
#: messages to reach every member (and come back in the group's order) before quitting.
DRAIN_TIMEOUT = 10.0

#: Before leaving a group, how long to let what was just said reach everyone.
LEAVE_FLUSH = 2.0


def _host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    if ":" in host and not host.startswith("["):
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host, port)


class Client(object):
    """A chat client of the original scripts: ``Client(ip, udp_port, mode='FIFO')``.

    ``ip`` and ``udp_port`` are where this client receives datagrams (port 0: any free port).
    ``mode`` is ``'FIFO'`` or ``'TOTAL_ORDER'``; anything else prints ``Unsupported message
    ordering mode`` and exits with status 3.
    """

    def __init__(self, ip: str, udp_port: int, mode: str = "FIFO") -> None:
        if mode not in MODES:
            print("Unsupported message ordering mode")
            sys.exit(3)
        self.ip = ip
        self.udp_port = int(udp_port)
        self.mode = mode
        self._order = MODES[mode]
        self._client: Optional[_Client] = None
        self._username = ""
        self._current: Optional[str] = None
        self._groups: Set[str] = set()
        # Own messages per group: the last sequence number sent, the last delivered back.
        self._sent: Dict[str, int] = {}
        self._back: Dict[str, int] = {}
        self._state = threading.Condition()
        self._print_lock = threading.Lock()

    # --- the script's entry point -------------------------------------------------------------

    def register(
        self,
        server_ip: str,
        server_port: int,
        input_fd: Optional[IO[str]] = None,
        username: Optional[str] = None,
    ) -> None:
        """Registers with the tracker at ``server_ip:server_port`` and runs the chat.

        ``input_fd`` (default ``sys.stdin``) is where commands and messages are read: a
        terminal or any file. Without ``username`` it prompts ``Enter your username: `` and
        asks again while the name is taken or invalid. Returns after ``!q``, the end of the
        input or Ctrl-C, having printed the metrics block.
        """
        stream = sys.stdin if input_fd is None else input_fd
        try:
            client = self._connect(server_ip, int(server_port), stream, username)
        except KeyboardInterrupt:
            self._say("")
            return
        if client is None:
            return
        self._client = client
        self._say("Successfully registered to messenger application!")
        try:
            self._chat(stream)
            self._drain(DRAIN_TIMEOUT)
        except KeyboardInterrupt:
            self._say("")
        self._finish()

    # --- registration -------------------------------------------------------------------------

    def _connect(
        self, server_ip: str, server_port: int, stream: IO[str], username: Optional[str]
    ) -> Optional[_Client]:
        while True:
            if username is None:
                username = self._ask("Enter your username: ", stream)
                if username is None:
                    return None
            try:
                client = _Client(
                    (server_ip, server_port),
                    username,
                    udp=_host_port(self.ip, self.udp_port),
                    on_message=self._on_message,
                    on_view=self._on_view,
                    on_event=self._on_event,
                )
            except (UsernameTaken, InvalidName) as e:
                self._say("%s: choose another username" % e)
                username = None
                continue
            except (TrackerUnavailable, NetworkError) as e:
                print(
                    "cannot register with the tracker at %s: %s"
                    % (_host_port(server_ip, server_port), e),
                    file=sys.stderr,
                )
                raise SystemExit(1)
            self._username = username
            return client

    # --- the chat -----------------------------------------------------------------------------

    def _chat(self, stream: IO[str]) -> None:
        """Runs commands until ``!q`` or the end of the input."""
        while True:
            line = self._read(stream)
            if line is None:
                return
            line = line.strip()
            if not line:
                continue
            if not line.startswith("!"):
                self._send(line)
                continue
            command, _, argument = line.partition(" ")
            argument = argument.strip()
            if command == "!q":
                return
            if command in ("!g", "!lg"):
                self._list_groups()
            elif command in ("!lm", "!j", "!w", "!e"):
                if not argument or " " in argument:
                    self._say("usage: %s <group>" % command)
                elif command == "!lm":
                    self._list_members(argument)
                elif command == "!j":
                    self._join(argument)
                elif command == "!w":
                    self._write_to(argument)
                else:
                    self._leave(argument)
            else:
                self._say(
                    "unknown command %s: the commands are !g, !lm <group>, !j <group>, "
                    "!w <group>, !e <group> and !q" % command
                )

    def _list_groups(self) -> None:
        try:
            groups = sorted(self._messenger().groups(), key=lambda g: g.name)
        except MessengerError as e:
            return self._error(e)
        if not groups:
            return self._say("groups: none yet (!j <group> creates one)")
        names = ", ".join("%s (%s)" % (g.name, _mode_of(g.order)) for g in groups)
        self._say("groups: " + names)

    def _list_members(self, group: str) -> None:
        try:
            members = self._messenger().members(group)
        except MessengerError as e:
            return self._error(e)
        self._say("members: " + ", ".join(m.name for m in members))

    def _join(self, group: str) -> None:
        try:
            self._messenger().join(group, order=self._order)
        except OrderMismatch:
            other = "TOTAL_ORDER" if self.mode == "FIFO" else "FIFO"
            return self._say(
                "error: cannot join %s: it is a %s group and this client runs in %s mode"
                % (group, other, self.mode)
            )
        except MessengerError as e:
            return self._error(e)
        with self._state:
            self._groups.add(group)
        self._current = group
        self._say("joined %s; your messages go to %s" % (group, group))

    def _write_to(self, group: str) -> None:
        with self._state:
            member = group in self._groups
        if not member:
            return self._say("error: you are not in %s: use !j %s to join it" % (group, group))
        self._current = group
        self._say("your messages go to %s" % group)

    def _leave(self, group: str) -> None:
        client = self._messenger()
        try:
            client.flush(LEAVE_FLUSH)
            client.leave(group)
        except MessengerError as e:
            return self._error(e)
        self._forget(group)
        self._say("left %s" % group)

    def _send(self, text: str) -> None:
        group = self._current
        if group is None:
            return self._say("error: no group chosen: use !j <group> or !w <group> first")
        try:
            seq = self._messenger().send(group, text)
        except MessengerError as e:
            return self._error(e)
        with self._state:
            self._sent[group] = max(seq, self._sent.get(group, 0))

    def _drain(self, timeout: float) -> None:
        """Waits (at most ``timeout``) until every own message is held by every member and,
        delivered back here, in its place in the group's order."""
        deadline = time.monotonic() + timeout
        try:
            stable = self._messenger().flush(timeout)
        except MessengerError:
            stable = False
        with self._state:
            back = self._state.wait_for(
                lambda: all(self._back.get(g, 0) >= seq for g, seq in self._sent.items()),
                max(0.0, deadline - time.monotonic()),
            )
        if not (stable and back):
            self._say(
                "* gave up waiting after %.1f s: some of your messages may not have reached "
                "everyone" % timeout
            )

    def _finish(self) -> None:
        """Quits (reporting the metrics to the tracker) and prints the metrics block."""
        client = self._messenger()
        try:
            metrics = client.quit()
        except (MessengerError, KeyboardInterrupt) as e:
            if not isinstance(e, ClosedError):
                why = str(e) or "interrupted"
                self._say("could not report the metrics to the tracker: %s" % why)
            metrics = client.metrics()
        self._say(str(metrics))

    # --- callbacks (on the client's thread) ---------------------------------------------------

    def _on_message(self, message: Message) -> None:
        if message.own:
            with self._state:
                self._back[message.group] = message.seq
                self._state.notify_all()
        self._say("in %s %s says:: %s" % (message.group, message.sender, message.text))

    def _on_view(self, view: GroupView) -> None:
        if self._username in view.joined:
            return
        for name in view.joined:
            self._say("* %s joined %s" % (name, view.group))
        for name in view.left:
            if name != self._username:
                self._say("* %s left %s" % (name, view.group))

    def _on_event(self, event: object) -> None:
        if isinstance(event, TrackerLost):
            self._say("* lost the tracker (%s); reconnecting" % event.reason)
        elif isinstance(event, Reconnected):
            self._say("* reconnected to the tracker")
        elif isinstance(event, RejoinFailed):
            self._forget(event.group)
            self._say("* could not re-join %s: %s" % (event.group, event.reason))
        elif isinstance(event, Removed):
            self._forget(event.group)
            self._say("* removed from %s" % event.group)
        elif isinstance(event, Lost):
            self._say(
                "* messages %d to %d of %s in %s are lost"
                % (event.first, event.last, event.sender, event.group)
            )

    # --- helpers ------------------------------------------------------------------------------

    def _messenger(self) -> _Client:
        if self._client is None:
            raise ClosedError("not registered")
        return self._client

    def _forget(self, group: str) -> None:
        with self._state:
            self._groups.discard(group)
            self._sent.pop(group, None)
            self._back.pop(group, None)
            self._state.notify_all()
        if self._current == group:
            self._current = None

    def _error(self, error: MessengerError) -> None:
        self._say("error: %s" % error)

    def _say(self, text: str) -> None:
        with self._print_lock:
            print(text, flush=True)

    def _ask(self, prompt: str, stream: IO[str]) -> Optional[str]:
        """One line typed after ``prompt``; None at the end of the input."""
        if stream is sys.stdin and _isatty(stream):
            try:
                return input(prompt).strip()
            except EOFError:
                return None
        # A piped answer does not end the prompt's line: end it here.
        self._say(prompt)
        line = stream.readline()
        return line.strip() if line else None

    def _read(self, stream: IO[str]) -> Optional[str]:
        if stream is sys.stdin and _isatty(stream):
            try:
                return input()
            except EOFError:
                return None
        line = stream.readline()
        return line if line else None


class Tracker(object):
    """The tracker of the original scripts: ``Tracker(host, port).connect()`` runs it in the
    foreground until Ctrl-C, logging joins, leaves, failures and each client's metrics to
    stderr."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = int(port)

    def connect(self) -> None:
        log_to_stderr()
        address = _host_port(self.host, self.port)
        try:
            tracker = _Tracker(address)
        except MessengerError as e:
            print("cannot run a tracker on %s: %s" % (address, e), file=sys.stderr)
            raise SystemExit(1)
        print("Tracker running on %s (Ctrl-C stops it)" % tracker.address, flush=True)
        try:
            # Woken only by Ctrl-C (KeyboardInterrupt) or another signal handler's exception.
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            tracker.close()
        print("Tracker stopped", flush=True)


def _isatty(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _mode_of(order: str) -> str:
    return "TOTAL_ORDER" if order == "total" else "FIFO"
