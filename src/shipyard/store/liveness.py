"""Is the process that started a run still running? Found by process id, host and process start time.

A run records ``(pid, host, start time)`` when it starts; a run still ``running`` whose process on this host is
gone (or whose pid now belongs to a later process) was killed without recording it.
"""

from __future__ import annotations

import os
import socket


def process_started(pid: int) -> int | None:
    """When the process started (clock ticks since boot, from /proc), to tell a live run from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            # the command name (field 2) may hold spaces; fields after its closing parenthesis are fixed
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, started: int | None) -> bool:
    """Whether process ``pid`` on this host still runs (and is the one that started the run)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    if started is not None:
        now = process_started(pid)
        if now is not None and now != started:
            return False  # the pid was reused by a later process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped
                return False
    except (OSError, IndexError):
        pass
    return True


def this_process() -> tuple[int, str, int | None]:
    pid = os.getpid()
    return pid, socket.gethostname(), process_started(pid)
