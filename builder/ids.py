"""Stable ids: the same inputs give the same id on every machine (docs/identity.md)."""

import hashlib
import json


def content_id(*parts) -> str:
    """16 hex digits of sha256 over the canonical JSON of `parts` (64 bits: no collision at 10M rows)."""
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
