"""`glan completion SHELL`: the script that makes SHELL complete glan's commands, options and values.

argcomplete (a well-kept library, the one pip's and pipx's users know) answers at TAB time by running glan's own
parser, so what completes is what `glan --help` lists, and --disciplines and --preset complete from the taxonomy
the command line names (or ./taxonomy.yaml). A TAB costs what `glan --version` costs, the CLI's start-up (its
parser imports glan.plan, and through it datasets: about 1.2 s of CPU on the development machine)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..config.run import DEFAULT_TAXONOMY

SHELLS = ("bash", "zsh", "fish", "tcsh", "powershell")


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "completion",
        help="print the shell completion script for glan",
        description='Print the script that makes SHELL complete glan. Bash: `eval "$(glan completion bash)"` in '
        "~/.bashrc; zsh: the same in ~/.zshrc; fish: `glan completion fish | source` in "
        "~/.config/fish/config.fish.",
    )
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(run=run)


def run(args) -> int:
    import argcomplete

    print(argcomplete.shellcode(["glan"], shell=args.shell))
    return 0


def complete(parser: argparse.ArgumentParser) -> None:
    """Answer the shell and exit when glan runs for a completion (argcomplete's environment says so); else nothing."""
    import argcomplete

    argcomplete.autocomplete(parser)


def completes(action: argparse.Action, completer: Callable[..., list[str]]) -> None:
    """Let `completer(prefix, parsed_args)` give the values of `action`'s option at TAB time."""
    setattr(action, "completer", completer)  # noqa: B010 (argcomplete reads an attribute argparse does not declare)


def _taxonomy(parsed_args):
    from ..taxonomy import TaxonomyError, load_taxonomy

    try:
        return load_taxonomy(getattr(parsed_args, "taxonomy", None) or DEFAULT_TAXONOMY)
    except TaxonomyError:
        return None


def disciplines(prefix: str, parsed_args, **_) -> list[str]:
    """Ids and names of the taxonomy's disciplines, for the part after the last comma."""
    taxonomy = _taxonomy(parsed_args)
    if taxonomy is None:
        return []
    done, _comma, part = prefix.rpartition(",")
    head = f"{done}," if done else ""
    names = [name for ref in taxonomy.disciplines() for name in (ref.discipline_id, ref.discipline)]
    return [head + name for name in names if name.casefold().startswith(part.strip().casefold())]


def presets(prefix: str, parsed_args, **_) -> list[str]:
    taxonomy = _taxonomy(parsed_args)
    return [name for name in sorted(taxonomy.presets) if name.startswith(prefix)] if taxonomy else []
