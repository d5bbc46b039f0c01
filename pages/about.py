"""About / findings — what DEO is, what the published code does, and what this repository measured
(UX.md §5).

Every fact is shown next to the test or benchmark command that produces it. Benchmark numbers are
read from the committed files under ``benchmarks/results/`` (never typed into this page); a fact
whose file is absent says "not measured yet" with the command to run. Test-backed facts name the
test; the page checks that the test exists in ``tests/`` and says so when it does not.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.about_charts import LOSSES, PAPER_CSV, PUBLISHED_CSV, RESULTS, ROOT, TUNED_CSV, chart_of, read_csv
from pages.common import (
    URL,
    chart_config,
    compact_layout,
    large_fonts,
    require_app_navigation,
    safe_block,
)
from viz.findings_figs import final_losses

require_app_navigation()

P = "ab."


@dataclass(frozen=True)
class BackedFact:
    """A statement with its numbers, backed by one test (``path::name``)."""

    statement: str
    test: str  # "tests/test_x.py::test_name"

    def backed(self) -> bool:
        """True when the named test function exists in the named file."""
        path, _, name = self.test.partition("::")
        file = ROOT / path
        return file.exists() and re.search(rf"^def {re.escape(name)}\(", file.read_text(), re.M) is not None


@dataclass(frozen=True)
class Benchmark:
    """A committed result file and the command that writes it."""

    file: str  # under benchmarks/results/
    script: str  # under benchmarks/
    command: str
    what: str


DEFECT_FACTS = (
    BackedFact(
        "**Wrong rotation sign.** The published rotation N ← normalize(N + η·perp_N(g₁ − g₀)) is power "
        "iteration on I + ηΔR·H: on ½xᵀHx with H = diag(3, 1, −2) it ends at the *maximum*-curvature "
        "direction (NᵀHN = 3), not at the min mode (−2).",
        "tests/test_baselines.py::test_published_v7_rotation_climbs_to_the_maximum_curvature_direction",
    ),
    BackedFact(
        "**The other published rotation rule drifts to zero curvature** (|NᵀHN| < 0.05 on the same H), "
        "again not the min mode.",
        "tests/test_baselines.py::test_published_v4_rotation_drifts_to_zero_curvature",
    ),
    BackedFact(
        "**The dimer never rotates in the published runs.** With the training script's forward-only "
        "closure the second gradient equals the first: N is NaN (0/0) from the first rotation (step 10) "
        'on, and from then on the update is Adam\'s. In steps 1–9 the "dimer step" still fires wherever '
        "g·N < 0 (on a quadratic, 5 of 10 seeds end off plain Adam's path), so the run is Adam only from "
        "step 10.",
        "tests/test_baselines.py::"
        "test_published_v4_forward_only_closure_nan_from_step_10_and_from_then_on_the_update_is_adams",
    ),
    BackedFact(
        '**The published "dimer step" goes uphill.** θ += s(g·N)N when g·N < 0 moves along −N where '
        "the loss rises: with a working closure on x²−y² (Adam, lr 0.01, s = 0.1) it climbs to |θ| > 20 "
        "in ≈ 60 steps; with the authors' s = 5.0 in ≤ 11 steps.",
        "tests/test_baselines.py::test_published_v4_dimer_step_moves_uphill_along_n",
    ),
    BackedFact(
        "The fourth published class keeps N at its random start forever under that closure.",
        "tests/test_baselines.py::test_published_v7_forward_only_closure_freezes_n_at_its_random_start",
    ),
)

ENGINE_FACTS = (
    BackedFact(
        "**Projection cannot escape a strict saddle.** With the exact min eigenvector, DEO's α = 1 "
        "(g − (g·N)N) never leaves x²−y², x²−y²+y⁴/4 or the monkey saddle within 20 000 steps (lr 0.01), "
        "where GD escapes in 349–804 steps; amplifying (α = −1) escapes in 177–371 steps (escaped: "
        "f ≤ −1; on x²−y²+y⁴/4, whose minimum is exactly −1, f ≤ −0.9).",
        "tests/test_optim.py::test_escape_table_gd_and_exact_n_deo",
    ),
    BackedFact(
        "GD's escape time from x²−y² at (1, 1e-3) is the closed form ⌈ln(1/|y₀|)/ln(1 + 2η)⌉ = 349.",
        "tests/test_optim.py::test_gd_escape_time_matches_the_closed_form_on_x2_minus_y2",
    ),
    BackedFact(
        "With its own dimer (not the exact eigenvector), DEO at the paper's setting (α = 1, a rotation "
        "every 10 steps) is still stuck on all four saddles after 850 steps (GD's slowest escape: 804).",
        "tests/test_optim.py::test_engine_dimer_gives_the_same_picture_alpha_one_is_stuck",
    ),
    BackedFact(
        "With its own dimer (a rotation every step, seed 0), α = −1 escapes within ±2 steps of the exact "
        "eigenvector.",
        "tests/test_optim.py::test_engine_dimer_gives_the_same_picture_alpha_minus_one_escapes",
    ),
    BackedFact(
        "Started *exactly* on a saddle, only noise (PGD) or an explicit negative-curvature step "
        "(nc_step) escapes; plain GD does not move.",
        "tests/test_optim.py::test_nc_step_escapes_from_exactly_on_the_saddle",
    ),
    BackedFact(
        "The modified gradient satisfies g_mod·N = (1 − α)(g·N) exactly.",
        "tests/test_optim.py::test_modified_gradient_component_along_n_is_one_minus_alpha",
    ),
    BackedFact(
        "The gradient-evaluation counter is exact: T steps with a rotation event every k steps cost "
        "T + ⌈T/k⌉·(r + 1)·c gradients (one probe of the warm-started N plus one per rotation iteration; "
        "c = 1 forward, 2 central differences).",
        "tests/test_optim.py::test_grad_evals_count_the_algorithm_cost_exactly",
    ),
)

BENCHMARKS = (
    Benchmark(
        "engine.md",
        "engine.py",
        "python benchmarks/engine.py",
        "What DEO costs per step against Adam, and what batching buys.",
    ),
    Benchmark(
        "engine_cost.md",
        "engine.py",
        "python benchmarks/engine.py --repeats 5 --threads 1 --cost-only",
        "What a DEO step costs against Adam(foreach=True) after the per-parameter step (part 1 only).",
    ),
    Benchmark(
        "engine_accuracy.md",
        "engine_accuracy.py",
        "python benchmarks/engine_accuracy.py 5",
        "How many gradients min_mode needs to find the min mode, against Lanczos.",
    ),
    Benchmark(
        "escape.md",
        "escape.py",
        "python benchmarks/escape.py",
        "Steps and gradient evaluations to escape each saddle, optimizer by optimizer.",
    ),
    Benchmark(
        "escape_map.md",
        "escape_map.py",
        "python benchmarks/escape_map.py",
        "Throughput of the vectorised escape map.",
    ),
    Benchmark(
        "paper.md",
        "paper.py",
        "python benchmarks/paper.py",
        "The paper's own setting (char-level GPT on tiny Shakespeare), our runs.",
    ),
    Benchmark(
        "controls.md",
        "controls.py",
        "python benchmarks/controls.py",
        "Does the rotating dimer beat a random direction that is never rotated (the controls)?",
    ),
    Benchmark(
        "tuned_lr.md",
        "tuned_lr.py",
        "python benchmarks/tuned_lr.py",
        "Every optimizer at its best learning rate of a grid: does DEO help anywhere?",
    ),
)


def _findings_chart(kind: str, path: Path, loss: str | None = None):
    """The ``kind`` chart of the CSV at ``path`` as it is now, in this visitor's view."""
    return chart_of(kind, path, loss, large_fonts(), compact_layout())


def long_controls_sentence(text: str) -> str | None:
    """The 1 000-step controls in one sentence, from ``controls_long.md``'s own table (its assembled
    tiny_transformer section: one row of "median [IQR] (escaped/seeds)" cells for Adam, DEO (paper),
    the fixed and the re-drawn control), so that the page says what the committed table says."""
    found = re.search(r"<!-- part:assembled:tiny_transformer -->\n(.*?)\n<!-- end:", text, re.S)
    rows = [line for line in found.group(1).splitlines() if re.search(r"\(\d+/\d+\)", line)] if found else []
    if not rows:
        return None
    cells = [cell.strip() for cell in rows[0].strip().strip("|").split("|")]
    if len(cells) != 4:
        return None
    (_, adam_n), (dimer, dimer_n), (fixed, fixed_n), (redrawn, redrawn_n) = (
        (cell.split()[0], re.search(r"\((\d+/\d+)\)", cell).group(1)) for cell in cells
    )
    return (
        "At 1 000 steps instead of 400 (`benchmarks/results/controls_long.md`, same 20 seeds) the controls "
        f"catch up in count — DEO (paper) {dimer_n}, fixed control {fixed_n}, re-drawn {redrawn_n}, Adam "
        f"{adam_n} — and DEO (paper) leaves the plateau earlier (median {dimer} against {fixed} and "
        f"{redrawn} steps)."
    )


def _show_test_fact(fact: BackedFact) -> None:
    command = f"python -m pytest {fact.test}"
    if fact.backed():
        st.markdown(f"- {fact.statement}  \n  Backed by: `{command}`")
    else:
        st.markdown(
            f"- ~~{fact.statement}~~  \n  *Not backed yet: the test `{fact.test}` is not in the repository.*"
        )


def _command_line(text: str) -> str | None:
    """The ``Command: `...` `` line a results file records (None if it has none)."""
    match = re.search(r"^Command:\s*`([^`]+)`", text, re.M)
    return match.group(1) if match else None


def _show_benchmark(bench: Benchmark) -> None:
    path = RESULTS / bench.file
    if not path.exists():
        if (ROOT / "benchmarks" / bench.script).exists():
            st.markdown(
                f"**{bench.what}** — not measured yet: run `{bench.command}` "
                f"(writes `benchmarks/results/{bench.file}`)."
            )
        return
    text = path.read_text()
    lines = text.splitlines()
    title = lines[0].lstrip("# ").strip() if lines and lines[0].startswith("#") else bench.file
    command = _command_line(text) or bench.command
    with st.expander(f"{title}  —  `{command}`", expanded=False):
        body = "\n".join(lines[1:]) if lines and lines[0].startswith("#") else text
        st.markdown(re.sub(r"^#{1,6}\s+", "##### ", body, flags=re.M))  # the file's sections, small
        st.caption(f"From `benchmarks/results/{bench.file}`, written by `{command}`.")


def _other_results() -> list[Path]:
    """Result files this page does not list by name."""
    known = {b.file for b in BENCHMARKS}
    return sorted(p for p in RESULTS.glob("*.md") if p.name not in known) if RESULTS.exists() else []


def _other_scripts() -> list[Benchmark]:
    """Benchmark scripts this page does not list by name and whose result file is absent."""
    known = {b.script for b in BENCHMARKS}
    out = []
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        if script.name in known or (RESULTS / f"{script.stem}.md").exists():
            continue
        doc = ast.get_docstring(ast.parse(script.read_text())) or script.stem
        out.append(
            Benchmark(
                f"{script.stem}.md", script.name, f"python benchmarks/{script.name}", doc.splitlines()[0]
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- page

st.title("About DEO and what we measured")

st.header("What DEO is")
st.markdown(
    "Dimer-Enhanced Optimization (Hu, Cao, Liu, arXiv 2507.19968, 2025) borrows the **dimer method** "
    "of molecular simulation: two points a **dimer length** ΔR apart probe the curvature along an "
    "orientation N with gradients only, and **rotations** turn N toward the Hessian's "
    "minimum-curvature eigenvector. Every few steps DEO removes the gradient's component along N:"
)
# one equation per line: a display equation never wraps, and on a phone (≈ 390 px of text) the three
# in one row (667 px) or g_mod with its note (482 px) were cut off behind a horizontal scroll
st.latex(r"D = \frac{g(\theta + \Delta R\,N) - g(\theta)}{\Delta R} \approx HN")
st.latex(r"C = D\cdot N,\qquad F_R = -\bigl(D - (D\cdot N)\,N\bigr)")
st.latex(r"g_{\mathrm{mod}} = g - \alpha\,(g\cdot N)\,N")
st.caption(
    "C is the curvature estimate, F_R the rotational force (its norm: the torque). α = 1 is the "
    "paper's projection, α = 2 reflects the "
    "component (the chemists' saddle search), α = −1 amplifies it. Cost: one gradient per step plus, "
    "at every rotation event (every k steps), (r + 1)·c more (a probe of N and one per rotation "
    "iteration; c = 1 forward or 2 central differences). See the Dimer page."
)

st.header("What the published code does")
st.markdown(
    "The authors' code (a nanoGPT fork with four optimizer classes) was reproduced in "
    "`deo.baselines.PublishedDimer`. The tests below run that reproduction:"
)
for fact in DEFECT_FACTS:
    _show_test_fact(fact)

st.subheader("The published curves")
st.markdown(
    "The published evaluation curves (8 optimizers × two GPT sizes, 20 000 steps on tiny Shakespeare). "
    "Per `docs/findings.md` (finding 3), the published **adam** and **sgd** baselines carry *coupled* "
    "L2 weight decay 0.1 "
    "(dashed) while the dimer classes have none, and per the tests above the dimer never rotated in "
    "those runs: compare the dimer classes with adamw, not with the dashed baselines."
)
loss = st.radio(
    "Loss",
    LOSSES,
    horizontal=True,
    key=f"{P}loss",
    bind=URL,
    format_func=lambda v: v.replace("_", " "),
    help="Evaluated every 250 steps on 20 batches.",
)
with safe_block("The published curves"):
    if not PUBLISHED_CSV.exists():
        st.warning(
            f"The published curves are not here: expected `{PUBLISHED_CSV}` "
            "(`../shared/data/dimertrainer-eval-curves.csv` from the repository root)."
        )
    else:
        curves = read_csv(str(PUBLISHED_CSV), PUBLISHED_CSV.stat().st_mtime_ns)
        st.plotly_chart(
            _findings_chart("published", PUBLISHED_CSV, loss),
            key=f"{P}curves",
            config=chart_config(),
        )
        finals = pd.DataFrame(final_losses(curves))
        st.dataframe(finals, hide_index=True)
        st.caption(
            "Last evaluation of each published run, read from the CSV. Eval noise measured on our runs "
            "(benchmarks/results/paper_seeds.md, 3 seeds, 250 steps): sd 0.011 over 20-batch eval sets at "
            "a fixed checkpoint, 0.003 over seeds. Compare the dashed "
            "baselines with adamw and the dimer classes of the same model size."
        )
        st.download_button(
            "⬇ Published curves (CSV)",
            PUBLISHED_CSV.read_bytes(),
            file_name=PUBLISHED_CSV.name,
            mime="text/csv",
            on_click="ignore",
        )

st.subheader("Our runs of the paper's setting")
with safe_block("Our paper runs"):
    if not PAPER_CSV.exists():
        st.markdown(
            "Not measured yet: run `python benchmarks/paper.py` (writes `benchmarks/results/paper.csv`: our "
            "runs of the 0.80M GPT next to the published curves)."
        )
    else:
        st.plotly_chart(
            _findings_chart("paper", PAPER_CSV, loss),
            key=f"{P}paper",
            config=chart_config(),
        )
        st.caption(
            "Solid: our runs (same start, batches and schedule for every optimizer; `benchmarks/paper.py`, "
            "see paper.md below for the budget and the machine). Dotted: the published curves of the "
            "0.80M model over the same steps. From `benchmarks/results/paper.csv`."
        )

st.header("What this repository measured")
st.markdown("**Engine facts** (each a test in `tests/`; run all with `python -m pytest -q`):")
for fact in ENGINE_FACTS:
    _show_test_fact(fact)

st.subheader("Does the rotating dimer beat a random direction?")
with safe_block("Controls"):
    controls = RESULTS / "controls.md"
    if not controls.exists():
        st.markdown(
            "Not measured yet: run `python benchmarks/controls.py` (writes `benchmarks/results/controls.md`: "
            "every DEO preset against its random-direction controls)."
        )
    else:
        st.markdown(
            "Each DEO preset has two controls with the same step and the same gradient charge: a random N "
            "drawn once and never rotated, and one re-drawn at every rotation event. A DEO win that its "
            "control shares is symmetry breaking, not the min mode. The tiny Transformer, per seed, from "
            "`benchmarks/results/controls.md` (all problems in the expander below):"
        )
        found = re.search(
            r"<!-- part:assembled:tiny_transformer -->\n(.*?)\n<!-- end:", controls.read_text(), re.S
        )
        if found:
            st.markdown(re.sub(r"^#{1,6}\s+", "##### ", found.group(1), flags=re.M))
        if (RESULTS / "controls_long.md").exists():
            longer = long_controls_sentence((RESULTS / "controls_long.md").read_text())
            if longer:
                st.markdown(longer)

st.subheader("Does DEO help anywhere, at tuned learning rates?")
with safe_block("Tuned learning rates"):
    if not TUNED_CSV.exists():
        st.markdown(
            "Not measured yet: run `python benchmarks/tuned_lr.py` (writes `benchmarks/results/tuned_lr.csv` "
            "and `tuned_lr.md`: every optimizer at its best learning rate of a grid)."
        )
    else:
        st.plotly_chart(
            _findings_chart("tuned_lr", TUNED_CSV),
            key=f"{P}tuned",
            config=chart_config(),
        )
        st.caption(
            "Median gradient evaluations to escape (seeds in `tuned_lr.md`) against the learning rate; the "
            "ring marks each optimizer's best grid point, a gap a grid point where the median run did not "
            "escape. From `benchmarks/results/tuned_lr.csv`, written by `python benchmarks/tuned_lr.py`."
        )

st.markdown(
    "**Benchmarks** (numbers read from `benchmarks/results/`; the machine is shared and noisy, "
    "each file says how it was measured):"
)
for bench in BENCHMARKS:
    with safe_block(f"Reading {bench.file}"):
        _show_benchmark(bench)
for path in _other_results():
    with safe_block(f"Reading {path.name}"):
        _show_benchmark(Benchmark(path.name, "", "see the file", path.stem))
for bench in _other_scripts():
    _show_benchmark(bench)
