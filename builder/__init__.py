"""glan: GLAN synthetic instruction data from a taxonomy, as a Hugging Face datasets build script.

The library (docs/api.md): `glan.build(...) -> BuildResult`, `glan.estimate(...) -> Estimate`, their async forms
`glan.abuild` and `glan.aestimate`, and the errors they raise (`glan.UserError` and its kinds). They are loaded
when first used, so that `import glan` (and `glan --help`) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

__all__ = [
    "BuildResult",
    "ConfirmationNeeded",
    "Estimate",
    "StageEstimate",
    "UserError",
    "__version__",
    "abuild",
    "aestimate",
    "build",
    "estimate",
]


def __getattr__(name: str) -> Any:
    # Imported on first use, by name: every `import glan.x` runs this file first, and a module that loads no engine
    # (publishing, the plan: tests/test_architecture.py checks them at run time) must not load it through here.
    if name in __all__:
        return getattr(importlib.import_module(f"{__name__}.api"), name)
    raise AttributeError(f"module 'glan' has no attribute {name!r}")
