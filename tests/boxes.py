"""Bounding-box geometry for the browser tests (Playwright's ``bounding_box()`` dicts)."""

from __future__ import annotations


def overlap(a: dict, b: dict) -> bool:
    """Whether two boxes ``{"x", "y", "width", "height"}`` share any area."""
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )
