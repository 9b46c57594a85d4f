"""The examples of docs/PYTHON.md run as written: every block fenced ```python is a complete
program (fragments are fenced ```py). Each runs in a child process; its output is checked."""

import re
from typing import Callable, List

from conftest import REPO, Process

DOC = REPO / "docs" / "PYTHON.md"


def python_blocks() -> List[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_the_doc_has_one_complete_program() -> None:
    # If a block is added, give it its own check below.
    assert len(python_blocks()) == 1


def test_the_callback_api_example(processes: Callable[..., Process]) -> None:
    (program,) = python_blocks()
    child = processes(["-c", program])
    lines = child.rest()
    assert child.wait() == 0, "\n".join(child.all_stderr())
    assert child.all_stderr() == []

    # alice's views as she and bob join; after the example bob leaves first, and alice may
    # or may not see that view before she quits herself.
    assert lines[:2] == [
        "lobby view 1: ['alice'] +['alice'] -[]",
        "lobby view 2: ['alice', 'bob'] +['bob'] -[]",
    ], lines
    rest = lines[2:]
    if rest and rest[-1] == "lobby view 3: ['alice'] +[] -['bob']":
        rest.pop()
    # Both messages, in the group's agreed order (either may come first).
    messages, rest = rest[:2], rest[2:]
    patterns = [
        r"^\[lobby\] alice #1: 'hello' \(\d+\.\d\d ms\)$",
        r"^\[lobby\] bob #1: '\\x00binary is fine' \(\d+\.\d\d ms\)$",
    ]
    for pattern in patterns:
        assert sum(1 for line in messages if re.match(pattern, line)) == 1, (pattern, lines)
    assert rest[0] == "['alice', 'bob'] [GroupInfo(name=\"lobby\", order=\"total\", members=2)]"
    assert rest[1] == "-----Performance analytics -----"
    assert re.match(r"^System throughput = \d+\.\d\d messages/sec$", rest[2]), rest
    assert rest[3].startswith("System latency = ")
    assert rest[4] == "Messages sent = 1 / Messages received = 1 / Total messages = 2"
    assert len(rest) == 5, lines
