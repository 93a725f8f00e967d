"""A digest of what a figure plots, so that nbval notices a changed curve (it ignores images).

:func:`show` prints one line — a SHA-256 digest of every plotted array (line data, markers and error bars,
filled areas, bars, images) rounded to about six significant digits — and then shows the figure. The line is a
text output of the cell, compared exactly by nbval; the rounding keeps it stable against last-bit differences of
floating-point libraries while any visible change of a curve changes it.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["figure_arrays", "figure_digest", "show"]

_MANTISSA_BITS = 20  # 2^-20 ~ 1e-6 relative: about six significant digits


def _rounded(a) -> np.ndarray:
    a = np.ma.filled(np.ma.asarray(a, dtype=float), np.nan)
    a = np.where(np.isfinite(a), a, 0.0)  # NaN/inf mark gaps; their positions are in the shape and neighbours
    m, e = np.frexp(a)
    return np.ldexp(np.round(m * 2.0**_MANTISSA_BITS) / 2.0**_MANTISSA_BITS, e)


def figure_arrays(fig) -> list:
    """The plotted data of every axes of ``fig``, in drawing order, as float arrays (data coordinates)."""
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.patches import Rectangle

    out = []
    for ax in fig.axes:
        out += [line.get_xydata() for line in ax.lines]
        for coll in ax.collections:
            if isinstance(coll, LineCollection):
                out += [np.asarray(seg) for seg in coll.get_segments()]
            elif isinstance(coll, PolyCollection):
                out += [path.vertices for path in coll.get_paths()]
            else:
                out.append(np.asarray(coll.get_offsets()))
        out += [np.array([p.get_x(), p.get_y(), p.get_width(), p.get_height()]) for p in ax.patches
                if isinstance(p, Rectangle)]
        out += [np.asarray(im.get_array()) for im in ax.images]
    return [np.atleast_1d(np.asarray(a, dtype=float)) for a in out]


def figure_digest(fig) -> str:
    """``"figure data: sha256 <12 hex> (<k> arrays, <m> values)"`` for the arrays of :func:`figure_arrays`."""
    arrays = figure_arrays(fig)
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(_rounded(a).tobytes())
    return f"figure data: sha256 {h.hexdigest()[:12]} ({len(arrays)} arrays, {sum(a.size for a in arrays)} values)"


def show(fig=None):
    """Print :func:`figure_digest` of ``fig`` (default: the current figure), then ``matplotlib.pyplot.show()``."""
    import matplotlib.pyplot as plt

    print(figure_digest(plt.gcf() if fig is None else fig))
    plt.show()
