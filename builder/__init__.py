"""glan: GLAN synthetic instruction data from a taxonomy, as a Hugging Face datasets build script.

The library (docs/api.md): `glan.build(...) -> BuildResult`, `glan.estimate(...) -> Estimate`, their async forms
`glan.abuild` and `glan.aestimate`, and the errors they raise (`glan.UserError` and its kinds). They are loaded
when first used, so that `import glan` (and `glan --help`) stays quick.
"""

from __future__ import annotations

import importlib
import sys
import types
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


def _api() -> Any:
    # Imported on first use, by name: every `import glan.x` runs this file first, and a module that loads no engine
    # (publishing, the plan: tests/test_architecture.py checks them at run time) must not load it through here.
    return importlib.import_module(f"{__name__}.api")


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_api(), name)
    raise AttributeError(f"module 'glan' has no attribute {name!r}")


def _function_of_the_api(name: str) -> property:
    """glan.build and glan.estimate are also modules of this package (build.py, estimate.py), and importing a
    module sets it as an attribute of its package: this property declines that (the module stays in sys.modules,
    where `from glan.build import x` finds it), so that the name is the library's function whichever comes first."""
    return property(lambda package: getattr(_api(), name), lambda package, module: None)


class _Package(types.ModuleType):
    build = _function_of_the_api("build")
    estimate = _function_of_the_api("estimate")


sys.modules[__name__].__class__ = _Package
