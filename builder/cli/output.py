"""Where a command's words go: stdout holds its result (a table, YAML, or with --json one JSON document), stderr
its messages through the `glan` logger, at the level -q/-v choose, and a command that writes a work dir (build,
taxonomy propose) also writes every message of its run, at every level, to <work dir>/logs/<time>-<command>.log.

Only glan's own logger is handled: the HTTP clients' loggers (which may print request headers, a token among them)
never reach the log file or the terminal through it."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import errno
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("glan")
LOGS_DIR = "logs"
SECRET_FLAGS = ("--token",)


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="verbosity",
        action="store_const",
        const=logging.WARNING,
        help="print warnings and errors only",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="verbosity",
        action="store_const",
        const=logging.DEBUG,
        help="print what glan decides too",
    )
    parser.set_defaults(verbosity=logging.INFO)


class _TerminalOnly(logging.Filter):
    """Drops the records meant for the log file alone (extra={"file_only": True}: the status lines a bar shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)


@contextlib.contextmanager
def messages(args: argparse.Namespace, argv: list[str]) -> Iterator[None]:
    """The `glan` logger for one command: to stderr at args.verbosity, and to a log file in the work dir for the
    commands that write one (args.log_file)."""
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(getattr(args, "verbosity", logging.INFO))
    terminal.setFormatter(logging.Formatter("%(message)s"))
    terminal.addFilter(_TerminalOnly())
    handlers: list[logging.Handler] = [terminal]
    if getattr(args, "log_file", False):
        command = "-".join(part for part in (args.command, getattr(args, "taxonomy_command", None)) if part)
        handlers.append(WorkDirLog(Path(args.work_dir), command))
    for handler in handlers:
        handler.addFilter(_Secrets())
    saved = (log.level, log.propagate, list(log.handlers))
    log.handlers[:] = handlers
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.debug(f"glan {' '.join(_redacted(argv))} (pid {os.getpid()}, cwd {Path.cwd()})")
    try:
        yield
    finally:
        for handler in handlers:
            handler.close()
        log.setLevel(saved[0])
        log.propagate = saved[1]
        log.handlers[:] = saved[2]


class WorkDirLog(logging.Handler):
    """Every record of the run, at every level, in <work dir>/logs/<UTC time to the microsecond>-<command>-<pid>.log.

    The records wait in memory until the work dir exists: a command refused before it made one (bad input) leaves
    nothing behind, and one that made it logs from its first line. A work dir that cannot hold the file costs the
    log file, not the run."""

    def __init__(self, work_dir: Path, command: str):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        self.work_dir, self.path = work_dir, work_dir / LOGS_DIR / f"{started}-{command}-{os.getpid()}.log"
        self.waiting: list[str] | None = []  # None once the file is open, or given up
        self.file: TextIO | None = None

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record) + "\n"
        if self.waiting is not None:
            self.waiting.append(line)
            self._open()
        elif self.file is not None:
            self.file.write(line)
            self.file.flush()

    def _open(self) -> None:
        if self.waiting is None or not self.work_dir.is_dir():
            return
        try:
            self.path.parent.mkdir(exist_ok=True)
            if self.path.parent.is_symlink():  # the log goes in the work dir, nowhere a link points
                raise OSError(errno.ELOOP, "a symbolic link")
            # A new file, never through a link: its name is this run's alone.
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            self.file = open(descriptor, "w", encoding="utf-8")  # noqa: SIM115 (held until close())
            self.file.writelines(self.waiting)
            self.file.flush()
        except OSError as error:
            print(f"glan: warning: no log file: cannot write {self.path} ({error.strerror or error}).", file=sys.stderr)
        self.waiting = None

    def close(self) -> None:
        self._open()
        if self.file is not None:
            self.file.close()
        super().close()


def _redacted(argv: list[str]) -> list[str]:
    """The command line for the log file, every secret's value replaced: a secret flag's, however abbreviated
    (argparse takes `--tok` for `--token`), and a --set of a key's *name* (`...api_key_env=sk-...`: a key pasted
    where its variable's name belongs). A URL's user and password go by the _Secrets filter, as in every line."""
    shown, flag = [], None  # flag: the secret-bearing option whose value the next word is
    for arg in argv:
        if flag is not None:
            shown.append(_value_shown(flag, arg))
            flag = None
            continue
        name, equals, value = arg.partition("=")
        if name.startswith("--") and equals:
            shown.append(f"{name}={_value_shown(name, value)}")
        else:
            shown.append(arg)
            # Only such an option takes the next word: after a flag without a value (--verbose) comes the next flag.
            flag = arg if _abbreviates(arg, (*SECRET_FLAGS, "--set")) else None
    return shown


def _value_shown(flag: str, value: str) -> str:
    if _abbreviates(flag, SECRET_FLAGS):
        return "***"
    key = value.partition("=")[0]
    if _abbreviates(flag, ("--set",)) and key.endswith("api_key_env"):
        return f"{key}=***"
    return value


def _abbreviates(flag: str, options: tuple[str, ...]) -> bool:
    """Whether argparse reads `flag` as one of `options` (a long option's unambiguous prefix)."""
    return flag.startswith("--") and len(flag) > 2 and any(option.startswith(flag) for option in options)


class _Secrets(logging.Filter):
    """Takes the user and password out of every URL a message names (`--base-url https://user:key@host/v1`)."""

    USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.USERINFO.sub(r"\1***@", record.getMessage()), ()
        return True


def print_json(value: Any) -> None:
    """One JSON document on stdout: a value with a to_dict() (an Estimate, a BuildResult) as what that gives, other
    dataclasses as objects (whatever fields they hold), paths as strings."""
    print(json.dumps(value, default=_plain, indent=2, ensure_ascii=False))


def _plain(value: Any) -> Any:
    if callable(getattr(value, "to_dict", None)) and not isinstance(value, type):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def add_token_flag(parser: argparse.ArgumentParser) -> None:
    """--token of the commands that talk to the Hub (push, pull)."""
    parser.add_argument(
        "--token",
        help="Hugging Face token (default: HF_TOKEN, else `hf auth login`'s); sent to the Hub, written nowhere. "
        "HF_TOKEN keeps it out of the process list and the shell history",
    )


def refused_the_token(error: BaseException) -> bool:
    """The Hub answered 401 Unauthorized."""
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None) == 401


def hub_progress_bars() -> None:
    """huggingface_hub's bars on a terminal only: elsewhere (CI, a pipe) each redraw is a line of escape codes. As
    `glan build` does for datasets' bars; HF_HUB_DISABLE_PROGRESS_BARS, when set, decides instead."""
    from huggingface_hub.utils import disable_progress_bars

    if not sys.stderr.isatty() and os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") is None:
        disable_progress_bars()
