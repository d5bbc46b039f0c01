"""Presets: the optimizers of DEO.md's table, buildable by key with JSON-able defaults."""

import json

import pytest
import torch

from deo.baselines import PGD, PublishedDimer
from deo.optim import DEO
from deo.presets import PRESETS, Preset, controls_of, make_optimizer

LABELS = {
    "gd": "GD",
    "momentum": "Momentum",
    "adam": "Adam",
    "adamw": "AdamW",
    "pgd": "PGD",
    "deo_paper": "DEO (paper)",
    "deo_paper_random": "DEO (paper) — control: random fixed direction",
    "deo_paper_random_redrawn": "DEO (paper) — control: random direction, re-drawn every 10 steps",
    "deo_escape": "DEO-escape",
    "deo_escape_random": "DEO-escape — control: random fixed direction",
    "deo_escape_random_redrawn": "DEO-escape — control: random direction, re-drawn every step",
    "dimer_saddle_search": "Dimer saddle search",
    "dimer_saddle_search_random": "Dimer saddle search — control: random fixed direction",
    "dimer_saddle_search_random_redrawn": (
        "Dimer saddle search — control: random direction, re-drawn every step"
    ),
    "deo_published": "DEO (published code)",
}
DEO_KEYS = ("deo_paper", "deo_escape", "dimer_saddle_search")


def saddle_closure(opt, xy):
    def closure():
        opt.zero_grad()
        loss = (xy[..., 0] ** 2 - xy[..., 1] ** 2).sum()
        loss.backward()
        return loss

    return closure


def test_every_preset_of_the_spec_is_there_with_its_label():
    assert {key: preset.label for key, preset in PRESETS.items()} == LABELS
    for key, preset in PRESETS.items():
        assert isinstance(preset, Preset) and preset.key == key and preset.description


def test_defaults_are_json_able():
    for preset in PRESETS.values():
        assert json.loads(json.dumps(preset.defaults)) == preset.defaults


def test_uses_dimer_marks_the_dimer_presets():
    # the controls are DEO instances that probe with the closure too (the race clips only the update)
    assert {k for k, p in PRESETS.items() if p.uses_dimer} == {
        *(k for key in DEO_KEYS for k in (key, *controls_of(key))),
        "deo_published",
    }


@pytest.mark.parametrize("key", sorted(LABELS))
@pytest.mark.parametrize("batch_dims", [0, 1])
def test_every_preset_builds_and_steps_with_a_closure(key, batch_dims):
    xy = torch.tensor([[1.0, 0.1], [0.5, -0.2]] if batch_dims else [1.0, 0.1], dtype=torch.float64)
    xy.requires_grad_(True)
    opt = make_optimizer(key, [xy], batch_dims=batch_dims, seed=0)
    start = xy.detach().clone()
    for _ in range(3):
        loss = opt.step(saddle_closure(opt, xy))
    assert torch.is_tensor(loss) and torch.isfinite(loss)
    assert not torch.equal(xy.detach(), start)


def test_paper_preset_is_the_paper_setting():
    opt = make_optimizer("deo_paper", [torch.zeros(2, requires_grad=True)], seed=0)
    assert isinstance(opt, DEO) and isinstance(opt.base, torch.optim.Adam)
    assert (opt.alpha, opt.target, opt.rotate_every, opt.rotation) == (1.0, "gradient", 10, "fourier")
    assert opt.base.param_groups[0]["betas"] == (0.9, 0.999)


def test_escape_and_saddle_search_presets():
    escape = make_optimizer("deo_escape", [torch.zeros(2, requires_grad=True)], seed=0)
    assert isinstance(escape.base, torch.optim.SGD) and escape.alpha == -1.0 and escape.gate == 0.0
    search = make_optimizer("dimer_saddle_search", [torch.zeros(2, requires_grad=True)], seed=0)
    assert isinstance(search.base, torch.optim.SGD) and search.alpha == 2.0


def test_baseline_presets_are_torch_optimizers_with_the_spec_hyperparameters():
    p = [torch.zeros(2, requires_grad=True)]
    assert make_optimizer("momentum", p).param_groups[0]["momentum"] == 0.9
    assert make_optimizer("adam", p).param_groups[0]["betas"] == (0.9, 0.999)
    assert make_optimizer("adamw", p).param_groups[0]["weight_decay"] == 0.01
    assert isinstance(make_optimizer("pgd", p, seed=0), PGD)
    assert isinstance(make_optimizer("deo_published", p, seed=0), PublishedDimer)


def test_overrides_replace_defaults():
    x = torch.zeros(2, requires_grad=True)
    opt = make_optimizer("deo_paper", [x], seed=0, lr=0.5, alpha=-1.0, base="sgd")
    assert opt.param_groups[0]["lr"] == 0.5 and opt.alpha == -1.0
    assert type(opt.base) is torch.optim.SGD


def test_unknown_key_lists_the_presets():
    with pytest.raises(ValueError, match="deo_paper"):
        make_optimizer("lion", [torch.zeros(2, requires_grad=True)])


def test_unknown_hyperparameter_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="momentum") as info:
        make_optimizer("adam", [torch.zeros(2, requires_grad=True)], momentum=0.9)
    assert "betas" in str(info.value)


def test_invalid_value_is_refused_by_the_optimizer():
    with pytest.raises(ValueError, match="dimer_length"):
        make_optimizer("deo_paper", [torch.zeros(2, requires_grad=True)], dimer_length=-1.0)


def test_published_code_preset_uses_the_authors_train_py_values():
    # their train.py passes dimer_strength 5.0 and displacement 0.006 (not the file's 0.1 / 1e-4)
    defaults = PRESETS["deo_published"].defaults
    assert (defaults["dimer_strength"], defaults["displacement"]) == (5.0, 0.006)
    x = torch.zeros(3, requires_grad=True)
    opt = make_optimizer("deo_published", [x], seed=0)
    assert (opt.dimer_strength, opt.displacement) == (5.0, 0.006)


def test_paper_benchmark_runs_the_published_code_with_the_authors_values():
    from benchmarks import paper

    params = {"w": torch.zeros(4, 3, requires_grad=True), "b": torch.zeros(3, requires_grad=True)}
    for key in ("deo_published", "deo_published_forward"):
        opt = paper.make_optimizer(key, params, seed=0)
        assert (opt.dimer_strength, opt.displacement) == (5.0, 0.006)
    extra = paper.make_optimizer("deo_published_file_defaults", params, seed=0)
    assert (extra.dimer_strength, extra.displacement) == (0.1, 1e-4)  # the labelled extra row
    assert "deo_published_file_defaults" not in paper.DEFAULT_RUNS
    assert "defaults 0.1 / 1e-4" in paper.RUNS["deo_published_file_defaults"]["label"]


def test_every_deo_preset_is_followed_by_its_two_controls():
    keys = list(PRESETS)
    for key in DEO_KEYS:
        fixed, redrawn = controls_of(key)
        assert keys[keys.index(key) + 1 : keys.index(key) + 3] == [fixed, redrawn]
        base = PRESETS[key].defaults
        assert PRESETS[fixed].defaults == {**base, "direction": "random"}
        assert PRESETS[redrawn].defaults == {
            **base,
            "direction": "random",
            "redraw_every": base["rotate_every"],
        }
    assert controls_of("adam") == () and controls_of("deo_published") == ()


@pytest.mark.parametrize("key", DEO_KEYS)
def test_a_control_starts_from_the_dimer_runs_n_never_rotates_it_and_is_charged_the_same(key):
    def run(k):
        xy = torch.tensor([1.0, 1e-3], dtype=torch.float64, requires_grad=True)
        opt = make_optimizer(k, [xy], seed=3)
        n0 = opt.diagnostics()["direction"].clone()
        for _ in range(20):
            opt.step(saddle_closure(opt, xy))
        return n0, opt

    n0, dimer = run(key)
    fixed_n0, fixed = run(f"{key}_random")
    assert torch.equal(fixed_n0, n0)  # the same seed gives the same initial N
    assert torch.equal(fixed.diagnostics()["direction"], n0)  # never rotated
    assert not torch.equal(dimer.diagnostics()["direction"], n0)  # the dimer's N rotated
    assert fixed.diagnostics()["grad_evals"] == dimer.diagnostics()["grad_evals"]  # same accounting
    _, redrawn = run(f"{key}_random_redrawn")
    assert not torch.equal(redrawn.diagnostics()["direction"], n0)  # re-drawn
    assert redrawn.diagnostics()["grad_evals"] == dimer.diagnostics()["grad_evals"]


def test_redrawn_control_follows_an_overridden_rotation_interval():
    opt = make_optimizer(
        "deo_paper_random_redrawn", [torch.zeros(2, requires_grad=True)], seed=0, rotate_every=5
    )
    assert (opt.rotate_every, opt.redraw_every) == (5, 5)
