"""The hierarchical target of SPEC §1 (paper Eqs. 2.1–2.5).

``h_i = <A_i, F(x)>``, ``h2 = (1/sqrt 2) sum_i lambda_i (h_i^2 - 1)``, ``y = g(h2)``, with ``F`` the Hermite lift of
degree ``q``, ``d1 = floor(d^eps)`` unit directions ``A_i`` and power-law weights
``lambda_i = Z_gamma z_i i^(-gamma)`` (Rademacher signs ``z_i``).
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import (MODELS, as_generator, check_allocation, check_bool, check_inputs, check_int, check_model,
                      check_real, real_array)
from .hermite import feature_dimension, hermite_features, vector_to_matrix
from .theory import first_layer_width, weight_magnitudes, width_exponent

__all__ = ["HierarchicalTarget", "MODELS", "TANH_SCALE"]

_SQRT2 = math.sqrt(2.0)
_CHUNK_ENTRIES = 1 << 23  # rows of the lift are built in chunks of about 64 MB


def _gauss_expectation(f, nodes: int = 200) -> float:
    """``E f(Z)`` for ``Z ~ N(0, 1)`` by Gauss–Hermite quadrature (probabilists' weight)."""
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    return float(np.sum(w * f(z)) / math.sqrt(2.0 * math.pi))


TANH_SCALE = 1.0 / math.sqrt(_gauss_expectation(lambda z: np.tanh(z) ** 2))
"""``c`` with ``E (c tanh Z)^2 = 1``: the link ``g = "tanh"`` is ``c tanh`` (unit variance under ``N(0, 1)``)."""


def _standard_tanh(z):
    """``tanh`` scaled to unit variance under ``N(0, 1)`` (it is already centred: tanh is odd)."""
    return TANH_SCALE * np.tanh(z)


def _probe_link(g):
    """Check that a callable ``g`` acts elementwise on float arrays and is finite where labels can fall.

    Probed on a grid of ``[-30, 30]`` and the quadrature nodes of :func:`_gauss_expectation` (both shapes 1-D and
    2-D, in another order and on a subset, so that reductions such as ``z - z.mean()`` or ``np.sort`` are caught).
    Labels are checked again where they are computed (:meth:`HierarchicalTarget.apply_link`).
    """
    nodes = np.polynomial.hermite_e.hermegauss(200)[0]
    probe = np.concatenate([np.linspace(-30.0, 30.0, 241), nodes])
    try:
        with np.errstate(all="ignore"):  # non-finite values are reported below, in one clear error
            out = np.asarray(g(probe))
    except Exception as err:  # noqa: BLE001 - any failure on an array is the user's g: say so
        raise ValueError(f"a callable g must act elementwise on numpy arrays; g(array of {probe.size} floats) raised "
                         f"{type(err).__name__}: {err}") from err
    if out.shape != probe.shape:
        raise ValueError(f"a callable g must map a float array to a finite array of the same shape; g(array of shape "
                         f"{probe.shape}) returned shape {out.shape}")
    out = real_array("g(z)", out).astype(float, copy=False)
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(f"a callable g must be finite on the whole real line; g({probe[bad][0]:.4g}) = "
                         f"{out[bad][0]} (probed on [-30, 30])")
    perm = np.random.default_rng(0).permutation(probe.size)
    for label, z, want in (("a reordered array", probe[perm], out[perm]), ("a part of the array", probe[:5], out[:5]),
                           ("a 2-D array", probe[:240].reshape(12, 20), out[:240].reshape(12, 20))):
        try:
            with np.errstate(all="ignore"):
                got = np.asarray(g(z), dtype=float)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"a callable g must act elementwise on numpy arrays; g({label}) raised "
                             f"{type(err).__name__}: {err}") from err
        if got.shape != want.shape or not np.allclose(got, want, rtol=1e-9, atol=1e-12):
            raise ValueError(f"a callable g must act elementwise (each label a function of its own h2 only): g on "
                             f"{label} does not give the same values; avoid reductions such as z - z.mean()")


def _identity(z):
    return z


def _resolve_link(g):
    if isinstance(g, str):
        links = {"id": _identity, "tanh": _standard_tanh}
        if g not in links:
            raise ValueError(f"unknown g {g!r}: use 'id', 'tanh' or a callable acting elementwise on arrays")
        return g, links[g]
    if callable(g):
        _probe_link(g)
        return getattr(g, "__name__", "callable"), g
    raise ValueError(f"g must be 'id', 'tanh' or a callable, got {type(g).__name__}")


class HierarchicalTarget:
    """The two-layer hierarchical target ``y = g(h2(h(F(x))))`` of SPEC §1.

    Parameters
    ----------
    d : int
        Input dimension, ``x ~ N(0, I_d)``.
    q : int
        Degree of the Hermite lift (paper: ``q >= 2``; experiments ``q = 2``).
    eps : float
        Width exponent, ``d1 = floor(d^eps)`` (the paper's convention); needs ``1 <= d1 <= D``. Default 0.5.
    d1 : int, optional
        The width chosen directly instead of ``eps`` (e.g. ``round(d ** 0.5)``, the authors' experiment code):
        ``eps`` becomes :func:`hiermodel.theory.width_exponent` ``(d, d1)``, so every formula in ``(d, eps)``
        sees this ``d1``.
    gamma : float
        Power-law exponent of the second-layer weights, ``gamma >= 0``.
    g : {"id", "tanh"} or callable
        Output link. ``"tanh"`` is scaled to unit variance under ``N(0, 1)``; a callable acts elementwise.
    orthonormal : bool
        ``True``: the ``A_i`` are exactly orthonormal (Gaussian matrix, then QR). ``False``: i.i.d. Gaussian rows
        normalised to unit length, nearly orthogonal as in the paper.
    rng : None, int, SeedSequence or Generator
        Randomness of the directions and the signs ``z_i``.

    Attributes
    ----------
    d1, D : int
        Width and feature dimension ``binom(d + q - 1, q)``.
    directions : ndarray (d1, D)
        Unit rows ``A_i`` in the coordinates of :func:`hiermodel.hermite_features`.
    weights : ndarray (d1,)
        Signed ``lambda_i``, ``sum lambda_i^2 = 1``, ``|lambda_i|`` decreasing in ``i``.
    nu1 : float
        ``E g'(Z) = E[Z g(Z)]``, ``Z ~ N(0, 1)``: the information-exponent-1 coefficient.
    """

    def __init__(self, d, *, q=2, eps=None, gamma=0.0, g="id", orthonormal=True, rng=None, d1=None):
        self.d = check_int("d", d, minimum=1)
        self.q = check_int("q", q, minimum=1)
        if d1 is not None:  # the width chosen directly (e.g. the authors' round(d^eps)): the eps that floors to it
            if eps is not None:
                raise ValueError("give eps or d1, not both (d1 sets eps so that floor(d^eps) = d1)")
            eps = width_exponent(self.d, d1)
        self.eps = check_real("eps", 0.5 if eps is None else eps, minimum=0.0)
        self.gamma = check_real("gamma", gamma, minimum=0.0)
        self.D = feature_dimension(self.d, self.q)
        self.d1 = first_layer_width(self.d, self.eps)
        if not 1 <= self.d1 <= self.D:
            raise ValueError(
                f"d1 = floor(d^eps) = {self.d1} must satisfy 1 <= d1 <= D = {self.D} (d = {self.d}, q = {self.q}, "
                f"eps = {self.eps}); choose eps in [0, log(D)/log(d)]"
            )
        check_allocation(f"HierarchicalTarget(d = {self.d}, q = {self.q}): its d1 = {self.d1:,} directions in D = "
                         f"{self.D:,} features", 3 * 8 * self.D * self.d1)
        self.g_name, self.g = _resolve_link(g)
        self.orthonormal = check_bool("orthonormal", orthonormal)
        rng = as_generator(rng)
        gauss = rng.standard_normal((self.D, self.d1))
        if self.orthonormal:
            Q, R = np.linalg.qr(gauss)
            directions = (Q * np.sign(np.diag(R))).T  # sign fix: a deterministic function of the draw
        else:
            directions = (gauss / np.linalg.norm(gauss, axis=0)).T
        self.directions = np.ascontiguousarray(directions)
        signs = rng.choice(np.array([-1.0, 1.0]), size=self.d1)
        self.weights = signs * weight_magnitudes(self.d1, self.gamma)
        self.nu1 = _gauss_expectation(lambda z: z * self.g(z))

    def __repr__(self):
        return (f"HierarchicalTarget(d={self.d}, q={self.q}, eps={self.eps}, gamma={self.gamma}, g={self.g_name!r}, "
                f"orthonormal={self.orthonormal}; d1={self.d1}, D={self.D})")

    # --- the layers -------------------------------------------------------------------------------------------
    def first_layer(self, X) -> np.ndarray:
        """``h = A F(x)``, shape ``(n, d1)``; the lift is built in row chunks to bound memory."""
        X = check_inputs(X, self.d)
        rows = max(1, _CHUNK_ENTRIES // self.D)
        h = np.empty((X.shape[0], self.d1))
        for start in range(0, X.shape[0], rows):
            h[start:start + rows] = hermite_features(X[start:start + rows], self.q) @ self.directions.T
        return h

    def second_layer(self, h) -> np.ndarray:
        """``h2 = (1/sqrt 2) sum_i lambda_i (h_i^2 - 1)``."""
        h = real_array("h", h).astype(float, copy=False)
        if h.ndim != 2 or h.shape[1] != self.d1:
            raise ValueError(f"h must have shape (n, {self.d1}), got {h.shape}")
        return ((h * h - 1.0) @ self.weights) / _SQRT2

    def apply_link(self, h2) -> np.ndarray:
        """``y = g(h2)``, with a ValueError if ``g`` gives a non-finite label (a callable ``g`` is probed only on a
        grid when the target is built)."""
        y = self.g(h2)
        if self.g is _identity or self.g is _standard_tanh:
            return y
        y = np.asarray(y)
        if y.shape != np.shape(h2):
            raise ValueError(f"g returned shape {y.shape} for h2 of shape {np.shape(h2)}: g must act elementwise")
        finite = np.isfinite(y)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            raise ValueError(f"g returned non-finite labels for {bad.size} of {y.size} samples (first at h2 = "
                             f"{np.ravel(h2)[bad[0]]:.6g}): g must be finite on the whole real line")
        return y

    def __call__(self, X) -> np.ndarray:
        """The labels ``y = g(h2)`` of inputs ``X`` (no label noise)."""
        return self.apply_link(self.second_layer(self.first_layer(X)))

    # --- data -------------------------------------------------------------------------------------------------
    def sample(self, n, rng=None, *, model="hermite"):
        """Draw ``n`` samples and their labels.

        ``model="hermite"``: inputs ``x ~ N(0, I_d)``, returns ``(X, y)`` of shapes ``(n, d)``, ``(n,)``.
        ``model="gaussian-equivalent"``: features ``F ~ N(0, I_D)`` drawn directly and labels from the same layers
        (``h = A F`` is then exactly Gaussian), returns ``(F, y)`` of shapes ``(n, D)``, ``(n,)``.
        Only the inputs consume randomness, so consecutive calls on one Generator equal one larger call.
        """
        n = check_int("n", n, minimum=1)
        if check_model(model) == "gaussian-equivalent":
            F = as_generator(rng).standard_normal((n, self.D))
            return F, self.apply_link(self.second_layer(F @ self.directions.T))
        X = as_generator(rng).standard_normal((n, self.d))
        return X, self(X)

    # --- exact moments ----------------------------------------------------------------------------------------
    def direction_matrices(self) -> np.ndarray:
        """For ``q = 2``: the ``A_i`` as symmetric ``d x d`` matrices of unit Frobenius norm, ``(d1, d, d)``."""
        if self.q != 2:
            raise ValueError(f"directions are symmetric matrices only for q = 2, this target has q = {self.q}")
        return vector_to_matrix(self.directions, self.d)

    def h2_variance(self, *, model="hermite") -> float:
        """``Var h2``, exact at finite ``d`` (SPEC §1).

        Gaussian-equivalent model: ``sum_ij lambda_i lambda_j <A_i, A_j>^2`` (= 1 for orthonormal ``A_i``).
        Real model, ``q = 2``, from the joint cumulants of Gaussian quadratic forms:
        ``Cov(h_i^2, h_j^2) = 2 tr(A_i A_j)^2 + 8 tr(A_i^2 A_j^2) + 4 tr(A_i A_j A_i A_j)``, so
        ``Var h2 = (1/2) sum_ij lambda_i lambda_j Cov(h_i^2, h_j^2)``. Other ``q`` raise ``ValueError``.
        """
        lam = self.weights
        gram = self.directions @ self.directions.T
        if check_model(model) == "gaussian-equivalent":
            return float(lam @ (gram**2) @ lam)
        M = self.direction_matrices()
        squares = M @ M
        P = np.tensordot(lam, squares, axes=1)  # sum_i lambda_i A_i^2
        quartic = 0.0  # sum_ij lambda_i lambda_j tr(A_i A_j A_i A_j)
        for i in range(self.d1):
            prods = M[i] @ M  # A_i A_j for all j
            quartic += lam[i] * (lam @ np.einsum("jab,jba->j", prods, prods))
        return float(lam @ (gram**2) @ lam + 4.0 * np.sum(P * P) + 2.0 * quartic)
