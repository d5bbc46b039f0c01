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
from pages.common import chart_config, large_fonts, phone, require_app_navigation, safe_block
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


def _new_table() -> None:
    """Another table has other problems and axes: its choices start from their defaults."""
    for key in ("sw.problem", "sw.x"):
        st.session_state.pop(key, None)


choice = st.selectbox("Table", [*tables, UPLOAD], key="sw.table", on_change=_new_table)
frame = None
if choice == UPLOAD:
    upload = st.file_uploader("A sweep table", type=["parquet", "csv"], key="sw.upload")
    if upload is not None:
        with safe_block("Reading the table"):
            frame, meta = _load(upload.name, upload.getvalue())
else:
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
left, right, third = st.columns(3)
problem = left.selectbox("Problem", problems, key="sw.problem")
metric = right.selectbox("Metric", metrics, format_func=lambda m: METRICS[m], key="sw.metric")
axes = grid_axes(frame)
x = third.selectbox("Across", [*axes, "optimizer"], key="sw.x", help="the heatmaps' horizontal axis")
part = frame[frame["problem"] == problem]
st.caption(
    f"{len(part)} cells of {len(frame)}; {part['optimizer'].nunique()} optimizers, "
    f"{part['seed'].nunique()} seeds. Grey: never escaped within the budget (or no cell)."
)

with safe_block("The summary"):
    st.markdown(f"**{METRICS[metric]}**, median [IQR] over the other axes (— : the median never escaped)")
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
            panels, x_title=x, value_title=METRICS[metric], large=large_fonts(), compact=phone()
        )
        st.plotly_chart(figure, key="sw.heatmaps", config=chart_config())
    else:
        st.info(f"No optimizer of this problem has the axis {x!r}.")
