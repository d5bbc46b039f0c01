"""One escape map: the app's Escape map page and ``python -m deo escape-map`` compute the same map
(``deo.escapes.surface_escape_map``) for the same settings."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from apptest_helpers import no_exception, page_runner

import landscapes
from deo.cli import main
from deo.escapes import grid_axes, grid_starts, map_escape, surface_escape_map
from deo.race import OptimizerSpec

run_page = page_runner("escape_map.py", 240)

SURFACE = "himmelblau"  # its first saddle (3.385, 0.074) is far from the window's centre (0, 0)
HALF_WIDTH = 0.5
GRID, STEPS, SEED, CLIP = 5, 120, 3, 2.0
LABELS = ["GD", "Adam", "DEO-escape"]


def _array(value) -> np.ndarray:
    """A Plotly JSON array: a list, or plotly 6's ``{"dtype", "bdata", "shape"}`` typed array."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")])
        return a.astype(np.float64)
    return np.array(value, dtype=np.float64)


def _cli_map(tmp_path, window) -> dict:
    (x0, x1), (y0, y1) = window
    argv = [
        "escape-map", "--surface", SURFACE, "--grid", str(GRID), "--optimizers", "gd,adam,deo_escape",
        "--steps", str(STEPS), "--seed", str(SEED), "--clip", str(CLIP),
        "--window", f"{x0!r},{x1!r},{y0!r},{y1!r}", "--out", str(tmp_path), "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    return json.loads((tmp_path / "escape_map.json").read_text())


def test_the_pages_map_equals_the_clis_map(tmp_path):
    surface = landscapes.SURFACES[SURFACE]
    sx, sy = next(p.xy for p in surface.stationary_points if p.kind == "saddle")
    window = ((sx - HALF_WIDTH, sx + HALF_WIDTH), (sy - HALF_WIDTH, sy + HALF_WIDTH))
    at = run_page(
        surface=surface.name,
        opt=LABELS,
        resolution=str(GRID),
        steps=str(STEPS),
        seed=str(SEED),
        clip=str(CLIP),
        half_width=str(HALF_WIDTH),
    )
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    maps = {t["name"]: t for t in figure["data"] if t["type"] == "heatmap" and t.get("coloraxis")}
    assert list(maps) == LABELS

    cli = _cli_map(tmp_path, window)
    assert cli["window"] == [list(w) for w in window]
    np.testing.assert_allclose(cli["escape"]["center"], [sx, sy])
    for label in LABELS:
        trace, result = maps[label], cli["results"][label]
        np.testing.assert_array_equal(_array(trace["x"]), cli["xs"])  # the same starts
        np.testing.assert_array_equal(_array(trace["y"]), cli["ys"])
        steps = np.array([np.nan if v is None else v for v in result["steps_to_escape"]], dtype=np.float64)
        steps[np.array(result["diverged"])] = np.nan  # the page draws a diverged start black, not a step
        np.testing.assert_array_equal(_array(trace["z"]).reshape(-1), steps)
        assert np.isfinite(steps).any()  # the map is not all "never escaped"
    table = at.dataframe[0].value.set_index("optimizer")
    for label in LABELS:
        escaped = sum(v is not None for v in cli["results"][label]["steps_to_escape"])
        assert table.loc[label, "escaped"] == f"{escaped}/{GRID * GRID}"


def test_the_library_map_is_the_clis_map_over_the_surfaces_window(tmp_path):
    surface = landscapes.SURFACES["saddle_plateau"]
    specs = [OptimizerSpec("gd"), OptimizerSpec("deo_escape")]
    out = surface_escape_map(surface, 4, specs, 60, seed=1)
    assert out.window == surface.bounds
    np.testing.assert_array_equal(out.starts, grid_starts(surface.bounds, 4))
    assert out.criterion.loss_below == map_escape(surface).loss_below
    argv = ["escape-map", "--surface", "saddle_plateau", "--grid", "4", "--optimizers", "gd,deo_escape"]
    assert main([*argv, "--steps", "60", "--seed", "1", "--out", str(tmp_path), "--quiet"]) == 0
    cli = json.loads((tmp_path / "escape_map.json").read_text())
    assert cli["starts"] == out.starts.tolist()
    for label, result in out.results.items():
        mine = {k: v for k, v in result.to_dict().items() if k != "wall_time"}
        theirs = {k: v for k, v in cli["results"][label].items() if k != "wall_time"}
        assert mine == theirs


def test_grid_axes_are_cell_centres_and_windows_are_checked():
    xs, ys = grid_axes(((0.0, 1.0), (-2.0, 2.0)), 4)
    np.testing.assert_allclose(xs, [0.125, 0.375, 0.625, 0.875])
    np.testing.assert_allclose(ys, [-1.5, -0.5, 0.5, 1.5])
    surface = landscapes.SURFACES["saddle"]
    with pytest.raises(ValueError, match="window"):
        surface_escape_map(surface, 3, [OptimizerSpec("gd")], 5, window=((1.0, 0.0), (0.0, 1.0)))
    with pytest.raises(ValueError, match="grid size"):
        grid_axes(surface.bounds, 0)
