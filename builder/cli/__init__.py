"""The `glan` command line, one module per command.

Exit codes: 0 ok, 1 finished with failures over the threshold or stopped by a budget (or glan crashed
on a bug: then a traceback says so), 2 bad input, 130 interrupted (docs/errors.md). Heavy imports
(datasets, openai) happen inside the commands, so `glan --help` is quick.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from ..errors import UserError
from ..version import __version__
from . import batches, build, cache, completion, estimate, init, pull, push, serve_local, show, taxonomy
from .output import add_verbosity_flags, log, messages
from .run import preset_help


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default; an option that is unset by default says in its help what
    happens then, rather than "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, "", []):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """intermixed=True lets positionals follow options, as in `glan pull REPO --revision v1.0.0 DIR`: a
    plain parse fills every positional from the first run of them and leaves DIR unrecognized."""

    def __init__(self, *args, intermixed: bool = False, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self._intermixed = intermixed

    def error(self, message: str):
        # One line instead of argparse's usage block: the flag, what was expected, where to look.
        self.exit(2, f"glan: {message}. See `{self.prog} --help`.\n")

    def parse_known_args(self, args=None, namespace=None):
        if not self._intermixed:
            return super().parse_known_args(args, namespace)
        self._intermixed = False  # parse_known_intermixed_args calls back into parse_known_args
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixed = True


def _parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="glan",
        description="GLAN synthetic instruction data from a taxonomy.",
        epilog="Exit codes: 0 ok, 1 finished with failures over the threshold, stopped by a budget, "
        "failed on the way or crashed on a bug (with a traceback), 2 bad input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"glan {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    presets = preset_help(argv)
    init.add_parser(commands)
    build.add_parser(commands, presets)
    estimate.add_parser(commands, presets)
    batches.add_parser(commands)
    cache.add_parser(commands)
    taxonomy.add_parser(commands, presets)
    serve_local.add_parser(commands)
    show.add_parser(commands)
    push.add_parser(commands)
    pull.add_parser(commands)
    completion.add_parser(commands)
    for command in _leaves(commands):
        add_verbosity_flags(command)
    return parser


def _leaves(commands: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    """The parsers that run a command (`glan build`, `glan taxonomy list`), not those that only hold commands."""
    leaves = []
    for command in commands.choices.values():
        nested = [action for action in command._actions if isinstance(action, argparse._SubParsersAction)]
        leaves += [leaf for action in nested for leaf in _leaves(action)] if nested else [command]
    return leaves


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser(argv)
    completion.complete(parser)
    args = parser.parse_args(argv)
    with messages(args, argv):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.run(args)
    except UserError as error:
        log.error(f"glan: {error}")
        return error.exit_code
    except KeyboardInterrupt:
        log.error("glan: interrupted. Every response received so far is cached: run the same command to resume.")
        return 130
    except Exception:
        log.error(traceback.format_exc().rstrip("\n"))
        log.error(
            "glan: this is a bug in glan, not a problem with your input. Please report it with the traceback "
            "above and the command you ran to the issue tracker of the repository you installed glan from."
        )
        return 1
