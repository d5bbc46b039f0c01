"""``import deo`` and ``import landscapes`` stay light, and every public name resolves (deo.exports).

Each check runs in a fresh interpreter: the test process has long imported torch and the pages.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torch._dynamo", "streamlit", "plotly", "numpy", "scipy", "pandas", "ray")


def fresh(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_both_packages_imports_no_heavy_module():
    loaded = fresh(
        "import json, sys; import deo, landscapes; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert loaded == []


@pytest.mark.parametrize("package", ["deo", "landscapes"])
def test_every_public_name_resolves_to_its_modules_object_in_any_order(package):
    # sorted order touches deo.EscapeCriterion (which imports deo/race.py, binding the module as
    # deo.race) before deo.race, the function: the public name must still win
    bad = fresh(
        "import importlib, json; "
        f"pkg = importlib.import_module({package!r}); "
        "bad = [n for n in sorted(pkg.__all__) "
        "if getattr(pkg, n) is not getattr(importlib.import_module(pkg._EXPORTS[n]), n)]; "
        "bad += [n for n in pkg.__all__ if n not in dir(pkg)]; "
        "print(json.dumps(bad))"
    )
    assert bad == []


def test_an_unknown_name_is_an_attribute_error_naming_the_package():
    import deo
    import landscapes

    with pytest.raises(AttributeError, match="module 'deo' has no attribute 'nope'"):
        deo.nope  # noqa: B018
    with pytest.raises(AttributeError, match="module 'landscapes' has no attribute 'nope'"):
        landscapes.nope  # noqa: B018
