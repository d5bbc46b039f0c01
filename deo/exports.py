"""Lazy public names of a package (PEP 562): ``import deo`` / ``import landscapes`` stay cheap.

A package lists its public names and the module each lives in; the module is imported on the first
access to one of its names, and the name is then bound on the package. Used by ``deo/__init__.py``
and ``landscapes/__init__.py`` (standard library only, so importing it costs nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from types import ModuleType


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``(__getattr__, __dir__)`` for the package named ``package``; ``exports`` maps each public
    name to the module that defines it (``{"min_mode": "deo.dimer"}``).

    Importing a submodule binds it on the package under its own name; where a public name has that
    spelling (``deo.race`` the function, ``deo/race.py`` the module), the public name takes the place
    back whenever a lazy access imports modules. (A ``from deo.race import …`` elsewhere, before any
    lazy access, still leaves the module there: Python binds it after the import, outside this hook.)
    """

    def restore_shadowed(namespace: dict) -> None:
        for name, module_name in exports.items():
            bound = namespace.get(name)
            if isinstance(bound, ModuleType) and bound.__name__ == f"{package}.{name}":
                value = getattr(sys.modules.get(module_name, bound), name, bound)
                if not isinstance(value, ModuleType):
                    namespace[name] = value

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(exports[name]), name)
        namespace = vars(sys.modules[package])
        namespace[name] = value
        restore_shadowed(namespace)
        return value

    def __dir__() -> list:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
