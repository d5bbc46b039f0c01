"""Shared helpers of the AppTest page tests: run a page with URL query parameters, check it is clean."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGES_DIR = Path(__file__).resolve().parents[1] / "pages"


def page_runner(page_file: str, timeout_s: float) -> Callable[..., AppTest]:
    """``run(**query)``: a fresh AppTest of ``pages/<page_file>`` with ``query`` as the URL's query
    parameters (values are strings or lists of strings), run once."""

    def run(**query) -> AppTest:
        at = AppTest.from_file(str(PAGES_DIR / page_file), default_timeout=timeout_s)
        at.query_params.update(query)
        return at.run()

    return run


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def assert_clean(at: AppTest) -> None:
    """No exception box and no error message."""
    no_exception(at)
    assert not at.error, [e.value for e in at.error]
