"""Cache keys are the sha256 of one canonical JSON text: a key that changed would pay every cached response again."""

import hashlib
import json

from glan.llm.cache import cache_key


def reference_key(**payload) -> str:
    """The definition of a key (docs/identity.md), as glan 0.1 computed it."""
    canonical = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_a_key_is_the_sha256_of_the_canonical_json_for_every_character():
    characters = [chr(code) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF]  # surrogates are not text
    schema = {"type": "object", "properties": {"réponse": {"type": "string", "maxLength": 2000}}, "required": ["réponse"],
              "additionalProperties": False}
    params = {"temperature": 1e-05, "top_p": 0.95, "max_tokens": 2048, "stop": ["\n\n", "»"]}
    for start in range(0, len(characters), 8192):
        text = "".join(characters[start:start + 8192])
        messages = [{"role": "system", "content": 'Quote "this" \\ that\t\n'}, {"role": "user", "content": text}]
        payload = dict(model="gpt-4o-mini", messages=messages, params=params, schema=schema, sample_index=3, attempt=1)
        assert cache_key(**payload) == reference_key(**payload), f"characters from U+{start:04X}"


def test_a_key_does_not_change_between_versions():
    key = cache_key(model="m", messages=[{"role": "user", "content": "Hello, wörld"}], params={"temperature": 0.7},
                    schema=None, sample_index=0, attempt=0)
    assert key == "2322d341b6ef2ebea91870fce837a4218ef489170497a7f7a37b7578f608ff20"
