"""A person in a real browser: Playwright + Debian Chromium against the README's server (``python serve.py``).

Waits are ``expect(...)`` conditions (the app's script state, element values), never fixed sleeps.
Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.boxes import overlap

# A browser flow on the shared 2-core machine at load ≈ 20 took 5 min (server start + a cold race):
# the per-test limit is wider than the suite's 300 s; every wait inside is still on a state.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]

SHORT = 60  # steps for flows that start new races (the default 300 is raced once, by the page test)
CLICK_TAKES_MS = 60_000  # a click on a chart to the rerun it causes, on a loaded machine
RUN_TIMEOUT_MS = 300_000  # a cold race (torch warm-up on a shared 2-core machine at load 15) can take minutes
PAGES = [  # (url path, title pattern)
    ("", re.compile("Surfaces")),  # the default page lives at /
    ("dimer", re.compile("dimer", re.IGNORECASE)),
    ("networks", re.compile("network", re.IGNORECASE)),
    ("escape_map", re.compile("Escape map")),
    ("sweeps", re.compile("Sweep")),
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


def open_page(new_page, url: str, requests: list | None = None):
    """A fresh page at ``url``, once its first script run has finished (a title is shown first);
    ``requests``: a list that receives the URL of every request the page makes."""
    page = new_page()
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))
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


def wait_for_plot(page, condition: str, index: int = 0, timeout: int = RUN_TIMEOUT_MS):
    """Until the JavaScript ``condition`` holds for ``gd``, the graph div of the page's ``index``-th
    Plotly chart element (drawn: its ``_fullLayout`` exists); returns the condition's value. A state
    wait, polled by the browser on every animation frame. Counted by chart element, in page order:
    a chart below can have its graph div before the race chart above it has mounted (a loaded
    machine), so counting graph divs could pick the loss chart. A condition that throws (a race chart's
    field read on another chart) counts as not met: the wait goes on."""
    handle = page.wait_for_function(
        """([index, condition]) => {
            const chart = document.querySelectorAll('[data-testid="stPlotlyChart"]')[index];
            const gd = chart && chart.querySelector('.js-plotly-plot');
            const full = gd && gd._fullLayout;
            if (!full || !full.xaxis || !full.xaxis._length) return false;
            try {  // a condition that cannot be evaluated on this chart yet is not met yet
                return new Function("gd", "return (" + condition + ");")(gd) || false;
            } catch (error) {
                return false;
            }
        }""",
        arg=[index, condition],
        timeout=timeout,
    )
    return handle.json_value()


STEADY_POLLS = 3  # a layout is taken as settled when it has not changed over this many polls


def wait_until_steady(page, snapshot: str, timeout: int = RUN_TIMEOUT_MS):
    """Until the JavaScript function ``snapshot`` gives the same ``key`` on :data:`STEADY_POLLS`
    polls in a row (one per animation frame); returns its ``value`` then. ``snapshot`` returns
    ``null`` while the page is not ready, else ``{key, value}``. A state wait for a layout in flight
    (the sidebar folding, fonts arriving, a window resize): boxes read in between can come from
    different drawings (CI once read an x title from one and the slider label from the one before)."""
    page.evaluate("window.__deoSteady = null")
    return page.wait_for_function(
        """([snapshot, polls]) => {
            const now = new Function("return (" + snapshot + ")();")();
            if (!now) { window.__deoSteady = null; return false; }
            const last = window.__deoSteady;
            const count = last && last.key === now.key ? last.count + 1 : 1;
            window.__deoSteady = {key: now.key, count};
            return count >= polls ? {value: now.value === undefined ? null : now.value} : false;
        }""",
        arg=[snapshot, STEADY_POLLS],
        timeout=timeout,
    ).json_value()["value"]


def collapse_sidebar(page) -> None:
    """Fold the sidebar and wait until the page's content has followed it: the main column at the
    window's left edge, the title and the first chart shown at the block's left padding. The
    content can hold the open sidebar's layout for some frames after the main column has moved (a
    full local run once read the race chart at x = 400 with the main column at x = 0)."""
    page.locator('[data-testid="stSidebar"]').hover()
    page.locator('[data-testid="stSidebarCollapseButton"] button').click(timeout=RUN_TIMEOUT_MS)
    _expect()(page.locator('[data-testid="stSidebar"]')).to_have_attribute("data-collapsed", "true")
    page.wait_for_function(
        """() => {
            const main = document.querySelector('[data-testid="stMain"]');
            const block = document.querySelector('[data-testid="stMainBlockContainer"]');
            const title = block && block.querySelector('h1');
            if (!main || !title) return false;
            const chart = [...block.querySelectorAll('[data-testid="stPlotlyChart"]')]
                .find(c => c.clientWidth > 0);  // the first one shown starts at the left edge too
            const pad = parseFloat(getComputedStyle(block).paddingLeft);
            const x0 = block.getBoundingClientRect().left + pad;
            return main.getBoundingClientRect().left <= 1
                && [title, chart].every(e => !e || Math.abs(e.getBoundingClientRect().left - x0) <= 1);
        }""",
        timeout=RUN_TIMEOUT_MS,
    )


def wait_for_settled_charts(page, timeout: int = RUN_TIMEOUT_MS) -> None:
    """Until every shown Plotly chart is drawn at its element's width and the boxes of its titles,
    slider, buttons and legend are steady (:func:`wait_until_steady`): the element widens over
    several frames as the sidebar folds, and plotly.js redraws behind it."""
    wait_until_steady(
        page,
        """() => {
            const shown = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
                .filter(c => c.clientWidth > 0);
            const keys = [];
            for (const c of shown) {
                const gd = c.querySelector('.js-plotly-plot');
                const full = gd && gd._fullLayout;
                if (!full || !full.width || Math.abs(full.width - c.clientWidth) > 1) return null;
                const parts = [...gd.querySelectorAll(
                    'g.g-xtitle, g.g-x2title, g.slider-group, g.updatemenu-container, g.legend'
                )].map(e => {
                    const r = e.getBoundingClientRect();
                    return [r.x, r.y, r.width, r.height].map(Math.round).join(',');
                });
                keys.push(c.clientWidth + '|' + parts.join(';'));
            }
            return shown.length ? {key: keys.join('/')} : null;
        }""",
        timeout,
    )


RACE_CHART = "gd._transitionData && gd._transitionData._frames && gd._transitionData._frames.length > 0"


def click_plot_at(page, x: float, y: float, index: int = 0, attempts: int = 5, chart: str = "true") -> None:
    """Click the data point (x, y) of a 2-D Plotly chart the way a person does: move the mouse
    there, wait until Plotly reports a hovered point within 0.3 of it (its hover handling is
    throttled and lags on a loaded machine), then press and release. The pixel position is computed
    from Plotly's own axes at that moment, so a late relayout cannot shift the click. ``chart``: a
    condition on ``gd`` that the ``index``-th chart must meet first (which chart it is)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    where = f"""({chart}) && (() => {{
        const box = gd.getBoundingClientRect(), xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        return [box.left + xa._offset + xa.l2p({x}), box.top + ya._offset + ya.l2p({y})];
    }})()"""
    near = f"p => Math.abs(p.x - ({x})) < 0.3 && Math.abs(p.y - ({y})) < 0.3"
    hovered = f"({chart}) && (gd._hoverdata || []).some({near})"
    for attempt in range(attempts):
        px, py = wait_for_plot(page, where, index)
        page.mouse.move(px + 3, py + 3)
        page.mouse.move(px, py, steps=3)
        try:
            wait_for_plot(page, hovered, index, timeout=30_000)
        except PlaywrightTimeout:
            if attempt == attempts - 1:
                seen = wait_for_plot(
                    page, "JSON.stringify((gd._hoverdata || []).map(p => [p.x, p.y]))", index
                )
                raise AssertionError(
                    f"Plotly never hovered ({x}, {y}) at {(px, py)}; hovered: {seen}"
                ) from None
            continue
        page.mouse.down()
        page.mouse.up()
        return


@pytest.mark.parametrize(("path", "title"), PAGES, ids=[p or "surfaces" for p, _ in PAGES])
def test_every_page_loads_without_exception_and_shows_its_title(
    app_url, new_page, screenshot_dir, path, title
):
    query = "?resolution=10&steps=50" if path == "escape_map" else ""
    requests: list[str] = []
    page = open_page(new_page, f"{app_url}/{path}{query}", requests)
    _expect()(page.locator("h1").first).to_have_text(title, timeout=RUN_TIMEOUT_MS)
    no_exception(page)
    _expect()(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)  # loaded
    charts = page.locator('[data-testid="stPlotlyChart"]:visible')  # not those in closed tabs
    for i in range(charts.count()):  # every shown figure has been drawn before the screenshot
        _expect()(charts.nth(i).locator(".main-svg").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(screenshot_dir / f"page_{path or 'surfaces'}.png"), full_page=True)
    # Offline-capable (a classroom network, a laptop on a train): every request goes to the app's
    # server. The page's favicon is set from app.py's page config (index.html's own is favicon.png);
    # a Material icon there would be fetched from fonts.gstatic.com on every visit.
    _expect()(page.locator("link[rel='shortcut icon']")).not_to_have_attribute(
        "href", re.compile(r"favicon\.png$"), timeout=RUN_TIMEOUT_MS
    )
    server = urlparse(app_url).netloc
    elsewhere = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                 and urlparse(u).netloc != server]  # fmt: skip
    assert not elsewhere, elsewhere


def test_play_advances_the_frame_slider(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    current = frame_label(page)
    _expect()(current).to_have_text("step 0", timeout=RUN_TIMEOUT_MS)
    chart.locator(".updatemenu-button", has_text="Play").click()
    _expect()(current).not_to_have_text("step 0", timeout=RUN_TIMEOUT_MS)
    chart.locator(".updatemenu-button", has_text="Pause").click()
    paused_at = current.text_content()
    assert re.fullmatch(r"step \d+", paused_at), paused_at
    page.screenshot(path=str(screenshot_dir / "surfaces_playing.png"), full_page=True)
    no_exception(page)


def test_changing_the_surface_changes_the_figure(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    formula = page.locator(".katex").first
    _expect()(formula).to_contain_text("y", timeout=RUN_TIMEOUT_MS)
    range_before = wait_for_plot(page, "gd._fullLayout.xaxis.range")
    select = page.locator('[data-testid="stSelectbox"]').filter(has_text="Surface").first
    choose_option(page, select, re.compile("Rosenbrock"))
    _expect()(number_input(page, "x₀")).to_have_value("-2", timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    _expect()(formula).to_contain_text("100", timeout=RUN_TIMEOUT_MS)  # (1 − x)² + 100 (y − x²)²
    # Rosenbrock's window [−2, 2] replaces the default surface's (the redrawn figure, not a guess)
    range_after = wait_for_plot(
        page, f"gd._fullLayout.xaxis.range[0] !== {range_before[0]} && gd._fullLayout.xaxis.range"
    )
    assert range_after == [-2, 2], range_after
    assert parse_qs(urlparse(page.url).query)["surface"] == ["Rosenbrock"]  # the option as shown
    no_exception(page)
    page.screenshot(path=str(screenshot_dir / "surfaces_rosenbrock.png"), full_page=True)
    # the reset of x₀, y₀ by the surface's callback is meant: the server logs no warning (with a
    # stack trace) about a widget "set via the Session State API" (.streamlit/config.toml)
    from conftest import ROOT

    log = ROOT / "artifacts" / f"streamlit-test-{urlparse(app_url).port}.log"
    assert "Session State API" not in log.read_text()


def test_clicking_the_contour_sets_the_start(app_url, new_page, screenshot_dir):
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    x0, y0 = number_input(page, "x₀"), number_input(page, "y₀")
    _expect()(x0).to_have_value(re.compile(r"\S"), timeout=RUN_TIMEOUT_MS)
    before = x0.input_value()
    # the race chart (the one with animation frames): on a loaded machine the first chart element
    # has once been a loss chart when this was read (CI: a "click" at step 15 of the loss curve)
    (xa, xb), (ya, yb) = wait_for_plot(
        page, f"({RACE_CHART}) && [gd._fullLayout.xaxis.range, gd._fullLayout.yaxis.range]"
    )
    # a quarter of the window from the left and from the top (a point of the click grid)
    target = (xa + 0.25 * (xb - xa), yb - 0.25 * (yb - ya))
    # a click the page never received (CI, 2026-12-03: x₀ unchanged for 300 s after a hovered click)
    # is clicked again; one that arrives late is not repeated, since the value has changed by then
    for attempt in range(3):
        click_plot_at(page, *target, chart=RACE_CHART)
        try:
            _expect()(x0).not_to_have_value(before, timeout=CLICK_TAKES_MS)
            break
        except AssertionError:
            if attempt == 2:
                raise
    wait_idle(page)
    x, y = float(x0.input_value()), float(y0.input_value())
    tolerance = 0.06 * (xb - xa)  # the click grid's spacing is 1/30 of the window
    assert abs(x - target[0]) < tolerance and abs(y - target[1]) < tolerance, (x, y, target)
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


def go_to(page, name: str, title: str) -> None:
    """Follow the sidebar's link to the page ``name``, until its title ``title`` is shown."""
    link = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]').filter(has_text=name)
    link.first.click()
    _expect()(page.locator("h1").filter(has_text=title).first).to_be_visible(timeout=RUN_TIMEOUT_MS)


def test_the_escape_map_and_surfaces_keep_their_own_settings(app_url, new_page):
    """Both pages have a surface, steps, seed, clip and optimizers. Before the Escape map's controls
    took their own names (``em.``), a seed set on Surfaces showed up on the Escape map and in its
    link, and the Escape map's surface came back to Surfaces without that surface's start."""
    page = open_page(new_page, f"{app_url}/?steps={SHORT}")
    seed = number_input(page, "Seed")
    seed.fill("7")
    seed.press("Enter")
    _expect()(page).to_have_url(re.compile(r"seed=7"), timeout=RUN_TIMEOUT_MS)
    go_to(page, "Escape map", "Escape map")
    _expect()(number_input(page, "Seed")).to_have_value("0", timeout=RUN_TIMEOUT_MS)
    _expect()(number_input(page, "Steps")).to_have_value("300")
    assert "seed=7" not in page.url and f"steps={SHORT}" not in page.url, page.url
    go_to(page, "Surfaces", "Surfaces")
    _expect()(number_input(page, "Seed")).to_have_value("7", timeout=RUN_TIMEOUT_MS)  # its work kept
    _expect()(number_input(page, "Steps")).to_have_value(str(SHORT))
    wait_idle(page)
    no_exception(page)


def test_an_escape_map_link_from_before_its_prefix_opens_as_shared_with_no_notice(app_url, new_page):
    page = open_page(new_page, f"{app_url}/escape_map?resolution=5&steps=20&seed=3")
    _expect()(page).to_have_url(re.compile(r"em\.resolution=5"), timeout=RUN_TIMEOUT_MS)
    _expect()(number_input(page, "Steps")).to_have_value("20")
    _expect()(number_input(page, "Seed")).to_have_value("3")
    wait_for_plot(page, "gd.data.length > 0")  # the map was drawn: the run is over, notices included
    wait_idle(page)
    _expect()(page.locator('[data-testid="stAlertContentWarning"]')).to_have_count(0)
    no_exception(page)


def test_a_typed_surfaces_path_opens_the_surfaces_page_with_its_settings(app_url, new_page):
    """Streamlit serves the default page at / only: /surfaces showed a "Page not found" dialog."""
    page = open_page(new_page, f"{app_url}/surfaces?steps=40")
    _expect()(page).to_have_url(re.compile(r"/\?steps=40$"), timeout=RUN_TIMEOUT_MS)
    _expect()(page.locator("h1").first).to_have_text("Surfaces")
    # a state wait: under load the page's controls came more than the default 5 s after its title
    _expect()(number_input(page, "Steps")).to_have_value("40", timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    _expect()(number_input(page, "Steps")).to_have_value("40")  # and stays once the page is idle
    _expect()(page.locator('[role="dialog"]')).to_have_count(0)
    no_exception(page)


def test_a_choice_among_numbers_in_the_link_is_not_called_ignored(app_url, new_page):
    """The Dimer's saddle search starts at a minimum picked from 0, 1, 2 shown as "min 3 (…)": the
    link holds the label, which the notice compared with the number 2 and called not allowed."""
    from urllib.parse import quote

    page = open_page(new_page, f"{app_url}/dimer?dm.ss.start={quote('min 3 (-0.05, 0.47)')}")
    wait_idle(page)
    no_exception(page)
    notices = page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="link")
    _expect()(notices).to_have_count(0)


METRIC_FONT = """() => { const p = document.querySelector('[data-testid="stMetricValue"] p');
    return p ? parseFloat(getComputedStyle(p).fontSize) : null; }"""


def test_large_fonts_enlarge_the_dimers_headline_numbers(app_url, new_page):
    """The projector's 20 px paragraph rule also caught the metric values (36 px), shrinking them."""
    sizes = []
    for query in ("", "?big=true"):
        page = open_page(new_page, f"{app_url}/dimer{query}")
        sizes.append(page.wait_for_function(METRIC_FONT).json_value())
    assert sizes[1] > sizes[0] >= 30, sizes


MENU = ["Surfaces", "Dimer", "Networks", "Escape map", "Sweeps", "About / findings"]
# Records, from the first byte of the page on, every navigation menu or link to a page that is not
# one of the app's six (Streamlit's legacy pages/ listing names app, common, ...).
WATCH_MENUS = """
window.__foreignMenus = [];
new MutationObserver(() => {
  for (const el of document.querySelectorAll('[data-testid="stSidebarNav"], [data-testid="stTopNav"]')) {
    window.__foreignMenus.push("menu: " + el.textContent);
  }
  for (const a of document.querySelectorAll("a[href]")) {
    const path = new URL(a.href, location.href).pathname.replace(/\\/$/, "");
    if (/\\/(app|common|url_params)$/.test(path)) window.__foreignMenus.push("link: " + path);
  }
}).observe(document, {subtree: true, childList: true});
"""


@pytest.mark.parametrize(
    ("path", "title"), [("", PAGES[0][1]), ("about?big=true", PAGES[-1][1])], ids=["root", "deep-link"]
)
def test_the_first_visitor_of_a_fresh_server_sees_only_the_apps_pages(new_page, path, title):
    """A teacher's link is often the very first request a server sees: it must get the real page,
    through app.py (its sidebar toggles, set from the URL), and no other menu, not even briefly."""
    from conftest import serve_app

    with serve_app() as fresh_url:
        page = new_page()
        page.add_init_script(WATCH_MENUS)
        page.goto(f"{fresh_url}/{path}")
        _expect()(page.locator("h1").first).to_have_text(title, timeout=RUN_TIMEOUT_MS)
        wait_idle(page)
        links = page.locator('[data-testid="stSidebar"] [data-testid="stPageLink-NavLink"]')
        # app.py's menu, the six pages (each link's text is its Material icon's name, then the title)
        menu = [re.compile(rf"^[a-z_]*{re.escape(title)}$") for title in MENU]
        _expect()(links).to_have_text(menu, timeout=RUN_TIMEOUT_MS)
        for icon in links.locator('[data-testid="stIconMaterial"]').all():
            assert re.fullmatch(r"[a-z_]+", icon.inner_text()), icon.inner_text()  # Material, not emoji
        assert page.evaluate("window.__foreignMenus") == []
        if "big=true" in path:
            _expect()(page.get_by_label("Large fonts (projector)").first).to_be_checked()
            assert parse_qs(urlparse(page.url).query)["big"] == ["true"]  # the link's parameters kept
        no_exception(page)


PHONE = {  # a phone's browser: its User-Agent is how the page knows (there is no server-side viewport)
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Mobile Safari/537.36",
    "is_mobile": True,
    "has_touch": True,
}
LAYOUTS = {  # name: (viewport, query, collapse the sidebar, other context options)
    "desktop-1400x900": ({"width": 1400, "height": 900}, "", False, {}),
    "projector-1280x720-large-fonts": ({"width": 1280, "height": 720}, "?big=true&lecture=true", True, {}),
    # the same with the sidebar left open: the row is too narrow for the chart and its story side by
    # side at the plot's full height, so the story goes under the chart (a CSS container query)
    "projector-1280x720-sidebar-open": ({"width": 1280, "height": 720}, "?big=true&lecture=true", False, {}),
    "phone-420": ({"width": 420, "height": 860}, "", False, PHONE),
}


@pytest.mark.parametrize("width, beside", [(1400, True), (1024, False)])
def test_a_narrow_desktop_window_puts_the_story_under_a_race_plot_it_can_read(
    app_url, new_page, screenshot_dir, width, beside
):
    """A 1 024-px window with the sidebar open (a small laptop; a 1024×768 projector without
    projector mode) drew the race's plot 115 px wide, squeezed between its legend and the story
    column. Below ``viz.surface_figs.stack_below_width`` the story goes under the chart (a CSS
    container query on the row) and the plot gets the row's width; a 1400-px window keeps the story
    beside the chart."""
    viewport = {"width": width, "height": 900}
    page = open_page(lambda: new_page(viewport=viewport), f"{app_url}/")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    # the layout this width gets (pages.viewport: a 1 024-px window's column is compact; its report
    # reruns the page, which redraws the chart and the story): its legend, then nothing running
    orientation = "v" if beside else "h"
    wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout.legend.orientation === '{orientation}'")
    wait_idle(page)
    wait_for_plot(page, "gd._fullLayout.sliders && gd._fullLayout.sliders.length")
    wait_for_settled_charts(page)
    page.screenshot(path=str(screenshot_dir / f"narrow_desktop_{width}.png"))
    box = chart.bounding_box()
    plot = chart.locator("rect.nsewdrag").first.bounding_box()
    story = page.get_by_text("What to watch", exact=True).first.bounding_box()
    assert plot["width"] >= 240, plot  # was 115 px at 1 024
    if beside:
        assert story["x"] >= box["x"] + box["width"] - 1, (story, box)
        assert story["y"] < box["y"] + box["height"], (story, box)
    else:
        assert story["y"] >= box["y"] + box["height"] - 1, (story, box)
    no_exception(page)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_whole_race_chart_and_its_play_control_are_in_view_without_scrolling(
    app_url, new_page, screenshot_dir, layout
):
    viewport, query, collapse, options = LAYOUTS[layout]
    page = open_page(lambda: new_page(viewport=viewport, **options), f"{app_url}/{query}")
    if collapse:
        collapse_sidebar(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    wait_for_plot(page, "gd._fullLayout.sliders && gd._fullLayout.sliders.length")
    wait_for_settled_charts(page)  # its last drawing (the sidebar folding, a scroll bar appearing)
    play = chart.locator(".updatemenu-button", has_text="Play")
    _expect()(play).to_be_visible(timeout=RUN_TIMEOUT_MS)
    slider = chart.locator("g.slider-group").first
    _expect()(slider).to_be_visible()
    page.screenshot(path=str(screenshot_dir / f"layout_{layout}.png"))
    boxes = {"chart": chart.bounding_box(), "play": play.bounding_box(), "slider": slider.bounding_box()}
    for name, box in boxes.items():  # nothing cut off: inside the window as it opens, no scrolling
        assert box is not None, name
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1, (name, box)
        assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] + 1, (name, box)
    main = page.locator('[data-testid="stMain"]').bounding_box()
    assert boxes["chart"]["width"] >= 0.5 * main["width"], (boxes["chart"], main)  # it uses the width
    plot = chart.locator("rect.nsewdrag").first.bounding_box()  # the plot area itself
    assert plot is not None and plot["width"] >= 240, plot  # not squeezed by the legend (was ~75 px)
    y_title = chart.locator("g.g-ytitle").first.bounding_box()
    y_ticks = chart.locator("g.yaxislayer-above").first.bounding_box()
    assert not overlap(y_title, y_ticks), (y_title, y_ticks)  # the "y" beside its tick labels, not on the "0"
    if not options:  # desktop, projector: the figure's own margins hold every part (no margin push,
        # which would make plotly.js draw the whole figure a second time), and nothing is cut off
        sizes = wait_for_plot(
            page, "['l', 't', 'r', 'b'].map(k => [gd._fullLayout._size[k], gd.layout.margin[k]])"
        )
        assert all(drawn == asked for drawn, asked in sizes), sizes
        for part in ("g.legend", "g.colorbar", "g.xtitle", "g.slider-group"):
            found = chart.locator(part)
            if found.count():
                box = found.first.bounding_box()
                assert box["x"] + box["width"] <= boxes["chart"]["x"] + boxes["chart"]["width"] + 1, part
                assert box["y"] + box["height"] <= boxes["chart"]["y"] + boxes["chart"]["height"] + 1, part
    if layout.startswith("desktop"):  # the toolbar shows only under the pointer (pinned
        # with displayModeBar: true it sat on the loss charts' legends); the race chart's the same
        loss_chart = page.locator('[data-testid="stPlotlyChart"]').nth(1)
        for shown in (chart, loss_chart):
            _expect()(shown.locator(".modebar")).to_have_class(re.compile(r"\bmodebar--hover\b"))
    if layout.startswith("projector"):  # large legends reach the top right: no toolbar on any chart
        charts = page.locator('[data-testid="stPlotlyChart"]')
        _expect()(charts.nth(2).locator(".main-svg").first).to_be_attached(timeout=RUN_TIMEOUT_MS)
        for i in range(3):  # the race, then the two loss charts
            _expect()(charts.nth(i).locator(".modebar")).to_have_count(0)
    if options:  # phone: the plot takes most of the chart's width and no toolbar sits on the legend
        assert plot["width"] >= 0.7 * boxes["chart"]["width"], (plot, boxes["chart"])
        _expect()(chart.locator(".modebar")).to_have_count(0)
        loss_charts = page.locator('[data-testid="stPlotlyChart"]').nth(2)  # the race, then 2 loss charts
        _expect()(loss_charts.locator(".main-svg").first).to_be_attached(timeout=RUN_TIMEOUT_MS)
        for i in (1, 2):  # nor on the loss curves' legends (above their plots)
            _expect()(page.locator('[data-testid="stPlotlyChart"]').nth(i).locator(".modebar")).to_have_count(
                0
            )
        # the results table fits the screen: no wider than the window, nothing scrolled sideways
        table = page.locator('[data-testid="stTable"]').first
        table.scroll_into_view_if_needed()
        _expect()(table).to_be_visible(timeout=RUN_TIMEOUT_MS)
        box = table.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1, box
        widths = table.evaluate(
            "el => [el.scrollWidth, el.clientWidth, el.querySelector('table').scrollWidth]"
        )
        assert widths[0] <= widths[1] + 1 and widths[2] <= widths[1] + 1, widths
        rows = table.locator("tbody tr")
        _expect()(rows).to_have_count(5)  # one row per default optimizer
        page.screenshot(path=str(screenshot_dir / f"layout_{layout}_table.png"))
    if layout.startswith("projector"):  # the plot takes the height a lecture hall needs (the sidebar
        # open or folded: open, it was 268 px of 720 beside the story), the legend fits
        assert plot["height"] >= 0.6 * viewport["height"], (plot, viewport)
        story = page.get_by_text("What to watch").first.bounding_box()  # beside where it fits, else under
        if collapse:
            assert story["x"] >= boxes["chart"]["x"] + boxes["chart"]["width"] - 1, (story, boxes["chart"])
        else:
            assert story["y"] >= boxes["chart"]["y"] + boxes["chart"]["height"] - 1, (story, boxes["chart"])
        legend = chart.locator("g.legend").first.bounding_box()
        assert legend["y"] + legend["height"] <= boxes["play"]["y"] + 1, (legend, boxes["play"])
        scroll = chart.locator("g.legend .scrollbar")  # every entry shown, none behind a scroll bar
        assert (
            scroll.count() == 0
            or scroll.first.bounding_box() is None
            or (scroll.first.bounding_box()["height"] == 0)
        ), scroll.first.bounding_box()
    no_exception(page)


# The surfaces whose formulas are widest (display-mode KaTeX cut each of them off in the side column)
LONG_FORMULAS = ["Goldstein–Price", "Müller–Brown", "Ackley", "Six-hump camel"]


@pytest.mark.parametrize("layout", ["desktop-1400x900", "projector-1280x720-large-fonts", "phone-420"])
def test_every_long_formula_fits_its_column(app_url, new_page, layout):
    """pages.common.show_formula: the surface's f(x, y) wraps inside the column it sits in — no
    glyph beyond the column's edges (st.latex cut 11 of the 16 formulas off at 1400 px). KaTeX keeps
    a binary operator at the end of the line it breaks, which may hang into the gap beside the
    column: up to half of the columns' 1 rem gap (8 px) is allowed, never more."""
    from urllib.parse import urlencode

    viewport, query, _, options = LAYOUTS[layout]
    page = new_page(viewport=viewport, **options)
    for name in LONG_FORMULAS:
        params = dict(parse_qs(query.lstrip("?")), surface=name, steps="10", opt="GD")
        page.goto(f"{app_url}/?{urlencode(params, doseq=True)}")
        formula = page.locator('[data-testid="stMarkdownContainer"] .katex').filter(has_text="f(x,y)")
        _expect()(formula.first).to_be_visible(timeout=RUN_TIMEOUT_MS)
        wait_idle(page)
        # measured once KaTeX's fonts are in (before, fallback metrics wrap differently) and the
        # column and the formula have kept their boxes for three polls (no layout in flight)
        outside = wait_until_steady(
            page,
            """() => {
                const k = [...document.querySelectorAll('[data-testid="stMarkdownContainer"] .katex')]
                    .find(e => e.textContent.includes('f(x,y)'));
                if (!k || document.fonts.status !== 'loaded') return null;
                const column = k.closest('[data-testid="stColumn"]') || k.closest('[data-testid="stMain"]');
                const c = column.getBoundingClientRect(), f = k.getBoundingClientRect();
                const glyphs = [...k.querySelectorAll('.katex-html *')]
                    .filter(e => !e.children.length && e.textContent.trim());
                return {
                    key: [c.left, c.right, f.width, f.height].map(Math.round).join(),
                    value: glyphs.map(e => e.getBoundingClientRect())
                        .filter(r => r.right > c.right + 8 || r.left < c.left - 1).length,
                };
            }""",
        )
        assert outside == 0, (layout, name, outside)
    no_exception(page)


def test_the_about_pages_equations_fit_a_phone(app_url, new_page):
    """A display equation never wraps: on a 420 px phone each of the About page's must fit its width
    (the three dimer equations in one row were 667 px wide, behind a horizontal scroll)."""
    viewport, _, _, options = LAYOUTS["phone-420"]
    page = open_page(lambda: new_page(viewport=viewport, **options), f"{app_url}/about")
    _expect()(page.locator(".katex-display").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    widths = page.wait_for_function(
        """() => document.fonts.status === 'loaded'
            && [...document.querySelectorAll('.katex-display')].map(e => [e.scrollWidth, e.clientWidth])""",
        timeout=RUN_TIMEOUT_MS,
    ).json_value()
    assert len(widths) >= 3 and all(scroll <= client + 1 for scroll, client in widths), widths
    no_exception(page)


def test_the_escape_map_reads_on_a_phone_with_the_control_beside_deo_escape(app_url, new_page):
    """At 420 px with a phone's User-Agent the default escape map (four maps: DEO-escape and its
    random-direction control among them) is two rows of two: each map at least 140 px wide, the
    panel titles whole and apart, the colour bar laid flat (it took half the width and the maps were
    60 px wide before)."""
    viewport, _, _, options = LAYOUTS["phone-420"]
    page = open_page(lambda: new_page(viewport=viewport, **options), f"{app_url}/escape_map?resolution=8")
    boxes = wait_for_plot(
        page,
        """gd._fullLayout._subplots.cartesian.length === 4 && (() => {
            const titles = [...gd.querySelectorAll('.annotation-text')]
                .map(t => t.getBoundingClientRect()).map(r => [r.left, r.right, r.top, r.bottom]);
            const maps = gd._fullLayout._subplots.cartesian.map(id => gd._fullLayout[id.replace(/y.*/, '')
                .replace('x', 'xaxis')]._length);
            const bar = gd._fullLayout.coloraxis.colorbar.orientation;
            const texts = [...gd.querySelectorAll('.annotation-text')].map(t => t.textContent);
            const box = gd.getBoundingClientRect();
            return {titles, texts, maps, bar, left: box.left, right: box.right};
        })()""",
    )
    assert boxes["bar"] == "h"
    assert len(boxes["maps"]) == 4 and min(boxes["maps"]) >= 140, boxes
    assert boxes["texts"] == ["GD", "Adam", "DEO-escape", "DEO-escape: random N"]
    titles = boxes["titles"]
    inside = [boxes["left"] - 1 <= left and right <= boxes["right"] + 1 for left, right, _, _ in titles]
    assert all(inside), boxes
    for i, a in enumerate(titles):  # no two titles overlap
        for b in titles[i + 1 :]:
            assert a[1] <= b[0] or b[1] <= a[0] or a[3] <= b[2] or b[3] <= a[2], (a, b)
    no_exception(page)


def test_the_escape_maps_legend_clears_their_tick_labels_on_a_projector(app_url, new_page):
    """1280×720 with large fonts: the legend (saddle, never escaped, diverged) sits under the bottom
    row's x tick labels (placed at 8 % of the plot's height below it, it lay on them)."""
    page = open_page(
        lambda: new_page(viewport={"width": 1280, "height": 720}),
        f"{app_url}/escape_map?resolution=8&big=true&lecture=true",
    )
    wait_for_plot(page, "gd._fullLayout._subplots.cartesian.length === 4 && gd.querySelector('g.legend')")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    legend = chart.locator("g.legend").first.bounding_box()
    ticks = [box for t in chart.locator("g.xaxislayer-above").all() if (box := t.bounding_box())]
    ticks = [box for box in ticks if box["width"] > 0 and box["height"] > 0]  # the bottom row's
    assert len(ticks) == 2, ticks
    for box in ticks:
        assert not overlap(legend, box), (legend, box)
    no_exception(page)


# Pages with animated charts over a contour: (path with a short, cheap configuration, label, the tab
# the chart sits in or None). The Networks page's 2-D loss slice is animated by the same
# viz.dimer_figs.with_frames, behind its "2-D loss slice" tab.
ANIMATED_PAGES = [("dimer", "dimer", None), ("networks?nw.steps=20", "networks", "2-D loss slice")]


@pytest.mark.parametrize(("path", "name", "tab"), ANIMATED_PAGES, ids=[n for _, n, _ in ANIMATED_PAGES])
def test_play_on_every_animated_chart_keeps_its_background(
    app_url, new_page, screenshot_dir, path, name, tab
):
    """plotly.js drops contour traces while an animation plays: every animated chart draws its
    contour as a layout image, which must still be there after the last frame."""
    page = open_page(new_page, f"{app_url}/{path}")
    _expect()(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    if tab is not None:
        page.get_by_role("tab", name=tab).click()
        _expect()(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        wait_idle(page)
    charts = page.locator('[data-testid="stPlotlyChart"]:visible')
    _expect()(charts.locator(".updatemenu-button", has_text="Play").first).to_be_visible(
        timeout=RUN_TIMEOUT_MS
    )
    animated = 0
    for i in range(charts.count()):
        chart = charts.nth(i)
        play = chart.locator(".updatemenu-button", has_text="Play")
        if not play.count():
            continue
        animated += 1
        gd = chart.locator(".js-plotly-plot")
        contours = gd.evaluate("gd => gd.data.filter(t => t.type === 'contour').length")
        play.first.click()
        gd.evaluate(  # until the slider stands on the last frame (the animation has run through)
            """gd => new Promise(resolve => {
                const steps = gd._fullLayout.sliders[0].steps, last = steps[steps.length - 1].label;
                const shown = () => gd.querySelector(".slider-group .slider-label").textContent.trim();
                const timer = setInterval(() => {
                    const want = ((gd._fullLayout.sliders[0].currentvalue.prefix || "") + last).trim();
                    if (shown() === want) { clearInterval(timer); resolve(true); }
                }, 100);
            })"""
        )
        drawn = gd.evaluate(
            "gd => ({images: gd.querySelectorAll('.layer-below image, .imagelayer image').length,"
            " lines: gd.querySelectorAll('.scatterlayer .trace').length,"
            " contours: gd.data.filter(t => t.type === 'contour').length})"
        )
        assert drawn["contours"] == contours, drawn  # the contour traces are still in the figure ...
        assert drawn["images"] >= contours, drawn  # ... and their background images still drawn
        assert drawn["lines"] > 0, drawn
    assert animated >= 1, f"no animated chart on {path}"
    page.screenshot(path=str(screenshot_dir / f"played_{name}.png"), full_page=True)
    no_exception(page)


def test_a_new_browser_gets_streamlits_front_end_files_gzipped(app_url, new_page):
    """serve.py's CompressedStatic: every JavaScript file a new browser loads arrives gzipped, and
    what the browser decodes is the package's file byte for byte (≈ 3 MB on the wire instead of
    ≈ 10 MB: a class of thirty on one Wi-Fi)."""
    import gzip
    import urllib.request

    import streamlit

    from pages.compressed_static import MIN_SIZE

    responses = []
    page = new_page()
    page.on("response", lambda response: responses.append(response))
    page.goto(f"{app_url}/")
    wait_for_plot(page, "gd._fullLayout.sliders && gd._fullLayout.sliders.length")
    scripts = [r for r in responses if "/static/js/" in r.url and r.status == 200]
    assert len(scripts) >= 20, [r.url for r in responses]
    # below MIN_SIZE, gzip's header and the round trip outweigh the saving
    big = [r for r in scripts if len(r.body()) >= MIN_SIZE]
    plain = [r.url for r in big if r.all_headers().get("content-encoding") != "gzip"]
    assert not plain, plain
    package = Path(streamlit.__file__).parent / "static"
    biggest = max(scripts, key=lambda r: len(r.body()))  # PlotlyChart's bundle, ≈ 4.7 MB
    path = urlparse(biggest.url).path
    assert biggest.body() == (package / path.lstrip("/")).read_bytes()
    request = urllib.request.Request(f"{app_url}{path}", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as response:  # what travelled: gzip, ≤ 40 %
        wire = response.read()
        assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(wire) == biggest.body() and len(wire) < 0.4 * len(biggest.body())
    no_exception(page)


def test_a_new_browser_fetches_plotly_before_the_websocket_opens(app_url, new_page):
    """serve.py's PlotlyPreload: the page asks for Streamlit's PlotlyChart chunk (plotly.js) while it
    loads, before Streamlit's front end has even opened its websocket — without it the chunk is asked
    for only once the script has sent its first Plotly chart over that websocket. Asked once (the
    preload and Streamlit's lazy import are the same module), and the chart is drawn."""
    from pages.plotly_preload import plotly_chunk

    chunk = plotly_chunk()
    events: list[tuple[str, str]] = []  # in the order the browser reports them
    page = new_page()
    page.on("request", lambda request: events.append(("request", request.url)))
    page.on("websocket", lambda socket: events.append(("websocket", socket.url)))
    page.goto(f"{app_url}/")
    wait_for_plot(page, "gd._fullLayout.sliders && gd._fullLayout.sliders.length")
    asked = [i for i, (kind, url) in enumerate(events) if kind == "request" and url.endswith(f"/js/{chunk}")]
    sockets = [i for i, (kind, url) in enumerate(events) if kind == "websocket" and "/_stcore/stream" in url]
    assert len(asked) == 1 and sockets, events
    assert asked[0] < sockets[0], events
    links = f"head link[rel=modulepreload][href$='{chunk}']"
    assert page.evaluate(f"document.querySelectorAll({links!r}).length") == 1
    no_exception(page)


def test_the_dimer_page_at_projector_size_overlaps_nothing(app_url, new_page, screenshot_dir):
    """1280×720, large fonts, controls hidden, sidebar collapsed: every animated Dimer chart fits the
    window (scrolled to its end, its plots start below the header and its legend ends inside the
    window, a legend or panel title above the plots below the header), the slider's "step …" label
    sits below the x axis's title, the Play buttons clear of the slider, and the legend clear of all
    of them."""
    viewport = {"width": 1280, "height": 720}
    page = open_page(lambda: new_page(viewport=viewport), f"{app_url}/dimer?big=true&lecture=true")
    _expect()(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    collapse_sidebar(page)
    _expect()(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=RUN_TIMEOUT_MS)
    checked = 0
    for tab in ("Rotation", "Saddle search (α = 2)"):  # the animated charts, each in its tab
        page.get_by_role("tab", name=tab).click()
        _expect()(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        charts = page.locator('[data-testid="stPlotlyChart"]:visible')
        _expect()(charts.locator(".updatemenu-button", has_text="Play").first).to_be_visible(
            timeout=RUN_TIMEOUT_MS
        )
        wait_for_settled_charts(page)  # they widen behind the folding sidebar: measure the last drawing
        for i in range(charts.count()):
            chart = charts.nth(i)
            if not chart.locator(".updatemenu-button", has_text="Play").count():
                continue
            chart.scroll_into_view_if_needed()
            chart.evaluate("el => el.scrollIntoView({block: 'end'})")  # its bottom at the window's bottom
            checked += 1
            header = page.locator('[data-testid="stHeader"]').bounding_box()
            plots = chart.locator("g.draglayer rect.nsewdrag").all()  # each subplot's plot area
            assert plots, i
            for plot in plots:  # nothing cut off at the top ...
                top = plot.bounding_box()
                assert top["y"] >= header["y"] + header["height"] - 1, (i, top, header)
            for part in chart.locator("g.legend, g.annotation").all():  # a legend or a panel title above
                # the plots included (the saddle search's legend was behind the header at 700 px)
                box = part.bounding_box()
                assert box["y"] >= header["y"] + header["height"] - 1, (i, box, header)
            label = chart.locator("g.slider-group text.slider-label").first.bounding_box()
            rail = chart.locator("g.slider-group rect.slider-rail-rect").first.bounding_box()
            buttons = chart.locator("g.updatemenu-container").first.bounding_box()
            legend = chart.locator("g.legend").first.bounding_box()
            box = chart.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1, box
            for title in chart.locator("g.g-xtitle text, g.g-x2title text").all():  # every x-axis title
                t = title.bounding_box()
                assert t["y"] + t["height"] <= label["y"] + 1, (i, t, label)  # the label under the title
                assert not overlap(t, buttons), (i, t, buttons)
            assert not overlap(buttons, rail), (i, buttons, rail)  # Play clear of the slider
            if legend is not None:
                assert legend["y"] + legend["height"] <= viewport["height"] + 1, (i, legend)  # nor below
                for name, other in (("label", label), ("rail", rail), ("buttons", buttons)):
                    assert not overlap(legend, other), (i, name, legend, other)
                font = chart.locator("g.legend text.legendtext").first.evaluate(
                    "el => parseFloat(getComputedStyle(el).fontSize)"
                )
                assert legend["height"] <= 3 * 2 * font, (i, legend, font)  # at most three rows
    assert checked >= 2  # the rotation and the saddle search
    page.screenshot(path=str(screenshot_dir / "layout_dimer_projector.png"), full_page=True)
    no_exception(page)


# a 1280×720 projector in the page's large fonts; and the same screen at the system's 150 % scale
PROJECTORS = {
    "1280x720": {"viewport": {"width": 1280, "height": 720}},
    "1280x720-at-150%": {"viewport": {"width": 853, "height": 480}, "device_scale_factor": 1.5},
}


@pytest.mark.parametrize("screen", list(PROJECTORS))
@pytest.mark.parametrize(
    "path", ["/networks?nw.steps=20&big=true&lecture=true", "/?steps=20&big=true&lecture=true"]
)
def test_download_buttons_show_their_whole_labels_on_a_projector_with_the_sidebar_open(
    app_url, new_page, path, screen
):
    """Large fonts, the sidebar open: a grid of four columns cut the labels to "⬇ Animation …" and
    "⬇ Traces (JS…"; the buttons now flow at their own width and wrap."""
    page = open_page(lambda: new_page(**PROJECTORS[screen]), f"{app_url}{path}")
    buttons = page.locator('[data-testid="stDownloadButton"] button:visible')
    _expect()(buttons.filter(has_text="Config (JSON)")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    labels = buttons.locator('[data-testid="stMarkdownContainer"]')
    assert labels.count() >= 2
    cut = labels.evaluate_all(
        "els => els.filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.innerText)"
    )
    assert not cut, cut
    no_exception(page)


@pytest.mark.parametrize("screen", list(PROJECTORS))
def test_the_dimer_metrics_show_their_whole_values_on_a_projector_with_the_sidebar_open(
    app_url, new_page, screen
):
    """Large fonts, the sidebar open: four columns of metrics cut the label "gradient evaluations",
    and at 150 % λ_min to "-75…" and |cos| to "1.0…"; the metrics now take their own width and wrap."""
    page = open_page(lambda: new_page(**PROJECTORS[screen]), f"{app_url}/dimer?big=true")
    metrics = page.locator('[data-testid="stMetric"]:visible')
    _expect()(metrics).to_have_count(4, timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    # each label's and value's text, laid out, against the box that holds it (an ellipsis hides the rest)
    cut = metrics.evaluate_all(
        """els => els.flatMap(m => [...m.querySelectorAll('[data-testid="stMarkdownContainer"]')])
            .filter(box => { const range = document.createRange(); range.selectNodeContents(box);
                return range.getBoundingClientRect().width > box.getBoundingClientRect().width + 1; })
            .map(box => box.innerText)"""
    )
    assert not cut, cut
    no_exception(page)


def test_the_networks_slice_fits_a_projector_window_with_its_title_and_legend(app_url, new_page):
    """1280×720, large fonts, the sidebar open: the animated 2-D loss slice, scrolled so that its
    slider is at the window's bottom, shows its title and legend below the page's header (at 760 px
    high they were behind it) and its legend clear of the title (at 22 px the legend ran into it)."""
    viewport = {"width": 1280, "height": 720}
    url = f"{app_url}/networks?nw.steps=20&big=true&lecture=true"
    page = open_page(lambda: new_page(viewport=viewport), url)
    page.get_by_role("tab", name="2-D loss slice").click()
    _expect()(page.get_by_role("tab", name="2-D loss slice")).to_have_attribute("aria-selected", "true")
    wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]:visible').filter(
        has=page.locator(".updatemenu-button", has_text="Play")
    )
    _expect()(chart).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    _expect()(chart.locator("g.legend")).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_for_settled_charts(page)
    chart.evaluate("el => el.scrollIntoView({block: 'end'})")  # its bottom at the window's bottom
    header = page.locator('[data-testid="stHeader"]').bounding_box()
    title = chart.locator("g.g-gtitle").first.bounding_box()
    legend = chart.locator("g.legend").first.bounding_box()
    rail = chart.locator("g.slider-group rect.slider-rail-rect").first.bounding_box()
    for name, box in (("title", title), ("legend", legend)):
        assert box["y"] >= header["y"] + header["height"] - 1, (name, box, header)
    assert rail["y"] + rail["height"] <= viewport["height"] + 1, rail
    assert not overlap(title, legend), (title, legend)
    no_exception(page)


def choose_option(page, select, name: str | re.Pattern) -> None:
    """Pick the option ``name`` in the Streamlit selectbox ``select`` (``benchmarks/load.py``'s
    helper: it reopens the list if a rerender closes it under the click; state waits only)."""
    from benchmarks.load import choose_option as choose

    choose(page, select, name, visible_timeout_ms=RUN_TIMEOUT_MS)


def _has_trace(suffix: str) -> str:
    """A ``wait_for_plot`` condition: the chart has a trace whose name ends with ``suffix``."""
    return f"gd.data.some(t => (t.name || '').endsWith({suffix!r}))"


def test_view_changes_redraw_the_race_chart_without_computing_the_race_again(app_url, new_page):
    """The server logs ``RACE_COMPUTED`` for every race it computes, never for one served from the
    shared cache (``pages/common.cached_surface_race``). A person opens the plain link, then
    changes the dimer zoom and switches the arrows and the dimer off: the chart shows each change,
    the log gains no race; a change of the race itself (the seed) adds exactly one."""
    from conftest import ROOT

    from pages.common import RACE_COMPUTED

    log = ROOT / "artifacts" / f"streamlit-test-{urlparse(app_url).port}.log"
    page = open_page(new_page, f"{app_url}/")
    wait_for_plot(page, _has_trace(" −g") + " && " + _has_trace(" dimer"))
    computed = log.read_text().count(RACE_COMPUTED)
    assert computed >= 1, "the plain link's race was computed (by the warm-up or a visitor) and logged"
    page.locator('[data-testid="stExpander"] summary').filter(has_text="View").click()
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Dimer zoom"), "10")
    _expect()(page).to_have_url(re.compile(r"[?&]zoom=10(&|$)"), timeout=RUN_TIMEOUT_MS)
    wait_for_plot(page, "gd.data.some(t => t.name === 'dimer (ΔR ×10)')")
    page.locator('[data-testid="stCheckbox"]').filter(has_text="Gradient arrows").locator("label").click()
    wait_for_plot(page, "!" + _has_trace(" −g"))
    page.locator('[data-testid="stCheckbox"]').filter(has_text=re.compile(r"^Dimer$")).locator(
        "label"
    ).click()
    wait_for_plot(page, "!" + _has_trace(" dimer"))
    wait_idle(page)
    assert log.read_text().count(RACE_COMPUTED) == computed, "a view change computed a race"
    # the last frame (every path drawn in full) of this race, to see the new seed's race replace it
    last_frame = "JSON.stringify(gd._transitionData._frames.slice(-1)[0].data)"
    page.evaluate("value => { window.__before = value; }", wait_for_plot(page, last_frame))
    seed = number_input(page, "Seed")
    seed.fill("1")
    seed.press("Enter")
    _expect()(page).to_have_url(re.compile(r"[?&]seed=1(&|$)"), timeout=RUN_TIMEOUT_MS)
    wait_for_plot(page, f"{last_frame} !== window.__before")  # the new race is drawn
    wait_idle(page)
    assert log.read_text().count(RACE_COMPUTED) == computed + 1, "a new seed is one new race"
    no_exception(page)


COUNT_DRAWS = """
new MutationObserver(() => {
  for (const gd of document.querySelectorAll('.js-plotly-plot')) {
    if (gd.__draws !== undefined || !gd.on) continue;
    gd.__draws = 0;
    gd.on('plotly_afterplot', () => { gd.__draws += 1; });
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ['class']});
"""
RACE_DRAWS = f"""() => {{
  const race = Array.from(document.querySelectorAll('.js-plotly-plot')).find(gd => {RACE_CHART});
  return race ? race.__draws : null;
}}"""


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="upstream, Streamlit 1.67 (pinned): st.plotly_chart draws every figure twice when it mounts. "
    "Its PlotlyChart element re-applies the theme in a mount effect (setState(Le(figure, theme)): a "
    "JSON.stringify / replace / JSON.parse of the whole figure, its 300 frames included, even with "
    "theme=None), so react-plotly calls Plotly.react a second time with new objects and the race chart "
    "is drawn again: ≈ 0.3–0.45 s of a first visitor's 2.5 s in the browser (benchmarks/chart_render.py "
    "measures the page). Our own figure adds no draw (margins fixed: no autoexpand redraw).",
)
def test_the_race_chart_is_drawn_once_when_the_page_opens(app_url, new_page):
    """Counts plotly.js's ``plotly_afterplot`` events of the race chart from its creation. Waits for a
    second draw (a state); if none comes, Streamlit has fixed the double draw, the assertion passes
    and this strict xfail fails the run: then drop the mark."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = new_page(viewport={"width": 1400, "height": 900})
    page.add_init_script(COUNT_DRAWS)
    page.goto(app_url)
    page.wait_for_function(f"({RACE_DRAWS})() >= 1", timeout=RUN_TIMEOUT_MS)
    try:
        page.wait_for_function(f"({RACE_DRAWS})() >= 2", timeout=120_000)
    except PlaywrightTimeout:
        pass  # drawn once: the upstream double draw is gone
    wait_idle(page)
    assert page.evaluate(RACE_DRAWS) == 1


def test_a_narrow_window_without_a_phones_user_agent_gets_the_compact_race_figure(app_url, new_page):
    """Streamlit gives the server no viewport: the page guessed the layout from the User-Agent, so a
    desktop browser at 420 px drew the desktop figure, its legend beside a ≈ 90-px plot. The browser
    now reports its main column's width (``pages.viewport``): the figure comes compact, legend in rows
    above a plot about as wide as the screen."""
    page = open_page(lambda: new_page(viewport={"width": 420, "height": 860}), f"{app_url}/?steps={SHORT}")
    wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout.legend.orientation === 'h'")
    width = wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout._size.w")
    assert width >= 250, width
    no_exception(page)


def test_the_race_figure_follows_the_sidebar_on_a_projector_at_150_percent(app_url, new_page):
    """1280×720 at 150 % (853 CSS px) in large fonts: with the sidebar open the main column is ≈ 470 px,
    and the compact figure (legend above, the story under the chart) gives the plot the column's width;
    folding the sidebar widens the column, and the desktop figure (legend beside the plot) comes back."""
    page = open_page(
        lambda: new_page(viewport={"width": 853, "height": 480}, device_scale_factor=1.5),
        f"{app_url}/?steps={SHORT}&big=true",
    )
    wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout.legend.orientation === 'h'")
    width = wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout._size.w")
    assert width >= 300, width
    wait_idle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    buttons = chart.locator("g.updatemenu-container").first.bounding_box()
    for label in chart.locator("g.xtick text, g.g-xtitle text").all():  # Play/Pause sat on the "x" title
        assert not overlap(buttons, label.bounding_box()), (buttons, label.text_content())
    collapse_sidebar(page)
    wait_for_plot(page, f"({RACE_CHART}) && gd._fullLayout.legend.orientation === 'v'")
    no_exception(page)


def test_the_networks_loss_charts_stack_in_a_narrow_column(app_url, new_page):
    """1280×720 at 150 % (853 CSS px) in large fonts, the sidebar open: the two loss charts sat side by
    side ≈ 250 px wide each (Streamlit stacks columns only in a window under 640 px), their legends
    cut. In the compact layout they are one under the other at the column's width, and the caption
    says which is which."""
    page = open_page(
        lambda: new_page(viewport={"width": 853, "height": 480}, device_scale_factor=1.5),
        f"{app_url}/networks?nw.steps=20&big=true",
    )
    _expect()(page.get_by_text("Above against steps, below against gradient evaluations")).to_be_visible(
        timeout=RUN_TIMEOUT_MS
    )
    wait_idle(page)
    charts = page.locator('[data-testid="stPlotlyChart"]:visible')
    first, second = charts.nth(0).bounding_box(), charts.nth(1).bounding_box()
    column = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()
    assert second["y"] >= first["y"] + first["height"] - 1, (first, second)  # one under the other
    assert first["width"] >= 0.8 * column["width"] - 100, (first, column)
    no_exception(page)
