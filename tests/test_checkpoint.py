"""A path fit killed between points resumes from its checkpoint with bit-identical results."""

import numpy as np
import pytest

import hiermodel as hm
import hiermodel.estimator as est_mod

NS = [400, 900, 2000, 4000]


def _stream(d=8, model="hermite"):
    target = hm.HierarchicalTarget(d, gamma=0.4, rng=3)
    return hm.SampleStream(target, NS[-1], np.random.SeedSequence(11), chunk_size=700, model=model), target


def _fitted(method, stream, target, **kw):
    est = hm.LayerwiseSpectral(target.d1, method=method, rng=np.random.SeedSequence(5))
    return est.fit_path(stream, None, NS, **kw)


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.directions_, y.directions_)
        np.testing.assert_array_equal(x.eigenvalues_, y.eigenvalues_)
        np.testing.assert_array_equal(x.readout_coef_, y.readout_coef_)
        assert x.passes_ == y.passes_


class Killed(Exception):
    pass


def _kill_after(monkeypatch, name, calls):
    real, count = getattr(est_mod, name), {"n": 0}

    def wrapped(*args, **kw):
        count["n"] += 1
        if count["n"] > calls:
            raise Killed
        return real(*args, **kw)

    monkeypatch.setattr(est_mod, name, wrapped)
    return count


@pytest.mark.parametrize("method, solver", [("dense", "top_abs_explicit"), ("operator", "block_krylov"),
                                            ("rsi", "rsi")])
def test_killed_path_resumes_bit_identically(tmp_path, monkeypatch, method, solver):
    stream, target = _stream()
    want = _fitted(method, stream, target)
    ck = tmp_path / "fit.npz"
    with monkeypatch.context() as m:
        _kill_after(m, solver, 2)
        with pytest.raises(Killed):
            _fitted(method, *_stream(), checkpoint=ck)
    assert ck.exists()
    count = _kill_after(monkeypatch, solver, 99)
    got = _fitted(method, *_stream(), checkpoint=ck)
    assert count["n"] == len(NS) - 2  # only the unfinished points were solved again
    _same(got, want)


def test_a_finished_checkpoint_skips_the_spectral_step(tmp_path, monkeypatch):
    stream, target = _stream()
    ck = tmp_path / "fit.npz"
    want = _fitted("dense", stream, target, checkpoint=ck)
    count = _kill_after(monkeypatch, "top_abs_explicit", 99)
    _same(_fitted("dense", *_stream(), checkpoint=ck), want)
    assert count["n"] == 0


def test_another_fits_checkpoint_is_ignored_with_a_warning(tmp_path):
    ck = tmp_path / "fit.npz"
    stream, target = _stream()
    _fitted("dense", stream, target, checkpoint=ck)
    other = hm.SampleStream(target, NS[-1], np.random.SeedSequence(12), chunk_size=700)  # other data
    want = _fitted("dense", hm.SampleStream(target, NS[-1], np.random.SeedSequence(12), chunk_size=700), target)
    with pytest.warns(RuntimeWarning, match="belongs to another fit"):
        got = _fitted("dense", other, target, checkpoint=ck)
    _same(got, want)


def test_a_damaged_checkpoint_is_ignored_with_a_warning(tmp_path):
    ck = tmp_path / "fit.npz"
    ck.write_bytes(b"not a checkpoint")
    stream, target = _stream()
    want = _fitted("dense", *_stream())
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint"):
        _same(_fitted("dense", stream, target, checkpoint=ck), want)


def test_bad_checkpoint_arguments(tmp_path):
    stream, target = _stream()
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        _fitted("dense", stream, target, checkpoint=3)
    with pytest.raises(ValueError, match="is a directory"):
        _fitted("dense", stream, target, checkpoint=tmp_path)


def test_a_killed_sweep_task_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    from hiermodel import sweep

    grid = sweep.Grid(d=8, gamma=0.4, alpha=[2.6, 3.0, 3.4, 3.8], seeds=[1], method="dense")
    want = sweep.run(grid, cache_dir=False, progress=False)
    monkeypatch.setattr(sweep, "CHECKPOINT_MIN_WORK", 0)
    with monkeypatch.context() as m:
        _kill_after(m, "top_abs_explicit", 3)
        with pytest.raises(Killed):
            sweep.run(grid, cache_dir=tmp_path, progress=False)
    partial = list(tmp_path.glob("sweep-v*/partial/*.npz"))
    assert len(partial) == 1
    count = _kill_after(monkeypatch, "top_abs_explicit", 99)
    got = sweep.run(grid, cache_dir=tmp_path, progress=False)
    assert count["n"] == 1  # only the last point was solved again
    assert not partial[0].exists()  # removed once the result is stored
    cols = [c for c in want.columns if c != "wall_s"]
    assert got[cols].equals(want[cols])
