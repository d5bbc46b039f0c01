"""serve.py: the README's server command warms the interpreter before its first visitor."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serve  # noqa: E402


def test_warm_race_runs_every_preset_on_the_default_surface(monkeypatch):
    import importlib

    from deo.presets import PRESETS
    from pages.common import DEFAULT_SURFACE

    race_module = importlib.import_module("deo.race")  # the module (``deo.race`` may name the function)
    calls = []
    real = race_module.race

    def spy(problem, optimizers, steps, **kwargs):
        calls.append((problem.name, [s.key for s in optimizers], steps))
        return real(problem, optimizers, steps, **kwargs)

    monkeypatch.setattr(race_module, "race", spy)
    serve.warm_race(steps=2)
    assert calls == [(DEFAULT_SURFACE, list(PRESETS), 2)]


def test_serve_runs_the_app_script_with_the_given_options(monkeypatch):
    from streamlit.web import cli

    seen = {}
    monkeypatch.setattr(cli, "main", lambda: seen.setdefault("argv", list(sys.argv)))
    monkeypatch.setattr(serve, "preload", lambda: None)
    monkeypatch.setattr(sys, "argv", ["serve.py", "--server.port", "8502"])
    serve.main()
    assert seen["argv"] == ["streamlit", "run", str(ROOT / "app.py"), "--server.port", "8502"]


def test_preload_says_when_the_warm_up_is_done(capsys, one_torch_thread):
    # one_torch_thread restores the test process's thread count after preload() sets it to 1
    serve.preload()
    assert serve.WARM_MESSAGE in capsys.readouterr().err  # benchmarks/app.py waits for this line
