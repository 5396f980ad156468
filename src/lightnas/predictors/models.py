"""scikit-learn predictors with uncertainty.

Targets are in minimisation form (lower is better: the search passes
``-accuracy``); predictors that weight "the best" weight the lowest targets.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from lightnas.registry import Registry

PREDICTORS: Registry[type[Predictor]] = Registry("predictor", group="lightnas.predictors")


class Predictor:
    """``fit(X, y)`` then ``predict(X) -> (mean, std)`` (same units as ``y``)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        raise NotImplementedError

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class _Standardised(Predictor):
    """Fits on standardised targets; subclasses implement ``_fit``/``_predict``."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        y = np.asarray(y, dtype=float)
        self._mu = float(y.mean())
        self._sd = float(y.std()) or 1.0
        self._fit(np.asarray(X, dtype=float), (y - self._mu) / self._sd)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._predict(np.asarray(X, dtype=float))
        return mean * self._sd + self._mu, std * self._sd

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


@PREDICTORS.register("ridge")
class RidgePredictor(_Standardised):
    """Bayesian ridge regression: linear in the features, with posterior std."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.linear_model import BayesianRidge

        self.model = BayesianRidge().fit(X, y)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict(X, return_std=True)


@PREDICTORS.register("gp")
class GPPredictor(_Standardised):
    """Gaussian process with a linear + RBF kernel on the features (for
    one-hot features the RBF is a Hamming-distance kernel); hyperparameters by
    marginal likelihood."""

    def __init__(self, restarts: int = 0, seed: int = 0):
        self.restarts = restarts
        self.seed = seed

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, WhiteKernel

        kernel = (
            ConstantKernel(1.0, (1e-3, 1e3)) * RBF(length_scale=2.0, length_scale_bounds=(0.1, 100.0))
            + ConstantKernel(0.1, (1e-4, 1e2)) * DotProduct(sigma_0=1.0, sigma_0_bounds="fixed")
            + WhiteKernel(1e-2, (1e-6, 1.0))
        )
        self.model = GaussianProcessRegressor(
            kernel, normalize_y=False, n_restarts_optimizer=self.restarts, random_state=self.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(X, y)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict(X, return_std=True)


def top_weights(y: np.ndarray, strength: float) -> np.ndarray:
    """Sample weights ``1 + strength * q**2``, ``q`` = 1 for the lowest
    (best) target and 0 for the highest: errors among the best cost more."""
    q = 1.0 - np.argsort(np.argsort(y)) / max(len(y) - 1, 1)
    return 1.0 + strength * q**2


@PREDICTORS.register("trees")
class TreesPredictor(_Standardised):
    """Extremely randomised trees, fitted with sample weights toward the
    best targets (:func:`top_weights`, ``top_weight=0`` for none); std is the
    spread across trees."""

    def __init__(self, n_estimators: int = 30, seed: int = 0, max_features: float = 1.0, top_weight: float = 4.0):
        self.n_estimators = n_estimators
        self.seed = seed
        self.max_features = max_features
        self.top_weight = top_weight

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.ensemble import ExtraTreesRegressor

        self.model = ExtraTreesRegressor(
            self.n_estimators, min_samples_leaf=1, max_features=self.max_features, random_state=self.seed, n_jobs=1
        ).fit(X, y, sample_weight=top_weights(y, self.top_weight))

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        # the trees' own arrays directly: sklearn's per-call input validation
        # costs more than the prediction itself on small trees
        per_tree = np.stack([t.tree_.predict(X32).reshape(len(X)) for t in self.model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0)


@PREDICTORS.register("mlp")
class MLPPredictor(_Standardised):
    """A small ensemble of MLPs (different seeds); std across members."""

    def __init__(self, members: int = 3, seed: int = 0):
        self.members = members
        self.seed = seed

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.neural_network import MLPRegressor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.models = [
                MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=500, random_state=self.seed + i).fit(
                    X, y
                )
                for i in range(self.members)
            ]

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = np.stack([m.predict(X) for m in self.models])
        return preds.mean(axis=0), preds.std(axis=0)


@PREDICTORS.register("svr")
class SVRPredictor(_Standardised):
    """RBF support vector regression (LINAS's accuracy predictor); no std."""

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.svm import SVR

        self.model = SVR(kernel="rbf", C=10.0, epsilon=0.05).fit(X, y)

    def _predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.predict(X), np.zeros(len(X))


@PREDICTORS.register("pairwise")
class PairwisePredictor(Predictor):
    """A pairwise ranking model (RankNet-style, linear): logistic regression
    on feature differences of every ordered pair of training points, each
    pair weighted by how far apart its two points are in
    ``2 ** (4 * q)`` (``q`` as in :func:`top_weights`), so that orderings
    among the best matter most. Scores map back to target units by isotonic
    regression on the training points; std is zero."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        self._mu, self._sd = X.mean(0), X.std(0) + 1e-12
        Z = (X - self._mu) / self._sd
        gain = 2.0 ** (4.0 * (1.0 - np.argsort(np.argsort(y)) / max(len(y) - 1, 1)))
        i, j = np.nonzero(y[:, None] < y[None, :])  # i better than j
        if len(i) == 0:
            self._w = np.zeros(X.shape[1])
        else:
            w = np.abs(gain[i] - gain[j])
            D = np.vstack([Z[i] - Z[j], Z[j] - Z[i]])
            labels = np.r_[np.ones(len(i)), np.zeros(len(i))]
            model = LogisticRegression(fit_intercept=False, max_iter=500)
            self._w = model.fit(D, labels, sample_weight=np.r_[w, w] / w.mean()).coef_[0]
        self._iso = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(Z @ self._w, y)
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        score = ((np.asarray(X, dtype=float) - self._mu) / self._sd) @ self._w
        return self._iso.predict(score), np.zeros(len(score))


@PREDICTORS.register("ensemble")
class EnsemblePredictor(Predictor):
    """Average of a linear model (extrapolates additive effects) and tree
    ensembles (capture interactions); std combines each member's own std with
    their disagreement."""

    def __init__(self, members: tuple[str, ...] = ("ridge", "trees"), seed: int = 0):
        self.members = members
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        self.models = [create_predictor(m, self.seed).fit(X, y) for m in self.members]
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        preds = [m.predict(X) for m in self.models]
        means = np.stack([p[0] for p in preds])
        var = np.stack([p[1] ** 2 for p in preds]).mean(axis=0) + means.var(axis=0)
        return means.mean(axis=0), np.sqrt(var)


class WarpedPredictor(Predictor):
    """Any predictor fitted on a monotone warping of its targets (HEBO's
    output warping), predictions mapped back to the targets' units.

    The warp standardises the targets, then applies the Yeo-Johnson power
    transformation whose exponent makes them most Gaussian (maximum
    likelihood). Accuracies pile up near the best with a long tail of
    failures; unwarped, that tail dominates a least-squares fit and every
    predicted std (a NAS-Bench-201 fit predicts its best cells 6 points low
    with a 5-point std). ``predict`` returns the median (the warped mean mapped
    back) and half the width of the warped ``mean +- std`` interval mapped
    back, so the std widens where the warp compresses (the tail) and narrows
    among the best.
    """

    def __init__(self, inner: Predictor, identity: bool = False):
        self.inner = inner
        self.identity = identity  # standardise only

    def fit(self, X: np.ndarray, y: np.ndarray) -> Predictor:
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from scipy.stats import yeojohnson

        y = np.asarray(y, dtype=float)
        self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
        self._lmbda = 1.0  # identity
        if not self.identity and len(y) >= 3 and np.ptp(y) > 0:
            with np.errstate(all="ignore"):
                lmbda = float(yeojohnson((y - self._mu) / self._sd)[1])
            self._lmbda = lmbda if np.isfinite(lmbda) else 1.0
        self.inner.fit(X, self.warp(y))
        return self

    def warp(self, y: np.ndarray) -> np.ndarray:
        """Targets in warped units (monotone increasing)."""
        # scikit-learn and SciPy take 1.4 s to import: paid by the predictor that is fitted
        from scipy.stats import yeojohnson

        return yeojohnson((np.asarray(y, dtype=float) - self._mu) / self._sd, self._lmbda)

    def unwarp(self, w: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`warp`, clipped where ``w`` leaves the warp's range."""
        w, lm = np.asarray(w, dtype=float), self._lmbda
        pos = np.maximum(w, 0.0)
        neg = np.minimum(w, 0.0)
        with np.errstate(all="ignore"):
            if abs(lm) < 1e-12:
                up = np.expm1(pos)
            else:
                up = np.power(np.maximum(1.0 + lm * pos, 1e-12), 1.0 / lm) - 1.0
            if abs(lm - 2.0) < 1e-12:
                down = -np.expm1(-neg)
            else:
                down = 1.0 - np.power(np.maximum(1.0 - (2.0 - lm) * neg, 1e-12), 1.0 / (2.0 - lm))
        x = np.where(w >= 0, up, down)
        return x * self._sd + self._mu

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.inner.predict(X)
        lo, mid, hi = self.unwarp(mean - std), self.unwarp(mean), self.unwarp(mean + std)
        return mid, np.maximum(hi - lo, 0.0) / 2.0


def create_predictor(name: str, seed: int = 0) -> Predictor:
    """Build a registered predictor by name; ``seed`` seeds the randomised
    ones (trees, MLPs, the GP's optimiser restarts), the others ignore it."""
    cls = PREDICTORS.get(name)
    return cls(seed=seed) if "seed" in inspect.signature(cls).parameters else cls()
