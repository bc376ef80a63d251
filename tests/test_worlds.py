"""Invariants of the sparse-coding world."""

import numpy as np
import pytest

from theorylab.worlds import SparseCoding


@pytest.mark.parametrize("dictionary", ["identity", "orthogonal", "hadamard"])
def test_dictionary_is_orthonormal(dictionary):
    w = SparseCoding(64, 4, dictionary=dictionary, seed=3)
    np.testing.assert_allclose(w.M.T @ w.M, np.eye(64), atol=1e-12)
    if dictionary == "hadamard":  # dense: every entry has magnitude 1/sqrt(d)
        np.testing.assert_allclose(np.abs(w.M), 1 / 8)


def test_orthogonal_dictionary_is_haar_not_biased():
    # Haar: the diagonal of M has mean 0; plain QR without the sign fix gives mean > 0.
    diag = np.concatenate([SparseCoding(8, 2, dictionary="orthogonal", seed=s).M.diagonal()
                           for s in range(300)])
    assert abs(diag.mean()) < 4 * diag.std() / np.sqrt(diag.size)


@pytest.mark.parametrize("codes", ["pm1", "continuous"])
def test_sparsity_labels_and_noise(codes):
    w = SparseCoding(200, 8, codes=codes, noise=0.05, seed=0)
    s = w.sample(20000, 1)
    nz = (s.Z != 0).mean() * w.d
    # Ties are resampled, which slightly raises the rate; 8 is the unconditioned rate.
    assert 7.8 < nz < 8.6
    assert set(np.unique(s.y)) == {-1.0, 1.0}
    np.testing.assert_array_equal(s.y, np.sign(s.Z @ w.w_star))
    assert abs(s.y.mean()) < 0.03  # symmetric law: balanced labels
    noise = s.X - s.Z @ w.M.T
    assert abs(np.linalg.norm(noise, axis=1).mean() - 0.05) < 0.005
    mags = np.abs(s.Z[s.Z != 0])
    if codes == "pm1":
        assert np.all(mags == 1)
    else:
        assert mags.min() >= 0.1 and mags.max() <= 1


def test_same_seed_same_bits():
    a = SparseCoding(32, 3, dictionary="orthogonal", seed=5)
    b = SparseCoding(32, 3, dictionary="orthogonal", seed=5)
    assert np.array_equal(a.M, b.M) and np.array_equal(a.w_star, b.w_star)
    sa, sb = a.sample(100, 9), b.sample(100, np.random.default_rng(9))
    assert np.array_equal(sa.X, sb.X) and np.array_equal(sa.y, sb.y)
    assert not np.array_equal(a.sample(100, 10).X, sa.X)
    assert SparseCoding.from_spec(a.spec()).spec() == a.spec()


def test_teacher_does_not_depend_on_the_dictionary():
    ws = [SparseCoding(16, 2, dictionary=dic, seed=4).w_star
          for dic in ("identity", "orthogonal", "hadamard")]
    assert np.array_equal(ws[0], ws[1]) and np.array_equal(ws[0], ws[2])


def test_tiny_world_has_no_ties():
    w = SparseCoding(1, 1, noise=0.0, seed=0)
    s = w.sample(50, 0)
    assert np.all(np.abs(s.X) == 1)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=8, k=9), "k must be"),
    (dict(d=8, k=0.5), "k must be"),
    (dict(d=0, k=1), "d must be"),
    (dict(d=8, k=2, codes="gauss"), "codes must be"),
    (dict(d=8, k=2, dictionary="random"), "dictionary must be"),
    (dict(d=12, k=2, dictionary="hadamard"), "power of two"),
    (dict(d=8, k=2, noise=-1.0), "noise must be"),
    (dict(d=8, k=2, seed=-3), "seed"),
])
def test_bad_world_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseCoding(**kwargs)


def test_bad_sample_arguments():
    w = SparseCoding(8, 2)
    with pytest.raises(ValueError, match="n must be"):
        w.sample(0, 1)
    with pytest.raises(ValueError, match="rng_or_seed"):
        w.sample(3, "x")


def test_code_kernel_matches_the_numpy_rule_at_the_edges():
    from theorylab._kernels.sampling import codes_from_uniform

    p = 5 / 128
    rng = np.random.default_rng(3)
    u = rng.random((300, 128))
    u[0, :4] = [0.0, 0.5 * p, p, np.nextafter(p, 0.0)]  # the boundaries of both comparisons
    u[1, :2] = [np.nextafter(0.5 * p, 0.0), np.nextafter(p, 1.0)]
    expected = np.where(u < p, np.where(u < 0.5 * p, -1.0, 1.0), 0.0)
    got = codes_from_uniform(u, p)
    assert got.dtype == np.float64 and np.array_equal(got, expected)
    assert got[0, :4].tolist() == [-1.0, 1.0, 0.0, 1.0]
