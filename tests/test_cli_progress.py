"""Long CLI runs show a progress line on a terminal's stderr; none with --quiet or off a terminal."""

from __future__ import annotations

import io
import sys

import pytest

from deo.cli import ProgressLine, main

RACE = ["race", "--surface", "saddle", "--start", "1,1e-3", "--optimizers", "gd,adam", "--steps", "60"]
MAP = ["escape-map", "--surface", "saddle", "--grid", "3", "--optimizers", "gd,adam", "--steps", "40"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("argv", [RACE, MAP], ids=["race", "escape-map"])
def test_a_terminal_sees_one_rewritten_progress_line(argv, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(argv) == 0
    text = terminal.getvalue()
    updates = text.split("\r")[1:]
    assert updates and updates[0].startswith("[  0%] GD: step 0/")
    assert updates[-1].rstrip("\n").rstrip() == "[100%] done"
    assert text.endswith("\n") and text.count("\n") == 1  # one line, ended once
    assert "%]" not in capsys.readouterr().out  # the table on stdout stays clean


@pytest.mark.parametrize("argv", [RACE, MAP], ids=["race", "escape-map"])
def test_quiet_or_no_terminal_shows_no_progress(argv, monkeypatch, capsys):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv, "--quiet"]) == 0
    assert terminal.getvalue() == ""
    monkeypatch.undo()
    assert main(argv) == 0  # capsys: stderr is not a terminal
    assert "%]" not in capsys.readouterr().err


def test_progress_line_throttles_and_pads_over_a_longer_message():
    stream = Terminal()
    line = ProgressLine(stream, interval=3600.0)
    line(0.0, "GD: step 0/10 and more")
    line(0.5, "GD: step 5/10")  # within the interval: not drawn
    line(1.0, "done")
    line.close()
    updates = stream.getvalue().split("\r")[1:]
    assert len(updates) == 2
    assert updates[1] == "[100%] done".ljust(len("[  0%] GD: step 0/10 and more")) + "\n"
