"""Reading a YAML file a person edits (taxonomy.yaml, prompt files): one error that reads
"<file>:<line>: <field path>: <problem>. <what to do>". Lines come from the composed YAML node tree,
because pydantic only knows the path of a bad value, not where it was written.

The tree is composed here, one event at a time from libyaml when PyYAML has it, so that a file is
refused before anything expands or recurses: aliases that grow it past ALIAS_GROWTH (a few lines of
nested aliases expand to billions of values), an alias loop, nesting deeper than MAX_DEPTH, a
duplicate key.
"""

from __future__ import annotations

import difflib
import gc
import re
import types
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Union, cast, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import UserError
from .base import Node, describe

START_FROM_SHIPPED = "run `glan init` to start from the one shipped with glan"
MAX_DEPTH = 32  # the deepest glan file (a preset's benchmark list) nests 7 levels
ALIAS_GROWTH, ALIAS_ALLOWANCE = 2, 10_000  # aliases may at most double the values a file writes out, plus 10,000
LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"  # libyaml's own limit (1,000 levels), in its words
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses about 10 times faster


class FileError(UserError):
    """A file a person edits cannot be used; file and line are None when unknown."""

    example = "the file of the same kind shipped with glan"  # what to compare with when no better hint exists

    def __init__(self, file: str | None, line: int | None, path: str, message: str):
        self.file, self.line, self.path = file, line, path
        location = f"{file}:{line}" if file and line else file
        super().__init__(": ".join(part for part in (location, path, message) if part))


class TaxonomyError(FileError):
    """The one user-facing message for a bad taxonomy."""

    example = "the taxonomy.yaml that `glan init` writes"


def read_text(path: Path, error: type[FileError], missing: str) -> str:
    """The text of a file; a missing, unreadable or non-UTF-8 file is one error naming the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(str(path), None, "", f"file not found. {missing}") from None
    except OSError as problem:
        raise error(
            str(path), None, "", f"cannot read the file ({problem.strerror}). Check the path and its permissions."
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line_start = data.rfind(b"\n", 0, problem.start) + 1
        column = len(data[line_start : problem.start].decode("utf-8", "replace")) + 1
        raise error(
            str(path),
            data.count(b"\n", 0, problem.start) + 1,
            "",
            f"not UTF-8 text: byte 0x{data[problem.start]:02x} (column {column}) is not valid UTF-8. "
            "Save the file with the UTF-8 encoding.",
        ) from None


def parse_yaml(text: str, source: str, error: type[FileError] = TaxonomyError) -> tuple[yaml.Node | None, Any]:
    """The node tree and the data of a one-document YAML file; (None, None) when the file is empty."""
    try:
        loader = _Loader(text)  # PyYAML's own reader checks every character here, libyaml's as it reads
        try:
            root = _compose(loader, source, error)
            data = None if root is None else loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as problem:
        raise _syntax_error(problem, source, error) from None
    except yaml.reader.ReaderError as problem:  # a character YAML does not allow, e.g. a control character
        # Located in the text: libyaml counts its position in UTF-8 bytes, PyYAML in characters.
        character = chr(problem.character) if isinstance(problem.character, int) else problem.character
        position = text.index(character)
        column = position - text.rfind("\n", 0, position)
        raise error(
            source,
            text.count("\n", 0, position) + 1,
            "",
            f"unacceptable character #x{ord(character):04x} (column {column}): control characters are not "
            f'allowed. Delete it, or write it as "\\x{ord(character):02x}" inside double quotes.',
        ) from None
    return root, data


@contextmanager
def collector_paused():
    """For reading a large file: it makes millions of small objects and no cycles, and the cyclic collector
    would rescan the growing tree over and over (a 47 MB taxonomy loads in 19 s without it, 53 s with it)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Open:
    """A sequence or mapping being composed: its location, anchor, and for a mapping its keys so far."""

    __slots__ = ("node", "loc", "anchor", "start", "is_sequence", "key", "key_lines")

    def __init__(self, node: yaml.CollectionNode, loc: tuple, anchor: str | None, start: int):
        self.node, self.loc, self.anchor = node, loc, anchor
        self.start = start  # values the document expanded to before this one
        self.is_sequence = isinstance(node, yaml.SequenceNode)
        self.key: yaml.Node | None = None  # a mapping's key waiting for its value
        self.key_lines: dict[str, int] = {}

    def next_loc(self) -> tuple:
        """Where the next node goes: a list item, a mapping's key (the mapping itself), or the key's value."""
        if self.is_sequence:
            return self.loc + (len(self.node.value),)
        if self.key is None:
            return self.loc
        return self.loc + (self.key.value if isinstance(self.key, yaml.ScalarNode) else "?",)


def _compose(loader, source: str, error: type[FileError]) -> yaml.Node | None:
    """yaml's Composer without recursion, refusing deep nesting, duplicate keys, looping aliases and aliases
    that grow the document past ALIAS_GROWTH."""
    root, parent = None, None
    stack: list[_Open] = []
    anchors: dict[str, tuple[yaml.Node, int]] = {}  # anchor -> (node, values it expands to)
    written = expanded = 0  # values written in the file; values the document holds once aliases are expanded
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        while (kind := type(event := loader.get_event())) is not yaml.DocumentEndEvent:
            node: yaml.Node
            if kind is yaml.SequenceEndEvent or kind is yaml.MappingEndEvent:
                closed = stack.pop()
                if closed.anchor is not None:
                    anchors[closed.anchor] = (closed.node, expanded - closed.start)
                parent = stack[-1] if stack else None
                continue
            # Nodes keep only their start: errors name where a value starts; end marks would cost 13% of the memory.
            if kind is yaml.ScalarEvent:
                tag = event.tag
                if tag in (None, "!"):
                    tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
                node = yaml.ScalarNode(tag, event.value, event.start_mark, None, event.style)
                if event.tag not in (None, "!"):
                    _check_tagged(loader, node, source, parent.next_loc() if parent else (), error)
                written, expanded = written + 1, expanded + 1
                if event.anchor is not None:
                    anchors[event.anchor] = (node, 1)
            else:
                loc = parent.next_loc() if parent else ()
                line = event.start_mark.line + 1
                if kind is yaml.AliasEvent:
                    node, size = _anchored(anchors, stack, event.anchor, source, line, loc, error)
                    expanded += size
                    if expanded > (limit := ALIAS_GROWTH * written + ALIAS_ALLOWANCE):
                        raise error(
                            source,
                            line,
                            format_path(loc),
                            f'the alias "*{event.anchor}" grows the file past {limit:,} '
                            f"values ({written:,} written out up to here): nested aliases grow a file "
                            "exponentially. Write the values out instead of nesting aliases.",
                        )
                elif len(stack) == MAX_DEPTH:
                    raise _too_deep(source, line, loc, error)
                else:
                    node_class = yaml.SequenceNode if kind is yaml.SequenceStartEvent else yaml.MappingNode
                    tag = event.tag
                    if tag in (None, "!"):
                        tag = loader.resolve(node_class, None, event.implicit)
                    node = node_class(tag, [], event.start_mark, None, event.flow_style)
            if parent is None:
                root = node
            elif parent.is_sequence:
                parent.node.value.append(node)
            elif parent.key is None:
                _check_new_key(parent, node, source, error)
                parent.key = node
            else:
                parent.node.value.append((parent.key, node))
                parent.key = None
            if kind is yaml.SequenceStartEvent or kind is yaml.MappingStartEvent:
                parent = _Open(cast(yaml.CollectionNode, node), loc, event.anchor, expanded)
                stack.append(parent)
                written, expanded = written + 1, expanded + 1
    except yaml.MarkedYAMLError as problem:
        # libyaml (0.2.6 on) refuses nesting past 1,000 levels in its scanner, which reads up to 1,024 characters
        # ahead of the events: on a line of brackets it speaks first. Its refusal is this same problem.
        if problem.problem != LIBYAML_TOO_DEEP:
            raise
        line = problem.problem_mark.line + 1 if problem.problem_mark else None
        raise _too_deep(source, line, parent.next_loc() if parent else (), error) from None
    if not loader.check_event(yaml.StreamEndEvent):
        second = loader.get_event()
        raise error(
            source,
            second.start_mark.line + 1,
            "",
            'a second YAML document starts here ("---"); a glan file holds one. Delete the "---" line '
            "or move the rest to another file.",
        )
    return root


def _too_deep(source: str, line: int | None, loc: tuple, error: type[FileError]) -> FileError:
    """Nesting past MAX_DEPTH at loc, named by the top-level key it is under (the whole path would be MAX_DEPTH
    parts long); none when the file is a list: libyaml may refuse it before it says the file starts with one."""
    top_key = loc[:1] if loc and isinstance(loc[0], str) else ()
    return error(
        source,
        line,
        format_path(top_key),
        f"nested more than {MAX_DEPTH} levels deep; glan's files need "
        "at most 7. Check for unclosed brackets or runaway indentation.",
    )


def _anchored(
    anchors: dict, stack: list[_Open], anchor: str, source: str, line: int, loc: tuple, error: type[FileError]
) -> tuple[yaml.Node, int]:
    if anchor in anchors:
        return anchors[anchor]
    if any(open_node.anchor == anchor for open_node in stack):
        problem = f'the alias "*{anchor}" is inside the value it names, a loop. Write the value out instead.'
    else:
        problem = (
            f'the alias "*{anchor}" names no value: there is no "&{anchor}" before it. Add the anchor or fix the name.'
        )
    raise error(source, line, format_path(loc), problem)


def _check_tagged(loader, node: yaml.ScalarNode, source: str, loc: tuple, error: type[FileError]) -> None:
    """A value with an explicit tag (!!int, !!timestamp, ...) is read now, so a bad one names its line."""
    try:
        loader.construct_object(node)
    except (ValueError, TypeError) as problem:
        raise error(
            source,
            node.start_mark.line + 1,
            format_path(loc),
            f"{node.value!r} cannot be read as {node.tag.rpartition(':')[2]} ({problem}). Fix the value or "
            "remove the tag.",
        ) from None


def _check_new_key(mapping: _Open, key: yaml.Node, source: str, error: type[FileError]) -> None:
    # YAML keeps the last of two equal keys and drops the first without a word.
    if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
        return
    line = key.start_mark.line + 1
    if key.value in mapping.key_lines:
        raise error(
            source,
            line,
            format_path(mapping.loc + (key.value,)),
            f"key appears twice (lines {mapping.key_lines[key.value]} and {line}). YAML would silently keep only "
            "the last one; delete or rename one of them.",
        )
    mapping.key_lines[key.value] = line


def _syntax_error(problem: yaml.MarkedYAMLError, source: str, error: type[FileError]) -> FileError:
    mark = problem.problem_mark or problem.context_mark
    text = problem.problem or problem.context or ""
    if problem.context and text.startswith("but "):  # yaml splits "expected X" / "but found Y"
        text = f"{problem.context} {text}"
    return error(
        source,
        mark.line + 1 if mark else None,
        "",
        f"YAML syntax error: {text} (column {mark.column + 1 if mark else '?'}). Check the indentation, and quote "
        'text that contains ": " or starts with a special character.',
    )


def locate(root: yaml.Node, loc: tuple) -> int:
    """Line of the deepest node on loc that the file has: a key's own line, or a list item's first line."""
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            keys = [key.value if isinstance(key, yaml.ScalarNode) else None for key, _ in node.value]
            if str(part) not in keys:
                return line
            key, node = node.value[keys.index(str(part))]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def format_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
            path += f".{part}" if path else part
        else:
            path += f'["{part}"]'
    return path


def _model_at(model: type[BaseModel], loc: tuple) -> type[Node] | None:
    """The model class that validates the value at loc, or None for plain values."""
    current: Any = model
    for part in loc:
        current = _without_none(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        elif get_origin(current) in (list, dict):
            current = get_args(current)[-1]
        else:
            return None
    current = _without_none(current)
    return current if isinstance(current, type) and issubclass(current, Node) else None


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


EXPECTED = {
    "string_type": ("text", 'Quote it where YAML would read a number or a boolean, e.g. "1984" or "yes"'),
    "int_type": ("a whole number", "Write digits only, e.g. 10"),
    "int_parsing": ("a whole number", "Write digits only, e.g. 10"),
    "int_from_float": ("a whole number", "Write digits only, e.g. 10"),
    "float_type": ("a number", "Write a number, e.g. 0.5"),
    "float_parsing": ("a number", "Write a number, e.g. 0.5"),
    "bool_type": ("true or false", "Write true or false"),
    "bool_parsing": ("true or false", "Write true or false"),
    "list_type": ("a list", 'Write one item per line, each starting with "- "'),
    "dict_type": ("a mapping", 'Write "key: value" lines indented under it'),
    "model_type": ("a mapping", 'Write "key: value" lines indented under it'),
}
EMPTY_LIST_HINTS = {
    "fields": "A taxonomy needs at least one field; add one",
    "subfields": "A field needs at least one sub-field; add one or delete the field",
    "disciplines": "A sub-field needs at least one discipline; add one or delete the sub-field",
    "levels": "List at least one level, e.g. [introductory, advanced]",
    "discipline_ids": "List the discipline ids to generate, or write null for all of them",
    "language": "List at least one language code, e.g. [en]",
}


def _message(error: Mapping[str, Any], model: type[BaseModel], example: str) -> str:
    loc, kind, value = error["loc"], error["type"], error.get("input")
    key = loc[-1] if loc else ""
    if kind == "taxonomy":
        return error["msg"] + "."
    if kind == "missing":
        parent = _model_at(model, loc[:-1])
        noun = parent.noun if parent else "mapping"
        if key == "name" and parent and parent.name_example:
            return f'missing. Every {noun} needs a name, e.g. "name: {parent.name_example}".'
        return f'missing. Every {noun} needs "{key}:"; add it.'
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f'Did you mean "{close[0]}"? ' if close else ""
        return f'unknown key "{key}". {hint}Allowed keys here: {", ".join(allowed)}.'
    if kind == "too_short":
        return f"empty. {EMPTY_LIST_HINTS.get(key, 'Add at least one item')}."
    if kind == "literal_error":
        return f"expected {error['ctx']['expected']}, got {describe(value)}. Use one of those values."
    if kind in EXPECTED:
        expected, fix = EXPECTED[kind]
        if value is None:
            fix = "Fill in a value, or delete the line to use the default"
        return f"expected {expected}, got {describe(value)}. {fix}."
    bounds = error.get("ctx", {})
    if kind in ("greater_than_equal", "greater_than"):
        bound = bounds.get("ge", bounds.get("gt"))
        relation = "at least" if kind == "greater_than_equal" else "greater than"
        return f"{value} is too small. It must be {relation} {bound}."
    if kind in ("less_than_equal", "less_than"):
        bound = bounds.get("le", bounds.get("lt"))
        relation = "at most" if kind == "less_than_equal" else "less than"
        return f"{value} is too large. It must be {relation} {bound}."
    return f"{error['msg']}. Compare with {example}."


def first_problem(
    error: ValidationError,
    model: type[BaseModel],
    source: str | None,
    root: yaml.Node | None,
    prefix: tuple,
    error_class: type[FileError] = TaxonomyError,
) -> FileError:
    """The problem written earliest in the file: users fix files top-down."""
    problems = []
    for details in error.errors():
        loc = prefix + tuple(details["loc"])
        line = locate(root, loc) if root is not None else None
        problems.append((line or 0, loc, details))
    line, loc, details = min(problems, key=lambda problem: problem[0])
    return error_class(source, line or None, format_path(loc), _message(details, model, error_class.example))
