"""viz.overlap: which drawn curves another hides, measured as the eye sees them."""

from __future__ import annotations

import numpy as np
import pytest

from viz import overlap


def brute_force_distance(points: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Each point's distance to every segment of the polyline, the smallest (no windowing)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None, :] - a) * ab).sum(axis=2) / np.maximum((ab**2).sum(axis=1), 1e-300), 0, 1)
    return np.linalg.norm(points[:, None, :] - (a + t[..., None] * ab), axis=2).min(axis=1)


@pytest.mark.parametrize("seed", range(20))
def test_the_windowed_test_agrees_with_every_segment_measured(seed):
    """Only segments overlapping x ± reach are measured; on random polylines whose x never
    decreases (repeated x included, as cumulative gradient evaluations have) the answer is the one
    of measuring every segment."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 60))
    x = np.cumsum(rng.choice([0.0, 0.01, 0.02, 0.05], size=m))
    line = np.column_stack((x, np.cumsum(rng.normal(0, 0.05, m))))
    points = np.column_stack((rng.uniform(-0.1, x[-1] + 0.1, 200), rng.normal(0, 0.3, 200)))
    for reach in (0.001, 0.01, 0.05, 0.2):
        expected = brute_force_distance(points, line) <= reach
        np.testing.assert_array_equal(overlap._near_polyline(points, line, reach), expected)


def test_a_steep_drop_a_fraction_of_a_step_ahead_is_hidden_and_a_visible_gap_is_not():
    """Measured perpendicular to the lines: a curve shifted by a tenth of a step on a steep drop has a
    large vertical gap there and is still drawn under the other; one 5 % of the height away is not."""
    x = np.arange(0.0, 200.0)
    top = 1.0 / (1.0 + np.exp((x - 50.0) / 2.0))  # a drop from 1 to 0 over ≈ 10 steps
    ahead = 1.0 / (1.0 + np.exp((x + 0.1 - 50.0) / 2.0))
    assert np.abs(ahead - top).max() > overlap.COVERED_FRACTION  # vertically apart on the drop
    curves = [overlap.Drawn("ahead", x, ahead, ahead), overlap.Drawn("top", x, top, top)]
    assert [h[:2] for h in overlap.hidden_curves(curves)] == [("ahead", "top")]
    above = overlap.Drawn("above", x, top + 0.05, top + 0.05)
    assert overlap.hidden_curves([above, curves[1]]) == []
    dotted = overlap.Drawn("dotted", x, top, top, solid=False)
    assert overlap.hidden_curves([curves[0], dotted]) == []  # a dotted line on top leaves it visible
    sentence = overlap.hidden_sentences({"left": overlap.hidden_curves(curves), "right": []})
    assert sentence.startswith(" ahead lies under top on the left chart (the losses differ by at most")
    stacked = overlap.hidden_sentences({"left": overlap.hidden_curves(curves), "right": []}, stacked=True)
    assert stacked.startswith(" ahead lies under top on the upper chart")
