"""Reading a YAML file a person edits: one TaxonomyError that reads "<file>:<line>: <field path>: <problem>.
<what to do>". Lines come from the composed YAML node tree, because pydantic only knows the path of a bad
value, not where it was written."""

from __future__ import annotations

import difflib
import re
import types
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .base import Node, describe

START_FROM_SHIPPED = "run `glan init` to start from the one shipped with glan"


class TaxonomyError(ValueError):
    """The one user-facing message for a bad taxonomy; file and line are None when unknown."""

    def __init__(self, file: str | None, line: int | None, path: str, message: str):
        self.file, self.line, self.path = file, line, path
        location = f"{file}:{line}" if file and line else file
        super().__init__(": ".join(part for part in (location, path, message) if part))


def parse_yaml(text: str, source: str) -> tuple[yaml.Node, dict]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise TaxonomyError(
                source, 1, "",
                f'the file is empty, not a taxonomy. A taxonomy needs "version:" and "fields:"; {START_FROM_SHIPPED}.',
            )
        _check_no_duplicate_keys(root, source, ())
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        problem = error.problem or error.context
        if error.context and problem.startswith("but "):  # yaml splits "expected X" / "but found Y"
            problem = f"{error.context} {problem}"
        raise TaxonomyError(
            source, mark.line + 1, "",
            f"YAML syntax error: {problem} (column {mark.column + 1}). Check the indentation, and quote "
            'text that contains ": " or starts with a special character.',
        ) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise TaxonomyError(
            source, root.start_mark.line + 1, "",
            f'the top level is {describe(data)}, not a taxonomy. A taxonomy is a mapping with "version:" '
            f'and "fields:" at the top; {START_FROM_SHIPPED}.',
        )
    return root, data


def _check_no_duplicate_keys(node: yaml.Node, source: str, loc: tuple) -> None:
    # YAML keeps the last of two equal keys and drops the first without a word.
    if isinstance(node, yaml.MappingNode):
        first_lines: dict[str, int] = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            line = key.start_mark.line + 1
            if key.value in first_lines:
                raise TaxonomyError(
                    source, line, format_path(loc + (key.value,)),
                    f"key appears twice (lines {first_lines[key.value]} and {line}). "
                    "YAML would silently keep only the last one; delete or rename one of them.",
                )
            first_lines[key.value] = line
            _check_no_duplicate_keys(value, source, loc + (key.value,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_no_duplicate_keys(item, source, loc + (index,))


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


def _message(error: dict, model: type[BaseModel]) -> str:
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
    return f"{error['msg']}. Compare with the taxonomy.yaml that `glan init` writes."


def first_problem(
    error: ValidationError, model: type[BaseModel], source: str | None, root: yaml.Node | None, prefix: tuple
) -> TaxonomyError:
    """The problem written earliest in the file: users fix files top-down."""
    problems = []
    for details in error.errors():
        loc = prefix + tuple(details["loc"])
        line = locate(root, loc) if root is not None else None
        problems.append((line or 0, loc, details))
    line, loc, details = min(problems, key=lambda problem: problem[0])
    return TaxonomyError(source, line or None, format_path(loc), _message(details, model))
