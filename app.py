"""DEO Lab — watch optimizers at saddle points. Start with ``streamlit run app.py``."""

import streamlit as st

from pages.common import HIDE_CONTROLS_KEY, LARGE_FONTS_KEY, URL

st.set_page_config(page_title="DEO Lab", page_icon="🧭", layout="wide")

PAGES = [
    st.Page("pages/surfaces.py", title="Surfaces", icon="🏔️", default=True, url_path="surfaces"),
    st.Page("pages/dimer.py", title="Dimer", icon="🧲", url_path="dimer"),
    st.Page("pages/networks.py", title="Networks", icon="🕸️", url_path="networks"),
    st.Page("pages/escape_map.py", title="Escape map", icon="🗺️", url_path="escape_map"),
    st.Page("pages/about.py", title="About / findings", icon="📖", url_path="about"),
]

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

page.run()
