"""Each preset carries how a person sets its hyperparameters (``deo.presets.Hyperparameter``), and
the pages build their controls from it: plain words, bounds every page shares, the rest "Advanced".
"""

from __future__ import annotations

import inspect

import pytest
import torch
from apptest_helpers import no_exception, page_runner
from streamlit.testing.v1 import AppTest

from deo.budget import check_race
from deo.entrants import OptimizerSpec
from deo.optim import DEO
from deo.presets import DIMER_LENGTH, PRESETS, Hyperparameter

WIDGETS = ("NumberInput", "Selectbox", "Slider", "SelectSlider", "Checkbox", "Radio", "TextInput")
TIMEOUT_S = 240  # a cold page run on the busy 2-core machine


def keywords(opt: torch.optim.Optimizer) -> set[str]:
    """The keyword arguments the optimizer's constructor takes (DEO's base optimizer's too)."""
    classes = [type(opt)] + ([type(opt.base)] if isinstance(opt, DEO) else [])
    return {name for cls in classes for name in inspect.signature(cls.__init__).parameters} - {
        "self",
        "params",
    }


@pytest.mark.parametrize("key", list(PRESETS))
def test_metadata_covers_exactly_the_hyperparameters_the_preset_passes_its_optimizer(key):
    preset = PRESETS[key]
    assert list(preset.hyperparameters) and set(preset.hyperparameters) == set(preset.defaults)
    opt = preset.build([torch.zeros(2, requires_grad=True)], seed=0)
    assert set(preset.defaults) <= keywords(opt)
    for name, meta in preset.hyperparameters.items():
        assert isinstance(meta, Hyperparameter)
        assert meta.allows(preset.defaults[name]), (name, preset.defaults[name])
        assert meta.label and "_" not in meta.label and meta.help and "_" not in meta.help


@pytest.mark.parametrize("key", list(PRESETS))
def test_three_or_four_settings_tell_what_a_preset_does_and_the_rest_are_advanced(key):
    preset = PRESETS[key]
    main, advanced = preset.main_hyperparameters(), preset.advanced_hyperparameters()
    assert 1 <= len(main) <= 4 and main[0] == "lr"
    fixed = [name for name, meta in preset.hyperparameters.items() if meta.fixed]
    assert sorted(main + advanced + fixed) == sorted(preset.defaults)


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_bound_a_control_offers_is_accepted_by_the_optimizer(key):
    # float64 as on the surfaces; in float32 DEO refuses a ΔR below its resolution, saying so
    preset = PRESETS[key]
    for name, meta in preset.hyperparameters.items():
        if meta.choices or meta.follows:  # a re-draw interval must also divide by the rotation interval
            continue
        for bound in (meta.low, meta.high):
            value = [bound] * len(meta.parts) if meta.parts else bound
            overrides = {name: value}
            if name == "rotation_step":
                overrides["rotation"] = "sd"  # the only rotation that takes a step size
            preset.build([torch.zeros(2, dtype=torch.float64, requires_grad=True)], seed=0, **overrides)
            check_race([OptimizerSpec(key, overrides)], 10)  # and by the budget (it refused 0 rotations)


@pytest.mark.parametrize("key", list(PRESETS))
def test_every_choice_a_control_offers_is_accepted_by_the_optimizer(key):
    preset = PRESETS[key]
    for name, meta in preset.hyperparameters.items():
        for choice in () if meta.fixed else meta.choices:
            extra = {"rotation_step": 0.1} if (name, choice) == ("rotation", "sd") else {}
            preset.build([torch.zeros(2, requires_grad=True)], seed=0, **{name: choice}, **extra)


def test_a_re_draw_interval_left_alone_follows_the_rotation_interval():
    preset = PRESETS["deo_paper_random_redrawn"]
    assert preset.resolve({"rotate_every": 4})["redraw_every"] == 4
    assert preset.resolve({"rotate_every": 4, "redraw_every": 8})["redraw_every"] == 8
    assert preset.resolve({})["redraw_every"] == preset.defaults["rotate_every"]


def test_log_scale_stops_are_the_powers_of_ten_within_the_bounds():
    assert DIMER_LENGTH.decades() == tuple(10.0**e for e in range(-8, 1))
    with pytest.raises(ValueError, match="not a log-scale"):
        PRESETS["deo_paper"].hyperparameters["alpha"].decades()


# ------------------------------------------------------------------------------------------ pages


@pytest.fixture(scope="module")
def surfaces_page(one_torch_thread) -> AppTest:
    at = page_runner("surfaces.py", TIMEOUT_S)(steps="10")
    no_exception(at)
    return at


def widgets(node, skip_expanders: bool) -> list:
    """The input widgets under ``node`` (those inside nested expanders too unless skipped)."""
    found = []
    for child in getattr(node, "children", {}).values():
        kind = type(child).__name__
        if kind in WIDGETS:
            found.append(child)
        elif not (kind == "Expander" and skip_expanders):
            found += widgets(child, skip_expanders)
    return found


def test_the_deo_escape_expander_shows_four_plain_inputs_and_hides_the_rest_under_advanced(surfaces_page):
    expander = next(e for e in surfaces_page.expander if e.label == "DEO-escape — hyperparameters")
    top = widgets(expander, skip_expanders=True)
    assert 1 <= len(top) <= 4
    assert [w.label for w in top] == [
        "learning rate η",
        "dimer length ΔR",
        "rotate the dimer every k steps",
        "how much of the gradient along N to remove (α)",
    ]
    nested = [child for child in expander.children.values() if type(child).__name__ == "Expander"]
    assert [e.label for e in nested] == ["Advanced"]
    everything = widgets(expander, skip_expanders=False)
    assert len(everything) == len(PRESETS["deo_escape"].defaults)
    for widget in everything:
        assert "_" not in widget.label and "None" not in widget.label
    texts = [c.value for c in expander.children.values() if type(c).__name__ == "Caption"]
    assert texts and not any("_" in t or "None" in t for t in texts)
    # an unset value reads as words in its empty input, never "None"
    rotation_step = surfaces_page.number_input(key="deo_escape.rotation_step")
    assert rotation_step.value is None and rotation_step.proto.placeholder == "— (sd rotation only)"


def test_url_parameters_still_set_the_controls_by_their_keys(one_torch_thread):
    at = page_runner("surfaces.py", TIMEOUT_S)(
        steps="10", opt=["DEO-escape"], **{"deo_escape.rotate_every": "3", "deo_escape.nc_step": "0.05"}
    )
    no_exception(at)
    assert at.number_input(key="deo_escape.rotate_every").value == 3
    assert at.number_input(key="deo_escape.nc_step").value == 0.05


def test_the_dimer_and_surfaces_pages_share_the_bounds_of_the_dimer_length(surfaces_page, one_torch_thread):
    dimer = page_runner("dimer.py", TIMEOUT_S)(**{"dm.ss.steps": "10"})
    no_exception(dimer)
    surfaces = surfaces_page.number_input(key="deo_escape.dimer_length")
    saddle_search = dimer.number_input(key="dm.ss.dimer_saddle_search.dimer_length")
    study = [float(v) for v in dimer.select_slider(key="dm.length").options]
    bounds = (DIMER_LENGTH.low, DIMER_LENGTH.high)
    assert (surfaces.min, surfaces.max) == (saddle_search.min, saddle_search.max) == bounds
    assert (min(study), max(study)) == bounds
