"""Technique packages that are also their function: `edgetl.prune` is the package (edgetl.prune.structured,
...) and `edgetl.prune(model, ...)` the call. Python binds an imported subpackage to its parent's attribute,
so `edgetl.prune` is the package as soon as anything imported it; making the package callable keeps
`from edgetl import prune; prune(...)` working whatever was imported first, without importing torch early."""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Any


class TechniqueModule(types.ModuleType):
    __technique__: str  # "module:function" the call forwards to

    def _function(self) -> Any:
        module, _, attr = self.__technique__.partition(":")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._function()(*args, **kwargs)

    @property
    def __signature__(self) -> inspect.Signature:  # help() and IDEs show the function's parameters
        return inspect.signature(self._function())


def make_callable(package: str, target: str) -> None:
    """Make the package `package` (call from its __init__ with __name__) forward calls to `target`."""
    module = sys.modules[package]
    module.__technique__ = target  # type: ignore[attr-defined]
    module.__class__ = TechniqueModule
