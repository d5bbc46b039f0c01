"""Which figures a browser gets: the compact ones (a phone's) in a narrow main column, the desktop ones
in a wide one, decided by the width the browser itself measures.

Streamlit gives the server no viewport. The first run guesses from the User-Agent ("Mobi": Android's
and iOS's browsers, :func:`pages.common.phone`). A narrow window without a phone's User-Agent — a
desktop browser at 420 px, a tablet, a 1280×720 projector at 150 % with the sidebar open — then got
the desktop figures, whose legends and colour bars beside the plot left it ≈ 90–300 px wide.

:func:`report_width` mounts a small ``st.components.v2`` component (JavaScript only, nothing drawn) that
measures the main column's content width and reports ``compact`` when it disagrees with the layout the
server drew: below ``NARROW_BELOW_PX`` compact, from ``WIDE_FROM_PX`` desktop (between them it keeps the
layout it has, so a scroll bar that appears with the taller compact figures cannot flip it back). A
report is one rerun, only for a browser whose width disagrees with the guess; a desktop visitor at its
usual width sends nothing. It watches the column (``ResizeObserver``), so folding the sidebar or
turning a tablet switches the figures once more.
"""

from __future__ import annotations

import functools

import streamlit as st

VIEWPORT_KEY = "viewport"  # the component's state in st.session_state: {"compact": bool}
# The main column's content width (CSS px) below which the figures are compact, and from which they are
# the desktop ones again. Measured in Chromium (the column is the window less 460 px with the sidebar
# open, less 80 px folded): a 420-px window 388; a 1280×720 projector at 150 % (853 CSS px) 513 with
# the sidebar open, 813 folded; a 1024-px window with the sidebar open 564 — compact, the race plot
# ≈ 516 px wide instead of ≈ 264 beside the desktop legend. With the sidebar open the desktop figures
# come from a ≈ 1100-px window.
NARROW_BELOW_PX = 600
WIDE_FROM_PX = 640

_JS = """
export default function (component) {
  const { data, setStateValue } = component;
  const column = document.querySelector('[data-testid="stMainBlockContainer"]');
  if (!column) return;
  let compact = data.compact;
  let frame = 0;
  const check = () => {
    frame = 0;
    const style = getComputedStyle(column);
    const width = column.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (!(width > 0)) return;  // not laid out yet
    const next = compact ? width < data.wide_from : width < data.narrow_below;
    if (next !== compact) {
      compact = next;
      setStateValue("compact", next);
    }
  };
  const observer = new ResizeObserver(() => { if (!frame) frame = requestAnimationFrame(check); });
  observer.observe(column);
  check();
  return () => {
    observer.disconnect();
    if (frame) cancelAnimationFrame(frame);
  };
}
"""

@functools.cache
def _mount():
    """The component, registered once per process (by the first run that mounts it)."""
    return st.components.v2.component("deo_lab.viewport", js=_JS)


def reported_compact() -> bool | None:
    """What this browser's last width report said (None: no report, or none yet)."""
    state = st.session_state.get(VIEWPORT_KEY)
    try:
        value = state["compact"] if state is not None else None
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, bool) else None


def report_width(compact: bool, container=None) -> None:
    """Mount the width report (once per run, anywhere on the page: ``container``, default the sidebar),
    told the layout this run drew (``compact``)."""
    target = container if container is not None else st.sidebar
    with target:
        _mount()(
            key=VIEWPORT_KEY,
            data={"compact": compact, "narrow_below": NARROW_BELOW_PX, "wide_from": WIDE_FROM_PX},
            on_compact_change=lambda: None,
            height=0,
        )
