"""The work a call does, counted instead of timed: a bound in seconds passes or fails with the load of the
machine (two cores shared by the suite's processes and Airflows); the Python lines a call executes do not
depend on it. A cost that must not grow with its input (numpy over the rows, not a Python loop; a binary
search, not a scan) is proven by the same count at two sizes; a linear one by a count that doubles, not
quadruples, with the input."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import baton

BATON = Path(baton.__file__).resolve().parent  # the package under test: the working tree's or the wheel's


def python_lines(call: Callable[[], Any], under: Path | None = None) -> int:
    """The Python lines that ``call()`` executes in this thread, in every function it reaches (Baton's and
    the libraries': numpy's and scipy's Python layers, the YAML parser), or only in the files ``under`` a
    folder (``BATON``: Baton's own code); counted by a trace function, a line run again by a loop counts
    again. Work done in compiled code (a numpy reduction) is not counted."""
    lines, folder = 0, None if under is None else str(under)

    def line(frame: Any, event: str, arg: Any) -> Any:
        nonlocal lines
        if event == "line":
            lines += 1
        return line

    def called(frame: Any, event: str, arg: Any) -> Any:
        return line if folder is None or frame.f_code.co_filename.startswith(folder) else None

    previous = sys.gettrace()
    sys.settrace(called)
    try:
        call()
    finally:
        sys.settrace(previous)
    return lines
