"""DEO Lab — watch optimizers at saddle points. Start with ``python serve.py`` (the README's command:
``streamlit run app.py`` with the interpreter warmed before the first visitor) or
``streamlit run app.py``."""

import streamlit as st

from pages.activity import script_run
from pages.common import (
    APP_RAN_KEY,
    DEEP_LINK_KEY,
    HIDE_CONTROLS_KEY,
    LARGE_FONTS_KEY,
    URL,
    compact_layout,
    link_params,
)
from pages.threads import single_threaded
from pages.url_params import report_rejected_params, vet_query_params
from pages.viewport import report_width

# An emoji favicon is drawn in the browser (an SVG data URL); a Material icon here would be fetched
# from fonts.gstatic.com on every visit, which fails offline (tests/test_browser.py checks no request
# leaves the server).
st.set_page_config(page_title="DEO Lab", page_icon="🧭", layout="wide")

# One intra-op thread per run: the app's tensors are small or many-row elementwise work, where a
# second thread only adds contention between concurrent sessions (benchmarks/escape_map.py: a
# 100×100 DEO-escape map took 7.5 s on 1 thread and up to 240 s on 2 on the loaded 2-core machine);
# and one BLAS thread in numpy and scipy, whose idle threads otherwise spin (pages/threads.py).
single_threaded()

PAGES = [
    # the default page is served at /; its url_path only reserves a name no one types (see ALIASES)
    st.Page(
        "pages/surfaces.py", title="Surfaces", icon=":material/landscape:", default=True, url_path="surfaces_"
    ),
    st.Page("pages/dimer.py", title="Dimer", icon=":material/straighten:", url_path="dimer"),
    st.Page("pages/networks.py", title="Networks", icon=":material/hub:", url_path="networks"),
    st.Page("pages/escape_map.py", title="Escape map", icon=":material/map:", url_path="escape_map"),
    st.Page("pages/sweeps.py", title="Sweeps", icon=":material/table_chart:", url_path="sweeps"),
    st.Page("pages/about.py", title="About / findings", icon=":material/menu_book:", url_path="about"),
]


def _to_surfaces() -> None:
    """/surfaces: on to the Surfaces page at /, with the link's settings."""
    st.switch_page(PAGES[0], query_params=link_params())


# Streamlit serves the default page at / only: a typed /surfaces showed a "Page not found" dialog.
# It leads to / with its query (not in the menu).
ALIASES = [st.Page(_to_surfaces, title="Surfaces", url_path="surfaces")]

# the whole run counts as a visitor's activity: serve.py's warm-up of the other pages waits for a
# quiet server (pages.activity)
with script_run():
    # before any widget: a hostile link (?steps=inf) never reaches Streamlit's URL seeding; what it drops is
    # named after the page, in report_rejected_params' one notice
    vet_query_params(defer=True, flags=(LARGE_FONTS_KEY, HIDE_CONTROLS_KEY))
    # The menu is drawn below with st.page_link; Streamlit's own is hidden (position="hidden" here and
    # client.showSidebarNavigation = false in .streamlit/config.toml, which also hides the legacy pages/
    # listing a cold server shows before this line has run once).
    page = st.navigation(PAGES + ALIASES, position="hidden")
    st.session_state[APP_RAN_KEY] = True
    deep_link = st.session_state.pop(DEEP_LINK_KEY, None)  # set by pages.common.require_app_navigation
    if deep_link is not None:
        target = next((p for p in PAGES if p.url_path == deep_link), None)
        if target is not None and target.url_path != page.url_path:
            st.switch_page(target, query_params=link_params())

    with st.sidebar:
        for menu_page in PAGES:
            st.page_link(menu_page)
        st.divider()
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
        report_width(compact_layout())  # the browser's width picks the compact or the desktop figures

    if st.session_state.get(LARGE_FONTS_KEY):
        # not inside a metric: its value (36 px) is a markdown paragraph too, and shrank to 20 px
        st.html(
            "<style>html, body, :not([data-testid='stMetricValue']) > [data-testid='stMarkdownContainer'] p"
            " { font-size: 20px; }</style>"
        )

    link_notices = st.container()  # above the page: what the page's controls did not take from the link
    try:
        page.run()
    finally:
        with link_notices:
            report_rejected_params()
