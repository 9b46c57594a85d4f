#!/usr/bin/env python3
"""The messenger tracker, as the project's first script was, now driving the Rust core.

    python3 demo/tracker.py

Serves clients at 127.0.0.1:50000 until Ctrl-C, logging joins, leaves, failures and each
client's metrics to stderr. MESSENGER_TRACKER_PORT overrides the port (the tests use a free
one). Needs `pip install ./messenger-py`.
"""

import os

from messenger.classic import Tracker

SERVER_IP = "127.0.0.1"
SERVER_PORT = int(os.environ.get("MESSENGER_TRACKER_PORT", "50000"))

if __name__ == "__main__":
    Tracker(SERVER_IP, SERVER_PORT).connect()
