"""Stable ids: the same inputs give the same id on every machine (docs/identity.md)."""

import hashlib
import json


def canonical_json(value) -> str:
    """Keys sorted, no spaces, characters as they are (UTF-8 once encoded): the text every id hashes."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def content_id(*parts) -> str:
    """16 hex digits of sha256 over the canonical JSON of `parts` (64 bits: no collision at 10M rows)."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:16]
