"""The paired-links experiment of chapter 5: one target, the same Gaussian features, several links."""

import numpy as np
import pytest

import hiermodel as hm
from hiermodel import experiments, tables


def _targets(d=8, rng=0):
    return {g: hm.HierarchicalTarget(d, gamma=0.4, g=g, rng=rng) for g in ("id", "tanh")}


def test_paired_sizes_are_chapter_5s():
    # book/05-nonlinear.ipynb cell 7 before the refactor
    alphas = np.round(np.arange(1.9, 3.6001, 0.05), 2)
    np.testing.assert_array_equal(experiments.paired_sizes(30), np.unique(np.round(30**alphas).astype(int)))
    assert experiments.ALPHAS[0] == 1.9 and experiments.ALPHAS[-1] == 3.6 and len(experiments.ALPHAS) == 35
    assert experiments.PAIRED_LINKS["ci"] == {"d": 30, "seeds": 6}


def test_paired_links_is_the_chapters_paired_fit():
    targets, ns = _targets(), [40, 80, 160, 320]
    df = experiments.paired_links(targets, ns, seeds=2, base_seed=100)
    assert list(df[["g", "seed", "n"]].itertuples(index=False, name=None)) == [
        (g, s, n) for g in ("id", "tanh") for s in range(2) for n in ns]
    assert {"d", "d1", "D", "gamma", "model", "alpha", "q_h", "cos2_1", "cos2_2"} <= set(df.columns)
    assert (df["model"] == "gaussian-equivalent").all() and "cos2_3" not in df.columns
    np.testing.assert_allclose(df["alpha"], np.log(df["n"]) / np.log(8))
    # the chapter's code: F, y from seed 100 + s, tanh labels from the same h2, LayerwiseSpectral(rng=0)
    t_id, t_tanh = targets["id"], targets["tanh"]
    for s in range(2):
        F, y = t_id.sample(ns[-1], np.random.default_rng(100 + s), model="gaussian-equivalent")
        for g, labels in (("id", y), ("tanh", t_tanh.g(y))):
            fits = hm.LayerwiseSpectral(t_id.d1, rng=0).fit_path(F, labels, ns, features=True)
            expected = [hm.metrics.direction_cos2(t_id.directions, e.directions_) for e in fits]
            part = df[(df["g"] == g) & (df["seed"] == s)]
            np.testing.assert_array_equal(part[["cos2_1", "cos2_2"]].to_numpy(), np.array(expected))
    # long form and mean_sem apply as to a sweep table
    st = tables.mean_sem(tables.long_form(df, "cos2").query("g == 'tanh' and i == 1"), "n", "cos2")
    assert list(st.index) == ns and (st["count"] == 2).all()


def test_paired_links_streams_the_same_draws_when_large():
    targets, ns = _targets(), [40, 120, 300]
    memory = experiments.paired_links(targets, ns, seeds=1)
    streamed = experiments.paired_links(targets, ns, seeds=1, max_entries=1, chunk_size=64)
    cols = ["q_h", "cos2_1", "cos2_2"]
    # float32 kernels: chunked and in-memory sums agree to rounding
    np.testing.assert_allclose(streamed[cols].to_numpy(), memory[cols].to_numpy(), rtol=0, atol=1e-6)


def test_paired_links_pairs_the_data():
    # two names for the same link see the same data: identical rows; another data seed gives other rows
    t = hm.HierarchicalTarget(8, gamma=0.4, g="tanh", rng=3)
    df = experiments.paired_links({"a": t, "b": t}, [50, 200], seeds=1)
    cols = ["q_h", "cos2_1", "cos2_2"]
    np.testing.assert_array_equal(df[df["g"] == "a"][cols].to_numpy(), df[df["g"] == "b"][cols].to_numpy())
    other = experiments.paired_links({"a": t}, [50, 200], seeds=1, base_seed=7)
    assert not np.array_equal(other[cols].to_numpy(), df[df["g"] == "a"][cols].to_numpy())


def test_paired_links_rejects_unpaired_input():
    targets = _targets()
    with pytest.raises(ValueError, match="other directions or weights"):
        experiments.paired_links({"id": targets["id"], "tanh": _targets(rng=1)["tanh"]}, [40, 80], seeds=1)
    with pytest.raises(ValueError, match="strictly increasing"):
        experiments.paired_links(targets, [80, 40], seeds=1)
    with pytest.raises(ValueError, match="non-empty dict"):
        experiments.paired_links({}, [40, 80], seeds=1)
    with pytest.raises(TypeError, match="HierarchicalTarget"):
        experiments.paired_links({"id": "id"}, [40, 80], seeds=1)
    with pytest.raises(ValueError, match="seeds"):
        experiments.paired_links(targets, [40, 80], seeds=0)
