"""Problems for DEO Lab: analytic saddle surfaces, safe user formulas, small networks, 2-D slices.

Torch only (never imports ``viz`` or ``streamlit``). Submodules are imported on first use.
"""

from importlib import import_module

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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'landscapes' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
