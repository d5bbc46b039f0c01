"""Sweeps — browse a sweep's results table (``python -m deo sweep``): the committed tables under
``benchmarks/results/`` or an uploaded ``results.parquet`` / ``results.csv``.

Pick a problem and a metric: a summary (median [IQR] over seeds per optimizer) and heatmaps of the
metric over a grid axis (e.g. ``hp.lr``) × seed, one per optimizer — or optimizer × seed when the
sweep has no grid. Everything shown is computed by ``deo.sweeps`` and drawn by ``viz.sweep_figs``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from deo.sweeps import grid_axes, heatmap_grid, read_table, summarise, sweep_tables
from pages.common import URL, chart_config, compact_layout, large_fonts, require_app_navigation, safe_block
from viz.sweep_figs import sweep_heatmaps

require_app_navigation()

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
METRICS = {
    "escape_step": "steps to escape",
    "grad_evals_to_escape": "gradient evaluations to escape",
    "final_loss": "final loss",
    "best_loss": "best loss",
    "wall_s": "wall time per cell (s)",
}
ESCAPE_METRICS = ("escape_step", "grad_evals_to_escape")  # NaN: never escaped
MISSING = {True: "never escaped within the budget", False: "no finite value"}  # a NaN, by metric kind
UPLOAD = "Upload a table…"


@st.cache_data(max_entries=8, show_spinner=False)
def _load(path: str, data: bytes | None = None):
    return read_table(path, data)


st.title("Sweeps")
st.caption(
    "Tables written by `python -m deo sweep CONFIG` (one row per cell: problem, preset, "
    "hyperparameters, seed, metrics, git revision and versions). See README, “Sweeps”."
)
tables = sweep_tables(RESULTS)


SHOWN_TABLE = "sw.shown"  # session state: which table the choices below were made for


def _choices_for(table: str) -> None:
    """Another table (picked, or uploaded in place of the last upload) has other problems, metrics
    and axes: its choices start from their defaults, never from the last table's (a metric the new
    table lacks once made the summary fail with "None")."""
    if st.session_state.get(SHOWN_TABLE) != table:
        for key in ("sw.problem", "sw.metric", "sw.x"):
            st.session_state.pop(key, None)
        st.session_state[SHOWN_TABLE] = table


choice = st.selectbox("Table", [*tables, UPLOAD], key="sw.table", bind=URL)
frame = None
if choice == UPLOAD:
    upload = st.file_uploader("A sweep table", type=["parquet", "csv"], key="sw.upload")
    if upload is not None:
        _choices_for(f"upload {upload.file_id}")
        with safe_block("Reading the table"):
            frame, meta = _load(upload.name, upload.getvalue())
else:
    _choices_for(choice)
    with safe_block("Reading the table"):
        frame, meta = _load(str(tables[choice]))

if frame is None:
    st.info("No table yet: pick a committed one or upload a `results.parquet` / `results.csv`.")
    st.stop()
missing = {"problem", "optimizer", "seed"} - set(frame.columns)
if missing:
    st.error(f"Not a sweep table: the columns {sorted(missing)} are missing.", icon="⚠️")
    st.stop()

problems = list(dict.fromkeys(frame["problem"]))
metrics = [m for m in METRICS if m in frame.columns]
if not metrics:
    st.error(
        "This table has no metric to show: none of the columns "
        + ", ".join(f"`{m}`" for m in METRICS)
        + " (what `python -m deo sweep` writes).",
        icon="⚠️",
    )
    st.stop()
left, right, third = st.columns(3)
problem = left.selectbox("Problem", problems, key="sw.problem", bind=URL)
metric = right.selectbox("Metric", metrics, format_func=lambda m: METRICS[m], key="sw.metric", bind=URL)
axes = grid_axes(frame)
x = third.selectbox(
    "Across", [*axes, "optimizer"], key="sw.x", bind=URL, help="the heatmaps' horizontal axis"
)
part = frame[frame["problem"] == problem]
st.caption(
    f"{len(part)} cells of {len(frame)}; {part['optimizer'].nunique()} optimizers, "
    f"{part['seed'].nunique()} seeds. Grey: {MISSING[metric in ESCAPE_METRICS]} (or no cell)."
)

with safe_block("The summary"):
    st.markdown(
        f"**{METRICS[metric]}**, median [IQR] over the other axes "
        f"(— : the median {'never escaped' if metric in ESCAPE_METRICS else 'is not finite'})"
    )
    st.dataframe(summarise(part, metric), width="stretch")

with safe_block("The heatmaps"):
    if x == "optimizer":
        panels = {problem: heatmap_grid(frame, problem, None, x="optimizer", value=metric)}
    else:
        panels = {
            name: heatmap_grid(frame, problem, name, x=x, value=metric)
            for name in dict.fromkeys(part["optimizer"])
            if part.loc[part["optimizer"] == name, x].notna().any()
        }
    if panels:
        figure = sweep_heatmaps(
            panels, x_title=x, value_title=METRICS[metric], large=large_fonts(), compact=compact_layout()
        )
        st.plotly_chart(figure, key="sw.heatmaps", config=chart_config())
    else:
        st.info(f"No optimizer of this problem has the axis {x!r}.")
