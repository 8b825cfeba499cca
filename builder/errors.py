"""The one base class of the errors a user can fix: the CLI prints `glan: <message>` and exits with
`exit_code`, no traceback. Any other exception is a bug in glan (docs/errors.md)."""

from __future__ import annotations


class UserError(Exception):
    """str(error) is the whole story in one line: where (file:line, field or flag), what is wrong, what to do."""

    exit_code = 2  # bad input: a file, a flag, the environment or the state of the work dir
