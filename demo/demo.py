#!/usr/bin/env python3
"""The messenger chat client, as the project's first script was, now driving the Rust core.

    python3 demo/demo.py [FIFO|TOTAL_ORDER]

It asks for a username, registers with the tracker at 127.0.0.1:50000 (run demo/tracker.py
first) and reads commands from stdin: !g groups, !lm <group> members, !j <group> join,
!w <group> write to, !e <group> leave, !q quit. Anything else is a message to the current
group. Groups it creates use its mode (FIFO unless given). MESSENGER_TRACKER_PORT overrides
the tracker's port (the tests use a free one). Needs `pip install ./messenger-py`.
"""

import os
import sys

from messenger.classic import Client

SERVER_IP = "127.0.0.1"
SERVER_PORT = int(os.environ.get("MESSENGER_TRACKER_PORT", "50000"))

if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "FIFO"
    client = Client("127.0.0.1", 0, mode)
    client.register(SERVER_IP, SERVER_PORT)
