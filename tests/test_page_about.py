"""The About / findings page: every claim names a test or benchmark that exists, numbers come from
the committed result files, and the published curves are drawn when their CSV is present."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from viz.findings_figs import final_losses, paper_comparison_figure, published_curves_figure, tuned_lr_figure

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "pages" / "about.py"
RESULTS = ROOT / "benchmarks" / "results"
PUBLISHED_CSV = ROOT.parent / "shared" / "data" / "dimertrainer-eval-curves.csv"
BACKED_BY = re.compile(r"Backed by: `python -m pytest (tests/[\w/]+\.py)::(\w+)`")


def run(**params: str) -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_default_run_explains_deo_with_its_formulas():
    at = run()
    assert_clean(at)
    assert at.title[0].value.endswith("About DEO and what we measured")
    formulas = " ".join(latex.value for latex in at.latex)
    assert r"g_{\mathrm{mod}} = g - \alpha\,(g\cdot N)\,N" in formulas
    assert "HN" in formulas


def test_every_claim_names_a_test_that_exists():
    at = run()
    texts = [m.value for m in at.markdown]
    backed = [BACKED_BY.search(t) for t in texts]
    backed = [m for m in backed if m]
    assert len(backed) >= 10
    for match in backed:
        path, name = match.groups()
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.M), f"{path}::{name} does not exist"
    assert not any("Not backed yet" in t for t in texts)


def test_each_committed_result_is_shown_with_its_command():
    at = run()
    labels = [e.label for e in at.expander]
    for path in sorted(RESULTS.glob("*.md")):
        text = path.read_text()
        title = text.splitlines()[0].lstrip("# ").strip()
        command = re.search(r"^Command:\s*`([^`]+)`", text, re.M)
        label = next((lab for lab in labels if lab.startswith(title)), None)
        assert label is not None, f"{path.name} is not shown"
        if command:
            assert command.group(1) in label


def test_absent_results_say_not_measured_yet_with_the_command():
    at = run()
    texts = " ".join(m.value for m in at.markdown)
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if not (RESULTS / f"{script.stem}.md").exists():
            assert f"not measured yet: run `python benchmarks/{script.name}" in texts


def test_published_curves_are_drawn_or_their_absence_is_said():
    at = run()
    assert_clean(at)
    if PUBLISHED_CSV.exists():
        charts = 1 + (RESULTS / "paper.csv").exists() + (RESULTS / "tuned_lr.csv").exists()
        assert len(at.get("plotly_chart")) == charts
        finals = at.dataframe[0].value
        assert len(finals) == 16  # 8 optimizers × 2 model sizes
        at.radio(key="ab.loss").set_value("train_loss").run()
        assert_clean(at)
    else:
        assert any("not here" in w.value for w in at.warning)


def test_loss_choice_is_read_from_the_url():
    at = run(**{"ab.loss": "train loss"})
    assert_clean(at)
    assert at.radio(key="ab.loss").value == "train_loss"


def test_projector_mode_renders():
    at = run(big="true")
    assert_clean(at)


# ------------------------------------------------------------------ the page's figure builders


def published_frame() -> pd.DataFrame:
    rows = []
    for model in ("0.80M", "10.65M"):
        for k, name in enumerate(("adam", "adamw", "dimerAdam")):
            for step in (0, 250, 500):
                loss = 3.0 - step / 500 - k
                rows.append({"model": model, "optimizer": name, "step": step, "train_loss": loss,
                             "val_loss": loss + 0.1})  # fmt: skip
    return pd.DataFrame(rows)


def test_published_curves_have_one_panel_per_model_and_dash_the_coupled_decay_baselines():
    fig = published_curves_figure(published_frame())
    assert len(fig.data) == 2 * 3
    dashes = {t.name: t.line.dash for t in fig.data}
    assert dashes["adam (coupled L2 wd 0.1)"] == "dash" and dashes["adamw"] == "solid"
    with pytest.raises(ValueError, match="val_loss"):
        published_curves_figure(published_frame().drop(columns="val_loss"))


def test_final_losses_are_the_last_evaluation_of_each_run_best_first():
    rows = final_losses(published_frame())
    assert len(rows) == 6 and all(r["step"] == 500 for r in rows)
    first = [r for r in rows if r["model"] == "0.80M"]
    assert [r["optimizer"] for r in first] == ["dimerAdam", "adamw", "adam"]
    assert first[-1]["coupled L2 weight decay"] is True


def test_paper_comparison_shows_our_runs_over_the_steps_they_cover():
    published = published_frame().query("model == '0.80M'").drop(columns="model")
    published = published.assign(source="published", label=published["optimizer"] + " (published)")
    ours = pd.DataFrame({"source": "ours", "optimizer": "deo_paper", "label": "DEO (paper)", "step": [0, 250],
                         "train_loss": [3.0, 2.0], "val_loss": [3.1, 2.1]})  # fmt: skip
    fig = paper_comparison_figure(pd.concat([ours, published], ignore_index=True))
    assert tuple(fig.layout.xaxis.range) == (0, 250 * 1.05)
    assert all(max(t.x) <= 250 for t in fig.data)  # published steps beyond our budget are left out
    solid = [t for t in fig.data if t.line.dash == "solid"]
    assert [t.name for t in solid] == ["DEO (paper)"] and np.allclose(solid[0].y, [3.1, 2.1])
    with pytest.raises(ValueError, match="ours"):
        paper_comparison_figure(published)


def test_tuned_lr_figure_has_a_panel_per_problem_and_rings_each_optimizers_best_lr():
    rows = []
    for problem in ("saddle", "two_moons"):
        for key, label, evals in (("gd", "GD", [900, 300, math.inf]), ("adam", "Adam", [math.inf, 80, 40])):
            for lr, e in zip((1e-3, 1e-2, 1e-1), evals):
                rows.append({"problem": problem, "optimizer": key, "label": label, "lr": lr, "seeds": 5,
                             "escaped": 5 if math.isfinite(e) else 0, "evals_median": e})  # fmt: skip
    fig = tuned_lr_figure(pd.DataFrame(rows))
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    rings = [t for t in fig.data if t.mode == "markers"]
    assert len(lines) == 4 and len(rings) == 4  # 2 problems × 2 optimizers
    gd = next(t for t in lines if t.name == "GD")
    assert list(gd.y) == [900, 300, None]  # not escaped: a gap
    assert sorted((r.x[0], r.y[0]) for r in rings) == [(0.01, 300), (0.01, 300), (0.1, 40), (0.1, 40)]
    assert [a.text for a in fig.layout.annotations] == ["saddle", "two_moons"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="evals_median"):
        tuned_lr_figure(pd.DataFrame(rows).drop(columns="evals_median"))


def test_tuned_lr_panels_label_every_decade_or_let_plotly_choose_over_a_narrow_range():
    """One y label a decade where a panel's values span two powers of ten or more; a narrower panel
    (tiny_transformer: 257 to 417 gradients) keeps plotly.js's own ticks: with one label a decade it
    had none at all."""
    cell = {"optimizer": "gd", "label": "GD", "seeds": 5, "escaped": 5}
    rows = [{**cell, "problem": "wide", "lr": lr, "evals_median": e} for lr, e in ((0.1, 5), (1.0, 500))]
    rows += [{**cell, "problem": "narrow", "lr": lr, "evals_median": e} for lr, e in ((0.1, 257), (1.0, 417))]
    fig = tuned_lr_figure(pd.DataFrame(rows))
    assert fig.layout.yaxis.dtick == 1 and fig.layout.yaxis2.dtick is None
    assert fig.layout.yaxis2.type == "log"


def _columns_and_tops(fig) -> tuple[set, list]:
    layout = fig.layout.to_plotly_json()
    names = sorted((k for k in layout if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1))
    return {tuple(layout[n]["domain"]) for n in names}, [layout["y" + n[1:]]["domain"][1] for n in names]


def test_on_a_phone_the_findings_panels_are_stacked_under_their_legend():
    """At 420 px the published curves' two panels ran their titles into each other and the tuned-lr
    grid was three ≈ 100 px panels a row. On a phone (``compact``) every panel takes the width, one
    under the other, long titles break after their first comma and the legend sits above."""
    cell = {"optimizer": "gd", "label": "GD", "seeds": 5, "escaped": 5, "evals_median": 10}
    problems = ("saddle", "two_moons hidden=4, init 0.001, 200 steps", "xor")
    rows = [{**cell, "problem": p, "lr": lr} for p in problems for lr in (0.1, 1.0)]
    for build in (
        lambda compact: published_curves_figure(published_frame(), compact=compact),
        lambda compact: tuned_lr_figure(pd.DataFrame(rows), compact=compact),
    ):
        desk, phone = build(False), build(True)
        columns, tops = _columns_and_tops(phone)
        assert columns == {(0.0, 1.0)} and tops == sorted(tops, reverse=True) and len(set(tops)) == len(tops)
        assert len(_columns_and_tops(desk)[0]) >= 2
        assert [t.name for t in phone.data] == [t.name for t in desk.data]
        assert phone.layout.legend.yanchor == "bottom" and phone.layout.legend.y > 1
    titles = [a.text for a in tuned_lr_figure(pd.DataFrame(rows), compact=True).layout.annotations]
    assert titles == ["saddle", "two_moons hidden=4,<br>init 0.001, 200 steps", "xor"]


def test_controls_are_shown_from_the_committed_table_or_said_absent():
    at = run()
    assert_clean(at)
    texts = " ".join(m.value for m in at.markdown)
    headers = [h.value for h in at.subheader]
    assert "Does the rotating dimer beat a random direction?" in headers
    if (RESULTS / "controls.md").exists():
        section = (RESULTS / "controls.md").read_text().split("<!-- part:assembled:tiny_transformer -->")
        if len(section) == 2:
            assert "tiny_transformer" in texts and "Steps to escape per seed" in texts
    else:
        assert "not measured yet: run `python benchmarks/controls.py`" in texts.lower()
    # the 1 000-step sentence says what controls_long.md's table says (it was typed in by hand and
    # went stale when the table was rerun)
    long_table = RESULTS / "controls_long.md"
    if long_table.exists():
        section = long_table.read_text().split("<!-- part:assembled:tiny_transformer -->")[1]
        row = next(line for line in section.splitlines() if re.search(r"\(\d+/\d+\)", line))
        counts = re.findall(r"\((\d+/\d+)\)", row)  # Adam, DEO (paper), fixed, re-drawn
        medians = [cell.split()[0] for cell in row.strip().strip("|").split("|")]
        sentence = next(m.value for m in at.markdown if m.value.startswith("At 1 000 steps"))
        adam, dimer, fixed, redrawn = counts
        assert f"DEO (paper) {dimer}, fixed control {fixed}, re-drawn {redrawn}, Adam {adam}" in sentence
        assert f"median {medians[1]} against {medians[2]} and {medians[3]} steps" in sentence


def test_the_long_controls_sentence_reads_the_table_it_names():
    from pages.about import long_controls_sentence

    table = (
        "<!-- part:assembled:tiny_transformer -->\n## tiny_transformer: 20 seeds\n\n"
        "| Adam | DEO (paper) | fixed | re-drawn |\n|---|---|---|---|\n"
        "| — (7/20) | 382 [309–424] (20/20) | 572 [509–877] (18/20) | 699 [469–966] (16/20) |\n"
        "<!-- end:assembled:tiny_transformer -->"
    )
    sentence = long_controls_sentence(table)
    assert "DEO (paper) 20/20, fixed control 18/20, re-drawn 16/20, Adam 7/20" in sentence
    assert "median 382 against 572 and 699 steps" in sentence
    assert long_controls_sentence("no table here") is None
