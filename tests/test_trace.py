"""Trace: the per-step record of one run, and its exact JSON / CSV round trips."""

import json
import math

import numpy as np
import pytest

from deo.trace import Trace, traces_from_csv, traces_from_json, traces_to_csv, traces_to_json


def make_trace(d: int = 2, rows: int = 5, dimer: bool = True, key: str = "deo_paper", seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)

    def vec():
        return rng.standard_normal((rows, d))

    curvature = rng.standard_normal(rows) if dimer else np.full(rows, np.nan)
    curvature[0] = np.nan
    loss = rng.standard_normal(rows)
    loss[-1] = -np.inf
    return Trace(
        key=key,
        label=key.upper(),
        hyperparams={"lr": 0.01, "betas": (0.9, 0.999), "gate": None, "clip": None},
        status="escaped",
        stop_step=None,
        escape_step=3,
        steps=np.arange(rows),
        loss=loss,
        position=vec(),
        position_2d=vec()[:, :2] if d >= 2 else None,
        grad=vec(),
        modified_grad=vec(),
        grad_norm=np.abs(rng.standard_normal(rows)),
        modified_grad_norm=np.abs(rng.standard_normal(rows)),
        removed_fraction=rng.uniform(size=rows),
        direction=vec() if dimer else None,
        dimer_length=1e-3 if dimer else None,
        curvature=curvature,
        torque=rng.uniform(size=rows),
        exact_lambda_min=rng.standard_normal(rows),
        exact_v_min=vec(),
        cos_to_vmin=rng.uniform(size=rows),
        grad_evals=np.arange(rows) * 11 // 10,
        diagnostic_evals=np.arange(rows),
        wall_time=0.1 + 1e-17,
    )


def test_json_round_trip_is_exact_including_nan_and_inf():
    trace = make_trace()
    text = trace.to_json()
    back = Trace.from_json(text)
    assert back == trace
    assert math.isnan(back.curvature[0]) and back.loss[-1] == -np.inf
    assert back.steps.dtype == np.int64 and back.loss.dtype == np.float64


def test_nan_scalars_round_trip_apart_from_no_dimer():
    """A NaN dimer length is not "no dimer" (None), and a NaN wall time loads back (it raised)."""
    for dimer_length, wall_time in ((math.nan, math.nan), (None, math.inf), (2e-3, -0.0)):
        trace = make_trace(dimer=dimer_length is not None)
        trace.dimer_length, trace.wall_time = dimer_length, wall_time
        for back in (Trace.from_json(trace.to_json()), traces_from_csv(traces_to_csv([trace]))[0]):
            if dimer_length is None:
                assert back.dimer_length is None
            else:
                assert repr(back.dimer_length) == repr(dimer_length)
            assert repr(back.wall_time) == repr(wall_time)
        assert "NaN" not in trace.to_json()


def test_json_is_strict_nan_becomes_null():
    data = json.loads(make_trace().to_json())  # json.loads accepts NaN; check it is not there
    assert data["curvature"][0] is None
    assert data["loss"][-1] == "-inf"
    assert "NaN" not in make_trace().to_json()


def test_json_file_written(tmp_path):
    trace = make_trace()
    path = tmp_path / "t.json"
    trace.to_json(path)
    assert Trace.from_json(path.read_text()) == trace


def test_list_json_round_trip_with_mixed_presets():
    traces = [make_trace(key="gd", dimer=False, seed=1), make_trace(seed=2)]
    back = traces_from_json(traces_to_json(traces))
    assert back == traces
    assert back[0].direction is None and back[0].dimer_length is None


def test_hyperparams_normalised_to_json_types_so_round_trip_is_equal():
    trace = make_trace()
    assert trace.hyperparams["betas"] == [0.9, 0.999]
    assert Trace.from_json(trace.to_json()).hyperparams == trace.hyperparams


def test_csv_round_trip_is_exact_for_small_d():
    traces = [make_trace(key="gd", dimer=False, seed=1), make_trace(seed=2), make_trace(key="adam", seed=3)]
    back = traces_from_csv(traces_to_csv(traces))
    assert back == traces


def test_csv_is_long_format_one_row_per_trace_and_step():
    traces = [make_trace(rows=4, seed=1), make_trace(rows=6, seed=2)]
    lines = traces_to_csv(traces).strip().split("\n")
    header = lines[0].split(",")
    assert len(lines) == 1 + 4 + 6
    assert {"trace", "key", "step", "loss", "position_0", "position_1", "direction_1"} <= set(header)
    assert "position_2" not in header


def test_csv_drops_vectors_above_ten_dimensions():
    trace = make_trace(d=11)
    back = traces_from_csv(traces_to_csv([trace]))[0]
    assert back.position is None and back.grad is None
    np.testing.assert_array_equal(back.position_2d, trace.position_2d)
    np.testing.assert_array_equal(back.loss, trace.loss)


def test_invalid_status_and_shapes_are_refused():
    trace = make_trace()
    with pytest.raises(ValueError, match="status must be one of"):
        Trace(**{**trace.__dict__, "status": "finished"})
    with pytest.raises(ValueError, match="position must have shape"):
        Trace(**{**trace.__dict__, "position": np.zeros((2, 2))})


def test_a_run_out_of_budget_reads_stuck_only_where_there_is_an_escape_to_miss():
    from deo.trace import FATES, fate

    assert fate("running") == "stuck" and fate("running", has_escape=False) == "out of steps"
    assert [fate(s, has_escape=False) for s in ("converged", "escaped", "diverged")] == [
        "converged",
        "escaped",
        "diverged",
    ]
    assert {"stuck", "out of steps"} <= set(FATES)


def test_a_trace_without_rows_survives_the_csv_round_trip_in_its_place():
    """A run whose start is already out of bounds has no rows: its trace vanished from the CSV (and
    the traces after it moved up one place)."""
    from deo.race import OptimizerSpec, race, surface_problem
    from deo.trace import traces_from_csv, traces_to_csv
    from landscapes.surfaces import SURFACES

    surface = SURFACES["saddle"]
    empty = race(surface_problem(surface, (100.0, 0.0)), [OptimizerSpec("gd")], 5)[0]
    full = race(surface_problem(surface, (1.0, 1e-3)), [OptimizerSpec("adam")], 5)[0]
    assert len(empty) == 0 and empty.status == "diverged"
    back = traces_from_csv(traces_to_csv([empty, full, empty]))
    shape = [(t.key, t.status, len(t)) for t in back]
    assert shape == [("gd", "diverged", 0), ("adam", full.status, 6), ("gd", "diverged", 0)]
    np.testing.assert_array_equal(back[1].position, full.position)
