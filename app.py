"""DEO Lab — watch optimizers at saddle points. Start with ``streamlit run app.py``."""

import streamlit as st
import torch

from pages.common import HIDE_CONTROLS_KEY, LARGE_FONTS_KEY, URL
from pages.url_params import report_rejected_params, vet_query_params

st.set_page_config(page_title="DEO Lab", page_icon="🧭", layout="wide")

# One intra-op thread per run: the app's tensors are small or many-row elementwise work, where a
# second thread only adds contention between concurrent sessions (benchmarks/escape_map.py: a
# 100×100 DEO-escape map took 7.5 s on 1 thread and up to 240 s on 2 on the loaded 2-core machine).
torch.set_num_threads(1)

PAGES = [
    st.Page("pages/surfaces.py", title="Surfaces", icon="🏔️", default=True, url_path="surfaces"),
    st.Page("pages/dimer.py", title="Dimer", icon="🧲", url_path="dimer"),
    st.Page("pages/networks.py", title="Networks", icon="🕸️", url_path="networks"),
    st.Page("pages/escape_map.py", title="Escape map", icon="🗺️", url_path="escape_map"),
    st.Page("pages/about.py", title="About / findings", icon="📖", url_path="about"),
]

vet_query_params()  # before any widget: a hostile link (?steps=inf) never reaches Streamlit's URL seeding
page = st.navigation(PAGES)

with st.sidebar:
    st.toggle(
        "Large fonts (projector)",
        key=LARGE_FONTS_KEY,
        bind=URL,
        help="Bigger text, lines and markers in every figure and on the page.",
    )
    st.toggle(
        "Hide controls (lecture)",
        key=HIDE_CONTROLS_KEY,
        bind=URL,
        help="Fold the controls away; the configuration (and the link) stays as it is.",
    )
    st.divider()

if st.session_state.get(LARGE_FONTS_KEY):
    st.html("<style>html, body, [data-testid='stMarkdownContainer'] p { font-size: 20px; }</style>")

link_notices = st.container()  # above the page: what the page's controls did not take from the link
try:
    page.run()
finally:
    with link_notices:
        report_rejected_params()
