"""Problems for DEO Lab: analytic saddle surfaces, safe user formulas, small networks, 2-D slices.

Torch only (never imports ``viz`` or ``streamlit``). Submodules are imported on first use.
"""

from deo.exports import lazy_exports

_EXPORTS = {
    "Surface": "landscapes.surfaces",
    "StationaryPoint": "landscapes.surfaces",
    "SURFACES": "landscapes.surfaces",
    "parse_formula": "landscapes.formula",
    "FormulaError": "landscapes.formula",
    "NETWORKS": "landscapes.networks",
    "make_network": "landscapes.networks",
    "NetworkProblem": "landscapes.networks",
    "shakespeare_char": "landscapes.shakespeare",
    "random_plane": "landscapes.slices",
    "min_curvature_plane": "landscapes.slices",
    "pca_plane": "landscapes.slices",
    "loss_grid": "landscapes.slices",
    "project_onto_plane": "landscapes.slices",
    "slice_plan": "landscapes.trajectory_slices",
    "trajectory_slice": "landscapes.trajectory_slices",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
