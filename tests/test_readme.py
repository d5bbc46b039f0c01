"""The README as a user reads it: its library snippet runs from a directory outside the repository
(the README's commands install the package), its two commands are the ones CI runs, and the
console script names itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_the_library_snippet_runs_outside_the_repository(tmp_path):
    snippet = next(b for b in _blocks("python") if "deo.DEO(" in b)
    script = tmp_path / "snippet.py"
    script.write_text(snippet)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},  # no PYTHONPATH: the installed package
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    curvature, grad_evals = done.stdout.split()[-2:]
    assert float(curvature) == float(curvature)  # a finite number was printed (not NaN)
    assert int(grad_evals) == 120  # the count the snippet's comment promises


def test_the_two_commands_are_the_ones_ci_runs():
    commands = [line for b in _blocks("bash") for line in b.splitlines() if line.strip()]
    app, tests = commands[0], commands[1]
    assert "pip install -r requirements.txt -e ." in app and app.endswith(".venv/bin/python serve.py")
    assert tests.startswith("apt-get update && apt-get install -y chromium")
    assert "sudo" not in app + tests
    ci = (ROOT / ".ci" / "run").read_text()
    # CI does the apt-get part itself (with retries), then exactly the rest of the README's command.
    assert tests.split("apt-get install -y chromium && ", 1)[1].replace(
        "pip install", "pip install -q"
    ) in ci


def test_console_script_names_itself():
    exe = shutil.which("deo-lab", path=str(Path(sys.executable).parent))  # installed by `pip install -e .`
    assert exe is not None, "the README's commands install the deo-lab script (pip install -e .)"
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: deo-lab")
