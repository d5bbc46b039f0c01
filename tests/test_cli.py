"""``python -m deo race`` / ``escape-map``: files that load back, a summary table, readable errors."""

import json
import runpy
import sys

import numpy as np
import pytest
import torch

from deo.cli import main
from deo.trace import traces_from_csv, traces_from_json


def test_race_writes_traces_that_load_back(tmp_path, capsys):
    argv = ["race", "--surface", "saddle", "--start", "1,1e-3", "--optimizers", "gd,adam", "--steps", "90"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    traces = traces_from_json((tmp_path / "traces.json").read_text())
    assert [t.key for t in traces] == ["gd", "adam"]
    assert traces_from_csv((tmp_path / "traces.csv").read_text()) == traces
    np.testing.assert_array_equal(traces[0].position[0], [1.0, 1e-3])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["surface"] == "saddle" and config["steps"] == 90
    table = capsys.readouterr().out
    assert "Adam" in table and "escape step" in table
    # Adam escapes x²−y² from (1, 1e-3) at step ≈ 80 (DEO.md); GD needs 349 > 90
    assert abs(traces[1].escape_step - 80) <= 2 and traces[0].escape_step is None


def test_race_hyperparameter_override_and_clip(tmp_path):
    argv = ["race", "--formula", "x**2 - y**2", "--start", "1,0.5", "--optimizers", "gd"]
    assert main([*argv, "--hp", "gd.lr=0.1", "--clip", "0.5", "--steps", "3", "--out", str(tmp_path)]) == 0
    (trace,) = traces_from_json((tmp_path / "traces.json").read_text())
    assert trace.hyperparams["lr"] == 0.1 and trace.hyperparams["clip"] == 0.5
    assert trace.modified_grad_norm[0] == pytest.approx(0.5)


def test_escape_map_writes_json_and_csv(tmp_path, capsys):
    argv = [
        "escape-map",
        "--surface",
        "saddle_plateau",
        "--grid",
        "4",
        "--optimizers",
        "gd,adam",
        "--threads",
        "1",
    ]
    threads = torch.get_num_threads()
    try:
        assert main([*argv, "--steps", "200", "--out", str(tmp_path)]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    payload = json.loads((tmp_path / "escape_map.json").read_text())
    assert len(payload["starts"]) == 16 and set(payload["results"]) == {"GD", "Adam"}
    assert payload["escape"]["loss_below"] == pytest.approx(-0.9)
    lines = (tmp_path / "escape_map.csv").read_text().strip().split("\n")
    assert len(lines) == 1 + 2 * 16
    assert "16 starts" in capsys.readouterr().out


def test_bad_input_gives_a_message_not_a_traceback():
    with pytest.raises(SystemExit, match="unknown optimizer"):
        main(["race", "--optimizers", "gd,sgdd", "--steps", "2"])
    with pytest.raises(SystemExit, match="--formula"):
        main(["race", "--formula", "__import__('os')", "--steps", "2"])
    with pytest.raises(SystemExit, match="unknown surface"):
        main(["escape-map", "--surface", "nowhere", "--steps", "2"])


def test_network_race(tmp_path):
    argv = ["race", "--network", "two_moons", "--init-scale", "1e-3", "--optimizers", "gd", "--steps", "5"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (trace,) = traces_from_json((tmp_path / "traces.json").read_text())
    assert len(trace) == 6 and np.isfinite(trace.loss).all()


def test_python_dash_m_entry_point(tmp_path, monkeypatch, capsys):
    argv = ["python -m deo", "race", "--optimizers", "gd", "--steps", "2", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("deo", run_name="__main__")
    assert exit_info.value.code == 0
    assert "GD" in capsys.readouterr().out and (tmp_path / "traces.csv").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["escape-map", "--grid", "100000"],
            "--grid: must be an integer from 1 to 500 (deo.budget.MAX_STARTS",
        ),
        (["race", "--out", "/proc/nope"], "--out: cannot write files to '/proc/nope'"),
        (["escape-map", "--bound", "-1"], "--bound: must be a finite number > 0"),
        (["escape-map", "--bound", "nan"], "--bound: must be a finite number > 0"),
        (
            ["race", "--steps", "abc"],
            "--steps: must be an integer from 1 to 1,000,000 (deo.budget.MAX_STEPS)",
        ),
        (["race", "--steps", "1e9"], "--steps: must be an integer"),
        (["race", "--steps", "9" * 5000], "--steps: must be an integer"),
        (["race", "--steps", "0"], "--steps: must be an integer from 1"),
        (["race", "--seed", "-3"], "--seed: must be an integer from 0"),
        (["race", "--seed", "x"], "--seed: must be an integer"),
        (["race", "--clip", "inf"], "--clip: must be a finite number > 0"),
        (["race", "--offset", "1e400"], "--offset: must be a finite number"),
        (["race", "--init-scale", "-1"], "--init-scale: must be a finite number > 0"),
        (["race", "--start", "1,inf"], "--start must be 2 comma-separated finite numbers"),
        (["race", "--record-every", "-2"], "--record-every: must be an integer from 1"),
        (["race", "--threads", "100000"], "--threads: must be an integer from 1 to 1,024"),
        (["race", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_argument_errors_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err and err.rstrip().endswith("(see --help)")


def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main(["race", "--steps", "5", "--out", str(blocker / "sub")])
    assert exit_info.value.code == 2 and "cannot write files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizers", "deo_paper", "--hp", "deo_paper.rotations=10000"], "deo.budget.MAX_ROTATIONS"),
        (["--optimizers", "gd", "--hp", "gd.lr=NaN"], "finite"),
        (["--optimizers", "gd", "--hp", 'gd.lr="abc"'], "learning rate η takes a finite number"),
        (["--formula", "1e6**51*x"], "too large"),
    ],
)
def test_bad_values_and_over_budget_work_are_one_line_errors(argv, message):
    with pytest.raises(SystemExit, match=message) as exit_info:
        main(["race", "--steps", "5", *argv])
    text = str(exit_info.value.code)
    assert text.startswith("error: ") and "\n" not in text


def test_an_over_budget_escape_map_is_refused_before_any_work():
    argv = ["escape-map", "--grid", "500", "--steps", "1000000", "--optimizers", "deo_escape"]
    with pytest.raises(SystemExit, match=r"deo.budget.MAX_MAP_GRAD_EVALS\): lower the grid"):
        main(argv)


def test_negative_values_are_read_as_values_not_options(tmp_path):
    """``--start -1,0.5`` and ``--window -1,1,-1,1``: argparse reads a value starting with "-" as an
    option unless it is a plain negative number, and said "expected one argument"."""
    argv = ["race", "--surface", "saddle", "--start", "-1,0.5", "--optimizers", "gd", "--steps", "2"]
    assert main([*argv, "--out", str(tmp_path / "race")]) == 0
    (trace,) = traces_from_json((tmp_path / "race" / "traces.json").read_text())
    np.testing.assert_array_equal(trace.position[0], [-1.0, 0.5])
    argv = ["race", "--surface", "saddle", "--offset", "-1e-3", "--optimizers", "gd", "--steps", "2"]
    assert main([*argv, "--out", str(tmp_path / "offset")]) == 0
    (trace,) = traces_from_json((tmp_path / "offset" / "traces.json").read_text())
    np.testing.assert_array_equal(trace.position[0], [1.0, -1e-3])  # −10⁻³ along y from the default start
    argv = ["escape-map", "--window", "-1,1,-2,-0.5", "--grid", "2", "--optimizers", "gd", "--steps", "2"]
    assert main([*argv, "--out", str(tmp_path / "map")]) == 0
    starts = np.array(json.loads((tmp_path / "map" / "escape_map.json").read_text())["starts"])
    assert starts[:, 0].min() >= -1 and starts[:, 1].max() <= -0.5
    with pytest.raises(SystemExit):  # a value that is not a number is still an error
        main(["race", "--start", "-x,1", "--steps", "2"])


def test_escape_map_csv_quotes_a_label_with_a_comma(tmp_path):
    import csv

    argv = ["escape-map", "--grid", "2", "--optimizers", "gd,deo_escape_random_redrawn", "--steps", "3"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    with open(tmp_path / "escape_map.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert {len(r) for r in rows} == {10} and len(rows) == 1 + 2 * 4
    labels = {r[0] for r in rows[1:]}
    assert any("," in label for label in labels)  # "… random direction, re-drawn every …"


def test_the_first_entrant_is_not_charged_torch_optims_lazy_import():
    """torch.optim imports torch._dynamo at its first step (≈ 1–2 s): a race imports it before any
    entrant's clock starts (the CLI's "time s" showed GD 1.53 s, Adam 0.09 s for 3 steps)."""
    import subprocess

    code = """
import sys
import deo.race as r
assert "torch._dynamo" not in sys.modules
seen = []
original = r._Run.__init__
def spy(self, *args, **kwargs):
    seen.append("torch._dynamo" in sys.modules)
    original(self, *args, **kwargs)
r._Run.__init__ = spy
from landscapes import SURFACES
surface = SURFACES["saddle"]
r.race(r.surface_problem(surface, surface.default_start), [r.OptimizerSpec("gd"), r.OptimizerSpec("adam")], 2)
assert seen == [True, True], seen
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(
    "hp, message",
    [
        ("gd.lr=abc", "learning rate η takes a finite number"),
        ("gd.lr=true", "learning rate η takes a finite number"),  # JSON true ran lr = 1
        ("gd.seed=-1", "the seed is --seed"),  # said "got multiple values for keyword argument 'seed'"
        ("adam.betas=[0.9,0.999,1]", "takes a list of 2 numbers"),  # said "too many values to unpack"
        ("deo_paper.rotation=foo", "takes one of lanczos, fourier, sd"),
        ("deo_paper.rotations=1.5", "takes a whole number"),
    ],
)
def test_a_hyperparameter_of_the_wrong_kind_is_named_with_what_it_takes(hp, message):
    optimizer = hp.split(".")[0]
    with pytest.raises(SystemExit, match=message):
        main(["race", "--optimizers", optimizer, "--steps", "2", "--hp", hp])


def test_hyperparameters_of_the_right_kind_run(tmp_path):
    # the app's controls stop at lr 10; the optimizer's own check is the CLI's bound
    hps = ["adam.betas=[0.9,0.99]", "deo_paper.gate=null", "deo_paper.gate=0.5", "gd.lr=20"]
    argv = ["race", "--optimizers", "gd,adam,deo_paper", "--steps", "2", "--out", str(tmp_path)]
    for hp in hps:
        argv += ["--hp", hp]
    assert main(argv) == 0
    gd, adam, deo_paper = traces_from_json((tmp_path / "traces.json").read_text())
    assert gd.hyperparams["lr"] == 20 and adam.hyperparams["betas"] == [0.9, 0.99]
    assert deo_paper.hyperparams["gate"] == 0.5


def test_a_run_that_fails_leaves_no_empty_out_folder(tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    with pytest.raises(SystemExit, match="unknown optimizer"):
        main(["race", "--optimizers", "nope", "--steps", "5", "--out", str(out)])
    assert not (tmp_path / "new").exists()
    assert main(["race", "--optimizers", "gd", "--steps", "5", "--out", str(out), "--quiet"]) == 0
    assert (out / "traces.json").exists()


def test_an_optimizer_listed_twice_is_refused():
    with pytest.raises(SystemExit, match="--optimizers lists gd more than once"):
        main(["race", "--optimizers", "gd,adam,gd", "--steps", "5"])


def test_the_per_basin_column_stays_short_with_many_basins():
    from deo.cli import _basin_counts

    assert _basin_counts(np.array([3, 0, 5])) == "3 0 5"
    many = np.zeros(121, dtype=int)
    many[[4, 9, 50, 60]] = [7, 2, 11, 1]
    assert _basin_counts(many) == "4 basins, most 11 7 2"
    assert _basin_counts(np.zeros(0, dtype=int)) == "—"
