"""The one jinja2 environment of every template glan renders: prompt files and card templates.

Templates come from files a person edited or a release carried (`glan pull`), so they are untrusted input:
they render in jinja2's ImmutableSandboxedEnvironment, see nothing but the variables glan passes (no
globals: no `cycler`, `lipsum`, `range`...), and any access the sandbox refuses (an attribute starting with
`_`, a method that would change a value, a frame or code object) raises SecurityError at once instead of
rendering as an empty undefined value. `refused_access` finds the plain cases (`x.__class__`,
`x["__init__"]`, `x|attr("_y")`) without rendering, so a refused access in a branch the check's variables
do not take fails the check too (docs/security.md).
"""

from __future__ import annotations

import traceback

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

_DICT_ATTRIBUTES = frozenset(dir(dict))


class Sandbox(ImmutableSandboxedEnvironment):
    """Looks a dict's key up first (`session.title`): jinja tries the attribute first and catches its
    AttributeError, which cost ~40% of rendering the questions prompt (a syllabus of dicts, for every
    question). The same value comes out, and the sandbox's own lookup does the same for such keys: a key
    that names a dict method still finds the method, through the sandbox's checks."""

    def __init__(self, **options):
        super().__init__(**options)
        self.globals.clear()

    def getattr(self, obj, attribute):
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj, attribute):
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def refused_access(source: str, environment: jinja2.Environment) -> tuple[int, str] | None:
    """(template line, name) of the first attribute or key starting with `_` the template names, or None.
    The source must parse (a syntax error raises TemplateSyntaxError)."""
    found = []
    for node in environment.parse(source).find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: object
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem):
            name = node.arg.value if isinstance(node.arg, nodes.Const) else None
        elif isinstance(node, nodes.Filter):
            name = (
                node.args[0].value
                if node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const)
                else None
            )
        if isinstance(name, str) and name.startswith("_"):
            found.append((node.lineno, name))
    # An outer node is visited before the nodes inside it: the innermost of a line is the first written.
    return min(reversed(found), key=lambda refusal: refusal[0], default=None)


def error_line(error: jinja2.TemplateError) -> int | None:
    """The template line a rendering error was raised on, from the frames jinja2 rewrites to the template's."""
    if isinstance(error, jinja2.TemplateSyntaxError):
        return error.lineno
    return next(
        (
            frame.lineno
            for frame in reversed(traceback.extract_tb(error.__traceback__))
            if frame.filename == "<template>"
        ),
        None,
    )
