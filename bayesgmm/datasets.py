"""Data sets: the document's example, mixtures with known truth, the "two rows".

Three kinds of data live here:

* :func:`document_data` reproduces the source document's two-blob example and
  its train/test split exactly.
* :func:`make_mixture` and :func:`random_mixture` sample from a Gaussian
  mixture whose parameters are returned alongside the data, for recovery tests.
* :func:`two_rows` builds the document's "two rows of data sets": a first row
  without gaps between the classes, where a GMM does poorly, and a second row
  of clusters separated by gaps, where it does well.

Covariances follow scikit-learn's shape convention for each
``covariance_type``: 'full' (n_components, n_features, n_features), 'tied'
(n_features, n_features), 'diag' (n_components, n_features) and 'spherical'
(n_components,).
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.datasets import make_blobs, make_circles, make_moons
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from bayesgmm import structures
from bayesgmm._validation import COVARIANCE_TYPES, check_choice, check_int

__all__ = [
    "MixtureParams",
    "NamedDataset",
    "document_data",
    "make_mixture",
    "random_mixture",
    "two_rows",
    "full_covariances",
]

# Tolerance on sum(weights) == 1; loose enough for weights typed by hand.
WEIGHTS_SUM_ATOL = 1e-6


class MixtureParams(NamedTuple):
    """The true parameters of a Gaussian mixture.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
        Mixing proportions, non-negative and summing to one.
    means : ndarray of shape (n_components, n_features)
        Component means.
    covariances : ndarray
        Component covariances, of shape (n_components, n_features, n_features)
        for 'full', (n_features, n_features) for 'tied', (n_components,
        n_features) for 'diag' and (n_components,) for 'spherical'.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        How ``covariances`` is parametrised.
    """

    weights: np.ndarray  # (n_components,)
    means: np.ndarray  # (n_components, n_features)
    covariances: np.ndarray  # shape set by covariance_type, as in scikit-learn
    covariance_type: str

    @property
    def n_components(self) -> int:
        """The number of mixture components."""
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        """The dimension of the data."""
        return self.means.shape[1]

    def full_covariances(self) -> np.ndarray:
        """The covariances as full matrices, shape (n_components, n_features, n_features)."""
        return full_covariances(
            self.covariances, self.covariance_type, self.n_components, self.n_features
        )


class NamedDataset(NamedTuple):
    """A labelled toy data set of :func:`two_rows`.

    Attributes
    ----------
    name : str
        A short description, e.g. ``"separated blobs"``.
    X : ndarray of shape (n_samples, 2)
        The points.
    y : ndarray of shape (n_samples,)
        The class of each point, integers ``0 .. n_classes - 1``.
    has_gaps : bool
        Whether empty space separates the classes (second row of the document).
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    has_gaps: bool


def full_covariances(
    covariances: ArrayLike, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """Expand covariances of any ``covariance_type`` to full matrices.

    Parameters
    ----------
    covariances : array-like
        Covariances in scikit-learn's shape for ``covariance_type`` (see the
        module docstring).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
        How ``covariances`` is parametrised.
    n_components : int
        The number of components.
    n_features : int
        The dimension of the data.

    Returns
    -------
    covariances : ndarray of shape (n_components, n_features, n_features)
        A new array.
    """
    return structures.get(covariance_type).full_matrices(
        np.asarray(covariances, dtype=float), n_components, n_features
    )


def document_data(
    n_samples: int = 800,
    centers: int = 2,
    n_features: int = 2,
    random_state: int = 12,
    test_size: float = 0.2,
    split_random_state: int = 21,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The source document's data: two blobs split into a train and a test set.

    The defaults reproduce the document exactly::

        X, y = make_blobs(n_samples=800, centers=2, n_features=2, random_state=12)
        XA, XB, yA, yB = train_test_split(X, y, test_size=0.2, random_state=21)

    Parameters
    ----------
    n_samples, centers, n_features, random_state
        Passed to :func:`sklearn.datasets.make_blobs`.
    test_size : float, default=0.2
        Fraction of the points held out in ``XB``.
    split_random_state : int, default=21
        ``random_state`` of :func:`sklearn.model_selection.train_test_split`.

    Returns
    -------
    XA : ndarray of shape (n_train, n_features)
        Training points (640 with the defaults).
    XB : ndarray of shape (n_test, n_features)
        Test points (160 with the defaults).
    yA : ndarray of shape (n_train,)
        Blob index of each training point.
    yB : ndarray of shape (n_test,)
        Blob index of each test point.
    """
    X, y = make_blobs(
        n_samples=n_samples, centers=centers, n_features=n_features, random_state=random_state
    )
    XA, XB, yA, yB = train_test_split(X, y, test_size=test_size, random_state=split_random_state)
    return XA, XB, yA, yB


def _generator(random_state):
    """A NumPy Generator (or the caller's RandomState) from ``random_state``."""
    if isinstance(random_state, np.random.RandomState):
        return random_state
    if random_state is None or isinstance(random_state, (numbers.Integral, np.random.Generator)):
        return np.random.default_rng(random_state)
    raise ValueError(
        f"random_state must be None, an int, a numpy Generator or a RandomState; "
        f"got {random_state!r}."
    )


def _as_finite_array(value, name: str) -> np.ndarray:
    try:
        array = np.array(value, dtype=float, copy=True)
    except (TypeError, ValueError):
        raise ValueError(f"{name} could not be converted to a float array.") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return array


def _check_mixture_params(weights, means, covariances, covariance_type) -> MixtureParams:
    """Validate a mixture's parameters and return them as fresh float arrays."""
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    weights = _as_finite_array(weights, "weights")
    means = _as_finite_array(means, "means")
    covariances = _as_finite_array(covariances, "covariances")
    if weights.ndim != 1 or weights.size == 0:
        raise ValueError(
            f"weights must be a non-empty 1-D array of shape (n_components,), got shape "
            f"{weights.shape}."
        )
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > WEIGHTS_SUM_ATOL:
        raise ValueError(
            "weights must lie on the simplex (non-negative, summing to 1); got min "
            f"{weights.min():g} and sum {weights.sum():.8g}. Divide by the sum."
        )
    n_components = weights.shape[0]
    if means.ndim != 2 or means.shape[0] != n_components or means.shape[1] == 0:
        raise ValueError(
            f"means must have shape (n_components, n_features) = ({n_components}, "
            f"n_features) to match weights, got shape {means.shape}."
        )
    structure = structures.get(covariance_type)
    expected = structure.parameter_shape(n_components, means.shape[1])
    if covariances.shape != expected:
        raise ValueError(
            f"covariances for covariance_type={covariance_type!r} must have shape "
            f"{expected}, got {covariances.shape}."
        )
    if not structure.positive_definite(covariances):
        raise ValueError(
            f"{covariance_type!r} covariances must be {structure.covariance_requirement}."
        )
    return MixtureParams(weights, means, covariances, covariance_type)


def make_mixture(
    n_samples: int,
    weights: ArrayLike,
    means: ArrayLike,
    covariances: ArrayLike,
    covariance_type: str = "full",
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray, MixtureParams]:
    """Sample points from a Gaussian mixture with the given parameters.

    The size of each component is drawn from a multinomial distribution with
    probabilities ``weights``, then each point is drawn from its component.

    Parameters
    ----------
    n_samples : int
        The total number of points.
    weights : array-like of shape (n_components,)
        Mixing proportions, non-negative and summing to one.
    means : array-like of shape (n_components, n_features)
        Component means.
    covariances : array-like
        Component covariances in scikit-learn's shape for ``covariance_type``:
        'full' (n_components, n_features, n_features), 'tied' (n_features,
        n_features), 'diag' (n_components, n_features), 'spherical'
        (n_components,). Matrices must be symmetric positive definite.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        How ``covariances`` is parametrised.
    random_state : None, int, numpy.random.Generator or RandomState
        Seed or generator; the same seed gives the same data.
    shuffle : bool, default=True
        Shuffle the points; otherwise they are ordered by component.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The points.
    y : ndarray of shape (n_samples,)
        The component of each point, integers ``0 .. n_components - 1``.
    params : MixtureParams
        The true parameters (validated copies of the inputs).

    Raises
    ------
    ValueError
        If the weights are not on the simplex, the shapes do not agree or a
        covariance is not symmetric positive definite.

    Examples
    --------
    >>> X, y, truth = make_mixture(
    ...     500, [0.3, 0.7], [[0, 0], [5, 5]], [1.0, 2.0], "spherical", random_state=0
    ... )
    >>> X.shape, y.shape, truth.n_components
    ((500, 2), (500,), 2)
    """
    n_samples = check_int("n_samples", n_samples, 1)
    params = _check_mixture_params(weights, means, covariances, covariance_type)
    rng = _generator(random_state)
    n_features = params.n_features
    component_sizes = rng.multinomial(n_samples, params.weights)
    y = np.repeat(np.arange(params.n_components), component_sizes)
    # One Cholesky factor per component turns standard normals into each component.
    cholesky_factors = np.linalg.cholesky(params.full_covariances())
    standard_normal = rng.standard_normal(size=(n_samples, n_features))
    X = params.means[y] + np.einsum("nij,nj->ni", cholesky_factors[y], standard_normal)
    if shuffle:
        order = rng.permutation(n_samples)
        X, y = X[order], y[order]
    return X, y, params


def _random_covariances(rng, covariance_type: str, n_components: int, n_features: int):
    """Random covariances whose eigenvalues lie in [0.25, 1] (standard deviations <= 1)."""
    def variances(*shape):
        return rng.uniform(0.25, 1.0, size=shape)

    def rotated(eigenvalues):
        rotation, _ = np.linalg.qr(rng.standard_normal((n_features, n_features)))
        return (rotation * eigenvalues) @ rotation.T

    return structures.get(covariance_type).random_covariances(
        variances, rotated, n_components, n_features
    )


def _separated_means(rng, n_components: int, n_features: int, separation: float):
    """Means drawn uniformly in a cube, each at least ``separation`` from the others."""
    half_width = separation * max(1.0, n_components ** (1.0 / n_features))
    means = []
    while len(means) < n_components:
        for _ in range(1000):
            candidate = rng.uniform(-half_width, half_width, size=n_features)
            if all(np.linalg.norm(candidate - mean) >= separation for mean in means):
                means.append(candidate)
                break
        else:
            half_width *= 1.5  # the cube is too crowded: give the means more room
    return np.array(means)


def random_mixture(
    n_samples: int,
    n_components: int,
    n_features: int,
    covariance_type: str = "full",
    separation: float = 6.0,
    random_state: int | np.random.Generator | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, MixtureParams]:
    """Sample from a random, well-separated Gaussian mixture, for recovery tests.

    Every component's standard deviation is at most 1 in any direction
    (covariance eigenvalues in [0.25, 1]), any two means are at least
    ``separation`` apart, and every weight is at least ``0.5 / n_components``,
    so EM started sensibly should recover the truth.

    Parameters
    ----------
    n_samples : int
        The total number of points.
    n_components : int
        The number of components.
    n_features : int
        The dimension of the data.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        The parametrisation of the returned covariances.
    separation : float, default=6.0
        The minimal distance between two means, in units of the largest
        component standard deviation.
    random_state : None, int, numpy.random.Generator or RandomState
        Seed or generator for the parameters and the data.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        The points.
    y : ndarray of shape (n_samples,)
        The component of each point.
    params : MixtureParams
        The true parameters.
    """
    n_samples = check_int("n_samples", n_samples, 1)
    n_components = check_int("n_components", n_components, 1)
    n_features = check_int("n_features", n_features, 1)
    check_choice("covariance_type", covariance_type, COVARIANCE_TYPES)
    if not (isinstance(separation, numbers.Real) and np.isfinite(separation) and separation > 0):
        raise ValueError(f"separation must be a finite number > 0, got {separation!r}.")
    rng = _generator(random_state)
    # Half uniform, half Dirichlet: random weights, none below 0.5 / n_components.
    weights = 0.5 / n_components + 0.5 * rng.dirichlet(np.full(n_components, 5.0))
    weights /= weights.sum()
    means = _separated_means(rng, n_components, n_features, float(separation))
    covariances = _random_covariances(rng, covariance_type, n_components, n_features)
    return make_mixture(n_samples, weights, means, covariances, covariance_type, random_state=rng)


def _blobs(n_samples, centers, cluster_std, random_state):
    X, y = make_blobs(
        n_samples=n_samples, centers=np.asarray(centers, dtype=float),
        cluster_std=cluster_std, random_state=random_state,
    )
    return X, y


def two_rows(n_samples: int = 500,
             random_state: int | np.random.RandomState | None = 0) -> list[NamedDataset]:
    """The document's "two rows of data sets", all two-dimensional.

    Row 1 (``has_gaps=False``): classes that touch, so a GMM does poorly.

    * ``"uniform strip split by a line"``: a uniform 2 x 1 rectangle whose
      classes are its lower and upper halves; the likelihood prefers to cut the
      long side, so the clusters cross the classes.
    * ``"overlapping blobs"``: two Gaussian blobs 1.5 standard deviations apart.
    * ``"noisy moons"``: :func:`sklearn.datasets.make_moons` with so much
      noise that the moons merge.
    * ``"noisy circles"``: :func:`sklearn.datasets.make_circles`, one ring
      inside the other and no gap between them.

    Row 2 (``has_gaps=True``): clusters with empty space between them, where
    a GMM does well.

    * ``"separated blobs"``: three round blobs.
    * ``"anisotropic blobs"``: three elongated, rotated blobs side by side.
    * ``"unequal sizes"``: three blobs holding 70 %, 20 % and 10 % of the points.
    * ``"unequal variances"``: three blobs of different spreads.

    Parameters
    ----------
    n_samples : int, default=500
        Points per data set.
    random_state : None, int or RandomState, default=0
        Seed for all eight data sets.

    Returns
    -------
    datasets : list of NamedDataset
        Row 1 then row 2, each ``NamedDataset(name, X, y, has_gaps)`` with ``X``
        of shape (n_samples, 2) and ``y`` of shape (n_samples,).
    """
    n_samples = check_int("n_samples", n_samples, 10)
    rng = check_random_state(random_state)

    strip = rng.uniform(size=(n_samples, 2)) * np.array([2.0, 1.0])
    strip_classes = (strip[:, 1] > 0.5).astype(int)
    moons = make_moons(n_samples=n_samples, noise=0.35, random_state=rng)
    circles = make_circles(n_samples=n_samples, noise=0.15, factor=0.5, random_state=rng)
    overlapping = _blobs(n_samples, [[0.0, 0.0], [1.5, 0.0]], 1.0, rng)

    triangle = [[-5.0, -3.0], [0.0, 5.0], [5.0, -3.0]]
    separated = _blobs(n_samples, triangle, 1.0, rng)
    # Blobs stretched along one direction and stacked along the other, then rotated.
    stacked_X, stacked_y = _blobs(n_samples, [[0.0, -6.0], [0.0, 0.0], [0.0, 6.0]], 1.0, rng)
    angle = np.pi / 6
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    anisotropic = (stacked_X * np.array([1.5, 0.5]) @ rotation, stacked_y)
    sizes = np.round(np.array([0.7, 0.2, 0.1]) * n_samples).astype(int)
    sizes[0] += n_samples - sizes.sum()
    unequal_sizes = _blobs(sizes, triangle, 1.0, rng)
    unequal_variances = _blobs(
        n_samples, [[-6.0, -2.0], [0.0, 6.0], [6.0, -2.0]], [1.8, 0.5, 1.0], rng
    )

    without_gaps = {
        "uniform strip split by a line": (strip, strip_classes),
        "overlapping blobs": overlapping,
        "noisy moons": moons,
        "noisy circles": circles,
    }
    with_gaps = {
        "separated blobs": separated,
        "anisotropic blobs": anisotropic,
        "unequal sizes": unequal_sizes,
        "unequal variances": unequal_variances,
    }
    return [
        NamedDataset(name, np.asarray(X, dtype=float), np.asarray(y, dtype=int), has_gaps)
        for has_gaps, row in ((False, without_gaps), (True, with_gaps))
        for name, (X, y) in row.items()
    ]
