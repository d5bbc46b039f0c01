"""Vet the link's query parameters before any widget reads them.

Every control of every page is bound to the URL (``bind=URL``), and Streamlit seeds a bound widget
from its query parameter on the first run. Streamlit's own checks reject most bad values (out of
range, not an option, not a number), but a number input converts with ``int()`` *before* its
finiteness check: ``?steps=inf``, ``-inf``, ``1e400`` or a 100 000-digit number raise
``OverflowError`` and blank the page with a traceback. So :func:`vet_query_params` runs first on
every page (``app.py`` before ``st.navigation``, and each page's ``require_app_navigation``):

- at most ``MAX_PARAMS`` parameters, ``MAX_VALUES_PER_KEY`` values per parameter (repeated keys),
  keys of at most ``MAX_KEY_CHARS`` and values of at most ``MAX_VALUE_CHARS`` characters;
- a value that reads as a number (``float()`` accepts it, ``inf`` and ``nan`` included) must be
  finite and at most ``MAX_ABS_NUMBER`` in magnitude (the browser holds numbers as doubles; no
  control here goes beyond 2³¹);

anything else is dropped from the URL, the run restarts with the cleaned link (Streamlit seeds
widgets from the query string the run started with), and a short notice says what was ignored.
Range and type checks per control stay Streamlit's (an out-of-range or wrong-type value, or a choice
that is not offered, falls back to the control's default); :func:`report_rejected_params`, called
by ``app.py`` after the page ran, says so in a notice, and names parameters no control of the page
reads (``?lr=abc``). Never a traceback.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable

import streamlit as st

MAX_PARAMS = 200
MAX_VALUES_PER_KEY = 32
MAX_KEY_CHARS = 100
MAX_VALUE_CHARS = 600  # the longest legitimate value is a formula (landscapes.formula.MAX_LENGTH = 500)
MAX_ABS_NUMBER = 2.0**53
NOTICE_KEY = "_url_notices"  # session state: notices carried over the cleaning rerun
SNAPSHOT_KEY = "_url_snapshot"  # session state: the vetted link, compared with the widgets after the run
SHOWN_KEY = "_url_notices_shown"  # session state: this run's dropped-value notices, drawn after the page
CARRIED_KEY = "_url_rejected"  # session state: rejected-value notices carried over a page's own rerun
SHOWN = 80  # characters of a bad value quoted in a notice
STREAMLIT_KEYS = ("embed", "embed_options")  # query parameters Streamlit itself reads
EXPLAINED_KEY = "_url_explained"  # session state: parameters the page explained in its own notice


MARKDOWN_SPECIALS = "\\`*_[]<>|~$:#"  # what formats text in the middle of a Streamlit Markdown line


def escape_markdown(text: str) -> str:
    """``text`` shown as typed in a Markdown element (a notice): a link's ``formula=x**2+y**2`` was
    drawn as "x2+y2" with a bold middle."""
    return "".join("\\" + c if c in MARKDOWN_SPECIALS else c for c in str(text))


def _quote(text: str) -> str:
    text = str(text)
    return escape_markdown(repr(text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"))


def explained(key: str) -> None:
    """The page has told the visitor itself why the link's ``key`` was not used as given (e.g. a
    start outside the surface's window, with the window): the closing notice leaves it out."""
    st.session_state.setdefault(EXPLAINED_KEY, set()).add(key)


def _as_number(value: str) -> float | None:
    """``float(value)`` when the value reads as a number (NaN and ±inf included), else None."""
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def problem_with(value: str) -> str | None:
    """Why ``value`` cannot go into any control (a short phrase), or None when it may."""
    if len(value) > MAX_VALUE_CHARS:
        return f"too long ({len(value):,} characters, at most {MAX_VALUE_CHARS})"
    number = _as_number(value)
    if number is None:
        return None
    if not math.isfinite(number):
        return "not a finite number"
    if abs(number) > MAX_ABS_NUMBER:
        return "far outside every control's range"
    return None


ON_OFF = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}


def vet_params(
    params: dict[str, list[str]], renamed: dict[str, str] | None = None, flags: Iterable[str] = ()
) -> tuple[dict[str, list[str]], list[str]]:
    """The pure part of :func:`vet_query_params`: ``(kept, notices)`` for ``{key: [values]}``.
    ``renamed``: old parameter name → the page's current one; an old name in the link is read under
    the new one (unless the link also has the new one), so links shared before a rename still work.
    ``flags``: on/off parameters (a toggle reads only ``true`` / ``false``): ``1``, ``yes``, ``on``,
    ``0``, ``no``, ``off`` (any case) are read as those (``?big=1`` was ignored without a word)."""
    renamed = renamed or {}
    params = {
        renamed.get(key, key) if renamed.get(key) not in params else key: values
        for key, values in params.items()
    }
    params = {
        key: [ON_OFF.get(v.strip().lower(), v) for v in values] if key in flags else values
        for key, values in params.items()
    }
    kept: dict[str, list[str]] = {}
    notices: list[str] = []
    for index, (key, values) in enumerate(params.items()):
        if index >= MAX_PARAMS:
            notices.append(f"only the first {MAX_PARAMS} parameters of the link were read")
            break
        if len(key) > MAX_KEY_CHARS:
            notices.append(f"{_quote(key)}: parameter name too long")
            continue
        good = []
        for value in values[:MAX_VALUES_PER_KEY]:
            reason = problem_with(value)
            if reason is None:
                good.append(value)
            else:
                notices.append(f"{escape_markdown(key)}={_quote(value)}: {reason}")
        if len(values) > MAX_VALUES_PER_KEY:
            shown = escape_markdown(key)
            notices.append(f"{shown}: only the first {MAX_VALUES_PER_KEY} of {len(values)} values were read")
        if good:
            kept[key] = good
    return kept, notices


def _notice(notices: list[str]) -> None:
    head = "Some settings in the link were ignored (the defaults are used instead): "
    shown = notices[:8] + ([f"and {len(notices) - 8} more"] if len(notices) > 8 else [])
    st.warning(head + "; ".join(shown) + ".", icon="🔗")


def vet_query_params(
    defer: bool = False, renamed: dict[str, str] | None = None, flags: Iterable[str] = ()
) -> None:
    """Drop the link's query parameters that no control can take (see the module docstring), before
    any widget is built, and name what was dropped in a notice: drawn here, or with ``defer``
    (``app.py``, which calls :func:`report_rejected_params` after the page) in that function's
    notice, together with the values the controls did not take. ``renamed`` (old name → new) moves a
    parameter a page has renamed to its new name; ``flags`` names on/off parameters
    (:func:`vet_params`). Call it at the top of a run; idempotent (a clean link costs a dict
    comprehension)."""
    query = st.query_params
    params = {key: query.get_all(key) for key in query}
    kept, notices = vet_params(params, renamed, flags)
    if kept != params:
        for key in [*params, *(k for k in kept if k not in params)]:
            if kept.get(key) == params.get(key):
                continue
            try:
                if key in kept:
                    query[key] = kept[key]
                else:
                    del query[key]
            except Exception:  # a parameter already bound to a widget: Streamlit vets it itself
                continue
        st.session_state[NOTICE_KEY] = notices
        # the run is abandoned: what it read from the link is judged on the cleaned link's run (a
        # snapshot of the link as it was would name a renamed parameter as one no control reads)
        st.session_state.pop(SNAPSHOT_KEY, None)
        st.rerun()  # widgets seed from the query string the run started with: start from the clean one
    pending = st.session_state.pop(NOTICE_KEY, None)
    if pending:
        if not defer:
            _notice(pending)
        st.session_state[SHOWN_KEY] = pending  # report_rejected_params: drawn (deferred) or carried
    st.session_state[SNAPSHOT_KEY] = kept


def _matches(url_value: str, value: object) -> bool:
    if isinstance(value, bool):
        return url_value.strip().lower() == str(value).lower()
    number = _as_number(url_value)
    return number is not None and number == float(value)


def _choices(key: str) -> list[str] | None:
    """The option labels a bound selectbox / radio / multiselect accepts in the URL, from
    Streamlit's widget metadata (``formatted_options``); None when not known."""
    try:
        from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

        state = get_script_run_ctx().session_state._state
        metadata = state._new_widget_state.widget_metadata[state._key_id_mapper.get_id_from_key(key)]
        options = metadata.formatted_options
        return None if options is None else [str(o) for o in options]
    except Exception:  # not in a script run, or Streamlit's internals moved: no notice
        return None


def _rejections(key: str, url_values: list[str]) -> list[str]:
    """Notices for a link parameter the page did not take as given: no control of that name, a
    number or on/off value out of range or of the wrong type, a choice that is not offered."""
    if key in STREAMLIT_KEYS or key in st.session_state.get(EXPLAINED_KEY, ()):
        return []
    shown = escape_markdown(key)
    if key not in st.session_state:
        name = escape_markdown(repr(key))
        return [f"{shown}={_quote(url_values[-1])}: this page has no setting {name}, ignored"]
    value = st.session_state[key]
    choices = _choices(key)  # a selectbox / radio / multiselect: the link holds an option's label
    if choices is None and isinstance(value, bool | int | float):  # a number input, slider, toggle
        if len(url_values) == 1 and not _matches(url_values[0], value):
            return [f"{shown}={_quote(url_values[0])}: not allowed here, {value!r} is used"]
        return []
    if isinstance(value, list) and url_values == [""]:  # how Streamlit writes an emptied multiselect
        return []
    if choices is None:
        return []
    # (a selectbox whose options are numbers, e.g. the Dimer's start minimum 0, 1, 2 shown as
    # "min 3 (…)", holds a number: its label in the link was once called not allowed, "2 is used")
    return [f"{shown}={_quote(v)}: not one of the choices, ignored" for v in url_values if v not in choices]


def _rerun_in_flight() -> bool:
    """Whether the page is being left by ``st.rerun`` (this is called from a ``finally``)."""
    error = sys.exc_info()[1]
    return error is not None and type(error).__name__ == "RerunException"


def report_rejected_params() -> None:
    """After the page ran (``app.py``, in a ``finally``): one notice naming what the link asked for
    and did not get — the values :func:`vet_query_params` dropped, then each numeric or on/off value
    a control did not take as given (out of its range, wrong type), with the value used instead.
    (``app.py`` calls :func:`vet_query_params` with ``defer``, so its notices are drawn here.)
    When the page is rerunning itself, the notices are carried to the next run instead, so a page
    that reruns on first load still shows them; a parameter whose control the abandoned run had not
    built yet is left to the next run (a page that reruns before its widgets, e.g. Surfaces on a
    link with a formula and no surface, would otherwise call every parameter one it lacks)."""
    snapshot = st.session_state.pop(SNAPSHOT_KEY, None) or {}
    notices = list(st.session_state.pop(CARRIED_KEY, []))
    rerun = _rerun_in_flight()
    for key, url_values in snapshot.items():
        if rerun and key not in st.session_state:
            continue
        for notice in _rejections(key, url_values if isinstance(url_values, list) else [url_values]):
            if notice not in notices:
                notices.append(notice)
    shown = st.session_state.pop(SHOWN_KEY, None) or []
    st.session_state.pop(EXPLAINED_KEY, None)
    if rerun:
        if shown:
            st.session_state[NOTICE_KEY] = shown
        if notices:
            st.session_state[CARRIED_KEY] = notices
        return
    notices = shown + [notice for notice in notices if notice not in shown]
    if notices:  # one notice: what vet_query_params dropped, then what the controls did not take
        _notice(notices)
