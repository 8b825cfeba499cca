"""One build per work dir at a time: a second process gets a clear refusal, not a corrupted cache."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


class WorkDirBusy(UserError):
    """Another process holds the work dir's lock."""


@contextmanager
def exclusive(work_dir: Path):
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    lock_path = work_dir / "lock"
    with open(lock_path, "a+") as lock:
        try:
            # flock is released by the kernel when the process dies, even on SIGKILL: no stale locks.
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise WorkDirBusy(
                f"{work_dir}: another glan build (pid {holder}) is using this work dir. "
                "Wait for it to finish, or pass a different --work-dir.") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield
