"""Fake model output: values that satisfy a JSON schema, drawn from a seeded RNG.

A schema is compiled once into a tree of closures (`compile_schema`), so answering a request costs
only the random draws, not a walk over the schema; strings are picked from pools built at import,
one draw each, because a test server answering 1,000+ requests/s cannot spend much per string.
Labels (names, titles, list items) are 1-3 words from a vocabulary of 40, so separate samples
sometimes repeat a value (the pipeline deduplicates subject names and must be tested on that);
other strings are sentences of three random 3-5 word clauses, practically never repeated. Free text (a
request with no schema) is a question ending in "?" or an answer of a few such sentences.
"""

from __future__ import annotations

import random
from typing import Any, Callable

Generator = Callable[[random.Random], Any]

VOCAB = (
    "Quantum Thermal Linear Organic Applied Discrete Modern Classical Molecular Cellular "
    "Statistical Numerical Structural Cognitive Digital Environmental Comparative Urban "
    "Analysis Dynamics Systems Theory Methods Foundations Mechanics Chemistry Biology Ethics "
    "Economics Geometry Algebra Networks Ecology Genetics Optics Logic Policy Design Markets Signals"
).split()

# Property names whose values are labels a person reads, not prose.
_SHORT_KEYS = ("name", "title", "subject", "topic", "label", "concept")

# Arrays without maxItems get at most this many items beyond minItems.
_EXTRA_ITEMS = 4


def compile_schema(schema: dict) -> Generator:
    """Return gen(rng) -> a JSON value valid for `schema` (pydantic v2's subset of JSON Schema)."""
    return _Compiler(schema).compile(schema, short=False)


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choices(VOCAB, k=count))


_POOL_BITS = 12  # pools of 4,096 strings: sentences of three clauses have 2**36 variants
_pool_rng = random.Random(2402)  # fixed pools: the same request gets the same text on every run
_LABELS = [_words(_pool_rng, 1 + _pool_rng.randrange(3)) for _ in range(1 << _POOL_BITS)]
_CLAUSES = [_words(_pool_rng, 3 + _pool_rng.randrange(3)).lower() for _ in range(1 << _POOL_BITS)]
_OPENINGS = [clause[0].upper() + clause[1:] for clause in _CLAUSES]


def label(rng: random.Random) -> str:
    return _LABELS[rng.getrandbits(_POOL_BITS)]


def sentence(rng: random.Random) -> str:
    bits = rng.getrandbits(3 * _POOL_BITS)
    mask = (1 << _POOL_BITS) - 1
    first, second, third = bits & mask, (bits >> _POOL_BITS) & mask, bits >> (2 * _POOL_BITS)
    return f"{_OPENINGS[first]} {_CLAUSES[second]} {_CLAUSES[third]}."


def question(rng: random.Random) -> str:
    bits = rng.getrandbits(2 * _POOL_BITS)
    mask = (1 << _POOL_BITS) - 1
    return f"How does {_CLAUSES[bits & mask]} explain {_CLAUSES[bits >> _POOL_BITS]}?"


def answer(rng: random.Random) -> str:
    return " ".join(sentence(rng) for _ in range(2 + rng.randrange(3)))


class _Compiler:
    def __init__(self, root: dict):
        self.root = root
        # Compiled $refs, filled lazily so recursive models do not recurse forever at compile time.
        self.refs: dict[str, Generator] = {}

    def compile(self, schema: dict, short: bool) -> Generator:
        if "$ref" in schema:
            return self._ref(schema["$ref"], short)
        if "const" in schema:
            value = schema["const"]
            return lambda rng: value
        if "enum" in schema:
            choices = list(schema["enum"])
            return lambda rng: rng.choice(choices)
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
                return self.compile(options[0], short)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, "_" + kind)(schema, short)

    def _ref(self, ref: str, short: bool) -> Generator:
        key = f"{ref}|{short}"
        if key not in self.refs:
            # Register before compiling so a recursive model finds itself and binds late.
            compiled: list[Generator] = []
            self.refs[key] = lambda rng: compiled[0](rng)
            node = self.root
            for part in ref.removeprefix("#/").split("/"):
                node = node[part]
            compiled.append(self.compile(node, short))
        return self.refs[key]

    def _object(self, schema: dict, short: bool) -> Generator:
        fields = [
            (name, self.compile(sub, short=name.lower().endswith(_SHORT_KEYS)))
            for name, sub in schema.get("properties", {}).items()
        ]
        return lambda rng: {name: gen(rng) for name, gen in fields}

    def _array(self, schema: dict, short: bool) -> Generator:
        item = self.compile(schema.get("items", {}), short=True)
        low = schema.get("minItems", 0)
        span = schema.get("maxItems", low + _EXTRA_ITEMS) - low + 1
        return lambda rng: [item(rng) for _ in range(low + int(rng.random() * span))]

    def _string(self, schema: dict, short: bool) -> Generator:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        draw = label if short else sentence

        def gen(rng: random.Random) -> str:
            text = draw(rng)
            while len(text) < low:
                text += " " + _CLAUSES[rng.getrandbits(_POOL_BITS)]
            return text if high is None else text[:high]

        return gen

    def _integer(self, schema: dict, short: bool) -> Generator:
        low, high = _bounds(schema, step=1)
        low, high = int(low), int(high)
        return lambda rng: low + int(rng.random() * (high - low + 1))

    def _number(self, schema: dict, short: bool) -> Generator:
        low, high = _bounds(schema, step=0.01)
        return lambda rng: min(high, max(low, round(low + rng.random() * (high - low), 2)))

    def _boolean(self, schema: dict, short: bool) -> Generator:
        return lambda rng: rng.random() < 0.5

    def _null(self, schema: dict, short: bool) -> Generator:
        return lambda rng: None


def _bounds(schema: dict, step: float) -> tuple[float, float]:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is None and "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + step
    if high is None and "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - step
    if low is None:
        low = 0 if high is None else min(0, high)
    if high is None:
        high = low + 100
    return low, high
