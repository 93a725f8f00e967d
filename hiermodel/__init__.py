"""hiermodel: the hierarchical model of Wortsman-Zurich et al. (arXiv:2605.14567) and its layer-wise estimator."""

from . import figures, metrics, population, sweep, tables, theory
from .data import SampleStream
from .estimator import LayerwiseSpectral, spectral_matrix
from .hermite import feature_dimension, hermite_features, matrix_to_vector, multisets, vector_to_matrix
from .sweep import Grid
from .target import MODELS, HierarchicalTarget

__all__ = [
    "Grid",
    "HierarchicalTarget",
    "LayerwiseSpectral",
    "MODELS",
    "SampleStream",
    "feature_dimension",
    "figures",
    "hermite_features",
    "matrix_to_vector",
    "metrics",
    "multisets",
    "population",
    "spectral_matrix",
    "sweep",
    "tables",
    "theory",
    "vector_to_matrix",
]
__version__ = "0.1.0"
