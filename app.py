"""DEO Lab — watch optimizers at saddle points. Start with ``streamlit run app.py``."""

import streamlit as st

st.set_page_config(page_title="DEO Lab", page_icon="🧭", layout="wide")

PAGES = [
    st.Page("pages/surfaces.py", title="Surfaces", icon="🏔️", default=True, url_path="surfaces"),
    st.Page("pages/dimer.py", title="Dimer", icon="🧲", url_path="dimer"),
    st.Page("pages/networks.py", title="Networks", icon="🕸️", url_path="networks"),
    st.Page("pages/escape_map.py", title="Escape map", icon="🗺️", url_path="escape_map"),
    st.Page("pages/about.py", title="About / findings", icon="📖", url_path="about"),
]

st.navigation(PAGES).run()
