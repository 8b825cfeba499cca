"""What an endpoint's prompt cache would serve of requests it has not been sent yet, for `glan estimate`.

OpenAI bills the longest prefix of a prompt it saw recently as cached input, from 1,024 tokens on and in blocks of
128 (prompt_cache_key keeps the requests sharing a prefix on one cache); vLLM's prefix cache reuses blocks of 16
tokens. The model: a request shares with the previous request of its stage and prompt_cache_key (a unit sends a
subject's requests together) their common prefix, cut to the endpoint's blocks.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

from .attempts import LLMRequest
from .routes import Endpoint

CHARS_PER_TOKEN = 4  # as the estimate counts prompt tokens


@dataclass(frozen=True)
class CacheRule:
    min_tokens: int
    block_tokens: int

    def cached_chars(self, common_chars: int) -> int:
        block = self.block_tokens * CHARS_PER_TOKEN
        chars = common_chars // block * block
        return chars if chars >= self.min_tokens * CHARS_PER_TOKEN else 0


OPENAI = CacheRule(min_tokens=1024, block_tokens=128)
PREFIX_BLOCKS = CacheRule(min_tokens=0, block_tokens=16)  # vLLM's default block size; llama.cpp reuses any prefix


def rule_for(endpoint: Endpoint) -> CacheRule:
    return OPENAI if endpoint.is_openai else PREFIX_BLOCKS


class PromptCacheModel:
    """The last prompt of each (stage, prompt_cache_key), for the most recent `groups` of them: units run side by
    side, each sending one subject at a time, so a few hundred cover them; memory stays bounded at any scale."""

    def __init__(self, groups: int = 1024):
        self.groups = groups
        self.last: OrderedDict[tuple[str, str | None], str] = OrderedDict()

    def cached_chars(self, stage: str, endpoint: Endpoint, request: LLMRequest) -> int:
        text = "".join(message["content"] for message in request.messages)
        group = (stage, request.prompt_cache_key)
        previous = self.last.pop(group, "")
        self.last[group] = text
        if len(self.last) > self.groups:
            self.last.popitem(last=False)
        return rule_for(endpoint).cached_chars(len(os.path.commonprefix([previous, text])))
