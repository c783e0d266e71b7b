"""What a spawned child process of ours does first: die with its parent, and log as it
does."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

from deltaomega.logs import JsonFormatter, configure_logging

_PR_SET_PDEATHSIG = 1


def bind_to_parent(parent: int) -> None:
    """Die with the parent (PR_SET_PDEATHSIG), even one killed by SIGKILL, and leave Ctrl-C
    to it: the parent stops its children in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)


def logging_options() -> tuple[int, bool]:
    """The parent's log level and whether it writes JSON lines, for the child's logging."""
    root = logging.getLogger()
    return root.level, any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)


def log_like_parent(options: tuple[int, bool]) -> None:
    level, json_lines = options
    configure_logging(logging.getLevelName(level), json_lines)
