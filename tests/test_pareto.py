import itertools

import numpy as np

from lightnas.search.pareto import additive_epsilon, hv_improvement_2d, hypervolume, nondominated_mask


def brute_nd(F):
    n = len(F)
    return np.array([not any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(n)) for i in range(n)])


def test_nondominated_matches_brute_force():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        F = rng.integers(0, 6, size=(60, m)).astype(float)
        assert (nondominated_mask(F) == brute_nd(F)).all()


def grid_hv(F, ref, n=400):
    xs = (np.arange(n) + 0.5) / n * ref[0]
    ys = (np.arange(n) + 0.5) / n * ref[1]
    X, Y = np.meshgrid(xs, ys)
    dom = np.zeros_like(X, dtype=bool)
    for f in F:
        dom |= (X >= f[0]) & (Y >= f[1])
    return dom.mean() * ref[0] * ref[1]


def test_hypervolume_2d_against_grid_and_pymoo():
    rng = np.random.default_rng(1)
    F = rng.random((15, 2))
    ref = np.array([1.0, 1.0])
    assert abs(hypervolume(F, ref) - grid_hv(F, ref)) < 5e-3
    from pymoo.indicators.hv import HV

    assert abs(hypervolume(F, ref) - HV(ref_point=ref)(F)) < 1e-12


def test_hv_improvement_is_hv_difference():
    rng = np.random.default_rng(2)
    front = rng.random((10, 2))
    cands = rng.random((40, 2))
    ref = np.array([1.1, 1.1])
    gain = hv_improvement_2d(front, cands, ref)
    base = hypervolume(front, ref)
    for c, g in zip(cands, gain, strict=False):
        assert abs(hypervolume(np.vstack([front, c]), ref) - base - g) < 1e-12


def test_additive_epsilon_zero_iff_nondominated():
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    cands = np.array([[0.5, 0.5], [1.0, 1.0], [2.0, 2.0]])
    eps = additive_epsilon(front, cands)
    assert eps[0] == 0 and abs(eps[1] - 0) < 1e-12 and abs(eps[2] - 1.0) < 1e-12
    for c, e in zip(cands, eps, strict=False):
        shifted = c - e - 1e-9
        assert not any(np.all(f <= shifted) and np.any(f < shifted) for f in front)


def test_hypervolume_3d_exact():
    F = np.array(list(itertools.product([0.0, 0.5], repeat=3)))
    assert abs(hypervolume(F, np.ones(3)) - 1.0) < 1e-12


def test_expected_hv_improvement_matches_monte_carlo():
    from lightnas.search.pareto import expected_hv_improvement_2d, hv_improvement_2d

    rng = np.random.default_rng(0)
    front, ref = rng.random((6, 2)), np.array([1.1, 1.1])
    mu = rng.random((5, 2))
    for col in (0, 1):
        sd = np.zeros((5, 2))
        sd[:, col] = 0.1
        exact = expected_hv_improvement_2d(front, mu, sd, ref)
        draws = []
        for _ in range(20000):
            m = mu.copy()
            m[:, col] += 0.1 * rng.standard_normal(5)
            draws.append(hv_improvement_2d(front, m, ref))
        assert np.allclose(exact, np.mean(draws, axis=0), atol=1e-3, rtol=0.03)
    assert np.allclose(expected_hv_improvement_2d(front, mu, np.zeros((5, 2)), ref), hv_improvement_2d(front, mu, ref))


def test_warped_predictor_maps_back_to_the_targets_units():
    from lightnas.predictors import WarpedPredictor, create_predictor

    rng = np.random.default_rng(0)
    X = rng.random((240, 3))
    y = -np.r_[90 + X[:200, 0], 10 + 70 * X[200:, 1]]  # "minus accuracy": best near -91, a tail up to -10
    model = WarpedPredictor(create_predictor("trees")).fit(X, y)
    assert model._lmbda < 1  # the long upper tail is compressed
    grid = np.linspace(y.min(), y.max(), 50)
    assert np.allclose(model.unwarp(model.warp(grid)), grid)
    assert np.all(np.diff(model.warp(grid)) > 0)  # monotone: dominance is unchanged
    mean, std = model.predict(X)
    assert mean.shape == std.shape == (240,) and np.all(std >= 0)
    assert np.corrcoef(mean, y)[0, 1] > 0.5
    plain = WarpedPredictor(create_predictor("ridge"), identity=True).fit(X, y)
    assert np.allclose(plain.warp(y), (y - y.mean()) / y.std())


def test_pairwise_predictor_ranks_a_monotone_target():
    from scipy.stats import kendalltau

    from lightnas.predictors import create_predictor

    rng = np.random.default_rng(0)
    X = rng.random((80, 4))
    y = X @ np.array([3.0, -1.0, 0.5, 0.0]) + 0.01 * rng.standard_normal(80)
    Xt = rng.random((200, 4))
    mu, sd = create_predictor("pairwise").fit(X, y).predict(Xt)
    assert kendalltau(mu, Xt @ np.array([3.0, -1.0, 0.5, 0.0]))[0] > 0.8
    assert (sd == 0).all()
