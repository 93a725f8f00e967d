"""Figure digests: the same plot gives the same line, a changed curve a different one."""

import matplotlib.pyplot as plt
import numpy as np

from hiermodel.digest import figure_arrays, figure_digest


def _figure(y, *, bars=(1.0, 2.0)):
    fig, (a, b) = plt.subplots(1, 2)
    x = np.linspace(0, 1, 50)
    a.plot(x, y)
    a.errorbar(x[::10], y[::10], yerr=0.1, fmt="o")
    a.fill_between(x, y - 0.1, y + 0.1)
    b.bar([0, 1], bars)
    b.hist(np.linspace(0, 1, 101), bins=5)
    return fig


def test_digest_sees_every_kind_of_artist_and_is_stable():
    y = np.sin(np.linspace(0, 1, 50))
    fig = _figure(y)
    arrays = figure_arrays(fig)
    assert len(arrays) > 10 and sum(a.size for a in arrays) > 200
    same = figure_digest(fig)
    assert figure_digest(_figure(y)) == same
    assert figure_digest(_figure(y * (1 + 1e-12))) == same  # last-bit noise does not change it
    assert figure_digest(_figure(y * (1 + 1e-3))) != same  # a visible change of the line does
    assert figure_digest(_figure(y, bars=(1.0, 2.01))) != same  # so does a bar
    assert same.startswith("figure data: sha256 ")
    plt.close("all")
