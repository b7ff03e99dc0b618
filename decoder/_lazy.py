"""Package exports that import their module on first use (PEP 562).

``import decoder.flatraster`` should not pay for diffusers and open_clip:
the explorer serves its page before the models are loaded, so the packages'
``__init__`` files name what they export and where, and import it only when
it is asked for. ``from decoder import load_bundle`` works as before.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package whose ``exports`` map a
    public name to the submodule (relative, e.g. ``".bundle"``) that defines it."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        globals_of(package)[name] = value  # later lookups skip this function
        return value

    def __dir__():
        return sorted(set(globals_of(package)) | set(exports))

    return __getattr__, __dir__


def globals_of(package: str) -> dict:
    import sys

    return vars(sys.modules[package])
