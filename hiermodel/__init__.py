"""hiermodel: the hierarchical model of Wortsman-Zurich et al. (arXiv:2605.14567) and its layer-wise estimator."""

from . import theory
from .hermite import feature_dimension, hermite_features, matrix_to_vector, multisets, vector_to_matrix
from .target import HierarchicalTarget

__all__ = [
    "HierarchicalTarget",
    "feature_dimension",
    "hermite_features",
    "matrix_to_vector",
    "multisets",
    "theory",
    "vector_to_matrix",
]
__version__ = "0.1.0"
