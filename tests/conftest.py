"""Shared fixtures: the repository root on ``sys.path`` (pages import ``pages.common`` as a namespace
package, as under ``streamlit run app.py``), and for the ``browser`` tests the README's server
(``python serve.py``: app.py as ``st.App`` with gzipped front-end files, plus its warm-up) on a free
port plus Debian's Chromium driven by Playwright.

The browser tests are skipped only when ``/usr/bin/chromium`` is missing and ``DEO_REQUIRE_BROWSER``
is not ``"1"``; with ``DEO_REQUIRE_BROWSER=1`` (CI) a missing Chromium fails them.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The Run button (pages/estimates.py) appears above an estimate timed on this machine; under load a
# default page could wait for it. Every test server and AppTest runs without it unless a test sets
# the threshold itself (the Run-button tests use the product default).
os.environ["DEO_LAB_RUN_BUTTON_S"] = "inf"
# The browser tests' servers leave the other pages to their visitors (serve.warm_pages): the pages'
# tests visit them anyway, and computing them beside the tests added ≈ 200 s of load to a suite that
# must stay under 15 minutes on 2 cores. tests/test_serve.py runs warm_pages itself, with real pages.
os.environ["DEO_LAB_WARM_PAGES"] = "0"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_START_TIMEOUT_S = 90
SERVER_PIDS: dict[str, int] = {}  # base URL -> process id of the server serve_app started there
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("DEO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DEO_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"{CHROMIUM} is missing (set DEO_REQUIRE_BROWSER=1 to make this a failure)")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Pages run with one intra-op thread, as ``app.py`` sets it (tiny tensors: a second thread only
    adds contention on a shared CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextmanager
def serve_app():
    """The README's server, ``python serve.py`` (app.py as ``st.App``, plus its warm-up thread), on a
    free port, yielding its base URL once it answers; stopped after."""
    _require_chromium()
    port = _free_port()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "artifacts" / f"streamlit-test-{port}.log", "w")
    process = subprocess.Popen(
        [
            sys.executable,
            "serve.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    SERVER_PIDS[url] = process.pid
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"streamlit exited with code {process.returncode} before answering")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not answer {url}/_stcore/health within {SERVER_START_TIMEOUT_S} s"
                )
            time.sleep(0.3)
        yield url
    finally:
        SERVER_PIDS.pop(url, None)
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def app_url():
    """Base URL of the app server shared by this test session."""
    with serve_app() as url:
        yield url


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the whole test session (Playwright sync API). Playwright's sync API
    allows one instance per thread at a time, so every browser test shares this one."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def browser(app_url, chromium):
    """The session's Chromium, for tests against the app server at ``app_url``."""
    return chromium


@pytest.fixture
def new_page(browser):
    """Factory: a page in a fresh browser context (no shared cookies or storage); closed afterwards."""
    contexts = []

    def make(**options):
        context = browser.new_context(**{"viewport": {"width": 1440, "height": 1000}, **options})
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
