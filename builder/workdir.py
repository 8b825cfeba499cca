"""One build per work dir at a time, and a dataset folder built or pushed, never both at once: a second process
gets a clear refusal, not a corrupted cache or a release whose files come from two builds."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError


class WorkDirBusy(UserError):
    """Another process holds the work dir's lock."""


class FolderBusy(UserError):
    """Another glan build or push holds the dataset folder's lock."""


@contextmanager
def exclusive(work_dir: Path):
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with _held(work_dir / "lock", str(os.getpid())) as holder:
        if holder is not None:
            raise WorkDirBusy(
                f"{work_dir}: another glan build (pid {holder or 'unknown'}) is using this work dir. "
                "Wait for it to finish, or pass a different --work-dir."
            )
        yield


@contextmanager
def folder_held(folder: Path, command: str):
    """`folder` (a dataset folder) for `command` ("glan build" or "glan push") alone. The lock file is beside the
    folder (.<name>.lock), not in it, since a build swaps the whole folder by rename; it is removed when done."""
    folder = Path(folder).resolve()
    with _held(folder.with_name(f".{folder.name}.lock"), f"{command} (pid {os.getpid()})", remove=True) as holder:
        if holder is not None:
            raise FolderBusy(
                f"{folder}: {holder or 'another glan build or push'} is using this folder, and a "
                f"folder is built or pushed, never both at once. Wait for it to finish, then run "
                f"{command} again."
            )
        yield


@contextmanager
def _held(lock_path: Path, holder: str, remove: bool = False):
    """Yields None once this process holds `lock_path`, else what the holder wrote into it ("" if nothing yet).
    flock is released by the kernel when the process dies, even on SIGKILL: no stale locks. A lock file that is
    removed when done is removed before it is unlocked, and a lock taken on a file that was removed meanwhile is
    taken again on the new one. A symbolic link at `lock_path` is refused (O_NOFOLLOW), not written through."""
    while True:
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError:
            if not lock_path.is_symlink():
                raise
            raise UserError(
                f"{lock_path}: a symbolic link where glan keeps a lock file, which it empties and writes; glan never "
                "writes one through a link. Remove the link, then run the same command again."
            ) from None
        with os.fdopen(descriptor, "r+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                yield lock.read().strip()
                return
            if remove and not _same_file(lock, lock_path):
                continue  # the file was removed meanwhile: take the lock again, on the new one
            try:
                lock.seek(0)
                lock.truncate()
                lock.write(holder)
                lock.flush()
                yield None
            finally:
                if remove:
                    lock_path.unlink(missing_ok=True)
            return


def _same_file(lock, lock_path: Path) -> bool:
    try:
        return os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino
    except FileNotFoundError:
        return False
