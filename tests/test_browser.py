"""A person in a real browser: Playwright + Debian Chromium against ``streamlit run app.py``.

Waits are ``expect(...)`` conditions (the app's script state, element values), never fixed sleeps.
Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

pytestmark = pytest.mark.browser

SHORT = 60  # steps for flows that start new races (the default 300 is raced once, by the page test)
RUN_TIMEOUT_MS = 120_000  # a cold race (torch warm-up on a shared 2-core machine) can take a while
PAGES = [  # (url path, title pattern)
    ("", re.compile("Surfaces")),  # the default page lives at /
    ("dimer", re.compile("dimer", re.IGNORECASE)),
    ("networks", re.compile("network", re.IGNORECASE)),
    ("escape_map", re.compile("Escape map")),
    ("about", re.compile("about|finding|DEO", re.IGNORECASE)),
]


def _expect():
    from playwright.sync_api import expect

    return expect


def wait_idle(page) -> None:
    """Until the script run that is in progress has finished."""
    _expect()(page.locator('[data-testid="stApp"]')).to_have_attribute(
        "data-test-script-state", "notRunning", timeout=RUN_TIMEOUT_MS
    )


def open_page(new_page, url: str):
    """A fresh page at ``url``, once its first script run has finished (a title is shown first)."""
    page = new_page()
    page.goto(url)
    _expect()(page.locator("h1").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    return page


def number_input(page, label: str):
    return page.locator(f'[data-testid="stNumberInput"] input[aria-label="{label}"]')


def frame_label(page):
    """The animation slider's current value ("step N") of the race figure."""
    return page.locator('[data-testid="stPlotlyChart"]').first.locator("g.slider-group > text.slider-label")


def no_exception(page) -> None:
    _expect()(page.locator('[data-testid="stException"]')).to_have_count(0)


@pytest.mark.parametrize(("path", "title"), PAGES, ids=[p or "surfaces" for p, _ in PAGES])
def test_every_page_loads_without_exception_and_shows_its_title(
    app_url, new_page, screenshot_dir, path, title
):
    query = "?resolution=10&steps=50" if path == "escape_map" else ""
    page = open_page(new_page, f"{app_url}/{path}{query}")
    _expect()(page.locator("h1").first).to_have_text(title, timeout=RUN_TIMEOUT_MS)
    no_exception(page)
    _expect()(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)  # loaded
    charts = page.locator('[data-testid="stPlotlyChart"]:visible')  # not those in closed tabs
    for i in range(charts.count()):  # every shown figure has been drawn before the screenshot
        _expect()(charts.nth(i).locator(".main-svg").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(screenshot_dir / f"page_{path or 'surfaces'}.png"), full_page=True)


def test_play_advances_the_frame_slider(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    current = frame_label(page)
    _expect()(current).to_have_text("step 0", timeout=RUN_TIMEOUT_MS)
    chart.locator(".updatemenu-button", has_text="Play").click()
    _expect()(current).not_to_have_text("step 0", timeout=20_000)
    chart.locator(".updatemenu-button", has_text="Pause").click()
    paused_at = current.text_content()
    assert re.fullmatch(r"step \d+", paused_at), paused_at
    page.screenshot(path=str(screenshot_dir / "surfaces_playing.png"), full_page=True)
    no_exception(page)


def test_changing_the_surface_changes_the_figure(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    formula = page.locator(".katex").first
    _expect()(formula).to_contain_text("y", timeout=RUN_TIMEOUT_MS)
    x_ticks_before = page.locator('[data-testid="stPlotlyChart"]').first.locator(".xtick").all_inner_texts()
    select = page.locator('[data-testid="stSelectbox"]').filter(has_text="Surface").first
    select.click()
    page.get_by_role("option", name=re.compile("Rosenbrock")).click()
    _expect()(number_input(page, "x₀")).to_have_value("-2", timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    _expect()(formula).to_contain_text("100", timeout=RUN_TIMEOUT_MS)  # (1 − x)² + 100 (y − x²)²
    x_ticks_after = page.locator('[data-testid="stPlotlyChart"]').first.locator(".xtick").all_inner_texts()
    assert x_ticks_after != x_ticks_before  # window [−2, 2] instead of [−3, 3]
    assert parse_qs(urlparse(page.url).query)["surface"] == ["Rosenbrock"]  # the option as shown
    no_exception(page)
    page.screenshot(path=str(screenshot_dir / "surfaces_rosenbrock.png"), full_page=True)


def test_clicking_the_contour_sets_the_start(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    x0, y0 = number_input(page, "x₀"), number_input(page, "y₀")
    _expect()(x0).to_have_value("1", timeout=RUN_TIMEOUT_MS)
    drag = page.locator('[data-testid="stPlotlyChart"]').first.locator(".nsewdrag").first
    box = drag.bounding_box()
    assert box is not None
    # the window is [−3, 3]²: a quarter of the width from the left and from the top is (−1.5, 1.5)
    drag.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.25})
    _expect()(x0).not_to_have_value("1", timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    x, y = float(x0.input_value()), float(y0.input_value())
    assert abs(x + 1.5) < 0.3 and abs(y - 1.5) < 0.3, (x, y)
    no_exception(page)
    page.screenshot(path=str(screenshot_dir / "surfaces_clicked_start.png"), full_page=True)


def test_a_copied_link_restores_the_configuration_in_a_fresh_browser(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    steps = number_input(page, "Steps")
    _expect()(steps).to_have_value(str(SHORT), timeout=RUN_TIMEOUT_MS)
    steps.fill("40")
    steps.press("Enter")
    _expect()(page).to_have_url(re.compile(r"steps=40"), timeout=RUN_TIMEOUT_MS)
    seed = number_input(page, "Seed")
    seed.fill("7")
    seed.press("Enter")
    _expect()(page).to_have_url(re.compile(r"seed=7"), timeout=RUN_TIMEOUT_MS)
    wait_idle(page)

    button = page.frame_locator("iframe").locator('[data-testid="copy-link"]')
    button.click()
    _expect()(button).to_have_attribute("data-url", page.url)
    copied = button.get_attribute("data-url")

    fresh = open_page(new_page, copied)
    _expect()(number_input(fresh, "Steps")).to_have_value("40", timeout=RUN_TIMEOUT_MS)
    _expect()(number_input(fresh, "Seed")).to_have_value("7")
    _expect()(frame_label(fresh)).to_have_text("step 0", timeout=RUN_TIMEOUT_MS)
    plot = fresh.locator('[data-testid="stPlotlyChart"]').first.locator(".js-plotly-plot")
    last_frame = plot.evaluate("gd => gd._fullLayout.sliders[0].steps.slice(-1)[0].label")
    assert last_frame == "40"  # the restored budget drives the animation
    no_exception(fresh)
    fresh.screenshot(path=str(screenshot_dir / "surfaces_restored_from_link.png"), full_page=True)


def test_a_shared_link_opened_first_on_a_fresh_server_goes_through_the_app_navigation(new_page):
    """A teacher's link is often the very first request a server sees: it must get the real page."""
    from conftest import serve_app

    with serve_app() as fresh_url:
        page = open_page(new_page, f"{fresh_url}/about?big=true")
        _expect()(page.locator("h1").first).to_have_text(PAGES[-1][1], timeout=RUN_TIMEOUT_MS)
        nav = page.locator('[data-testid="stSidebarNav"]')
        _expect()(nav).to_contain_text("About / findings")  # app.py's st.navigation titles ...
        _expect()(nav).not_to_contain_text("common")  # ... not the legacy pages/ folder listing
        large_fonts = page.get_by_label("Large fonts (projector)").first
        _expect()(large_fonts).to_be_checked()  # app.py's sidebar toggle, set from the URL
        no_exception(page)
