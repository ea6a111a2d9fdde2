"""The covariance-structure table (bayesgmm.structures) against closed forms, NumPy and scikit-learn."""

import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import gaussian, structures
from bayesgmm.mixture import parameters

NAMES = ["full", "tied", "diag", "spherical"]
N_COMPONENTS, N_FEATURES = 3, 4


def _random_covariances(rng, name, n_components=N_COMPONENTS, n_features=N_FEATURES):
    """Positive definite covariances of ``name``'s parameter shape."""
    factors = rng.normal(size=(n_components, n_features, n_features))
    full = factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(n_features)
    variances = np.diagonal(full, axis1=1, axis2=2).copy()
    return {"full": full, "tied": full[0], "diag": variances, "spherical": variances.mean(axis=1)}[name]


def test_table_is_read_only_and_in_a_fixed_order():
    assert isinstance(structures.STRUCTURES, types.MappingProxyType)
    assert list(structures.STRUCTURES_SKLEARN) == NAMES
    # mclust's other ten follow, each an entry of one of the four representations.
    assert list(structures.STRUCTURES) == NAMES + [
        name for name in structures.MCLUST_NAMES if name not in structures.ALIASES]
    assert all(entry.name == name for name, entry in structures.STRUCTURES.items())
    with pytest.raises(TypeError):
        structures.STRUCTURES["other"] = structures.STRUCTURES["full"]


@pytest.mark.parametrize("name", NAMES)
def test_get_returns_the_entry_and_passes_entries_through(name):
    entry = structures.get(name)
    assert entry is structures.STRUCTURES[name]
    assert structures.get(entry) is entry


@pytest.mark.parametrize("bad", ["Full", "", "vvv", "VVX", None, 3, ["full"]])
def test_get_of_an_unknown_name_names_the_choices(bad):
    with pytest.raises(ValueError, match="must be one of 'full', 'tied', 'diag', 'spherical'"):
        structures.get(bad)


@pytest.mark.parametrize("bad", ["Full", ["full"]])
def test_module_functions_reject_unknown_names(bad):
    # Before the table, an unknown name silently took the 'spherical' branch.
    with pytest.raises(ValueError, match="covariance_type"):
        gaussian.precisions_cholesky_from_covariances(jnp.ones(3), bad)


@pytest.mark.parametrize("name", structures.NAMES)
def test_representation_holds_everything_a_prediction_uses(name):
    # Predictions are compiled for the representation (one program for all
    # of mclust's 'full' models), so they must use nothing else of the entry.
    entry = structures.get(name)
    representation = structures.representation(name)
    assert representation in structures.STRUCTURES_SKLEARN
    assert structures.representation(entry) == representation
    base = structures.get(representation)
    for field in ("parameter_shape", "features", "feature_count", "coefficients", "log_det_cholesky",
                  "squared_mahalanobis", "mean_distances", "precisions_cholesky_from_covariances",
                  "narrow_features", "component_axis"):
        assert getattr(entry, field) is getattr(base, field), field


def test_representation_of_unknown_names_names_the_choices():
    with pytest.raises(ValueError, match="Invalid value for 'covariance_type': 'VVX'"):
        structures.representation("VVX")


def test_flags():
    assert [structures.get(name).component_axis for name in NAMES] == [True, False, True, True]
    assert [structures.get(name).narrow_features for name in NAMES] == [False, False, True, True]


def test_an_entry_is_a_static_argument():
    # Hashable, so that a jitted function can take the entry itself as static.
    entry = structures.get("diag")
    hash(entry)
    f = jax.jit(lambda X, structure: structure.features(X), static_argnames="structure")
    assert f(jnp.ones((2, 3)), structure=entry).shape == (2, 7)


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name):
    entry = structures.get(name)
    K, D = N_COMPONENTS, N_FEATURES
    expected = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[name]
    assert entry.parameter_shape(K, D) == expected
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, D))
    means = rng.normal(size=(K, D))
    with parameters.precision_scope(np.float64):
        covariances = jnp.asarray(_random_covariances(rng, name))
        precisions_cholesky = entry.precisions_cholesky_from_covariances(covariances)
        assert precisions_cholesky.shape == expected
        assert entry.precisions_from_cholesky(precisions_cholesky).shape == expected
        assert entry.covariances_from_precisions_cholesky(precisions_cholesky).shape == expected
        assert entry.precisions_cholesky_from_precisions(covariances).shape == expected
        log_det = entry.log_det_cholesky(precisions_cholesky, D)
        assert log_det.shape == ((K,) if entry.component_axis else ())
        assert entry.squared_mahalanobis(jnp.asarray(X), jnp.asarray(means), precisions_cholesky).shape == (7, K)
        n_quadratic = {"full": D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": D, "spherical": 1}[name]
        assert entry.feature_count(D) == 1 + D + n_quadratic
        Phi = entry.features(jnp.asarray(X))
        assert Phi.shape == (7, entry.feature_count(D))
        weights = jnp.full(K, 1.0 / K)
        assert entry.coefficients(weights, jnp.asarray(means), precisions_cholesky).shape == (Phi.shape[1], K)
        assert entry.mean_distances(jnp.asarray(means), precisions_cholesky).shape == (K,)
        weight_sum, first, second = entry.moments(jnp.ones((K, Phi.shape[1])), D)
        expected_second = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K, D)}[name]
        assert (weight_sum.shape, first.shape, second.shape) == ((K,), (K, D), expected_second)
    component = entry.component_covariance(np.asarray(covariances), 1)
    assert component.shape == (expected[1:] if entry.component_axis else expected)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_components, n_features", [(1, 1), (1, 5), (3, 2), (4, 7)])
def test_n_parameters_closed_forms(name, n_components, n_features):
    K, D = n_components, n_features
    covariance = {"full": K * D * (D + 1) // 2, "tied": D * (D + 1) // 2, "diag": K * D, "spherical": K}[name]
    expected = covariance + K * D + K - 1
    assert structures.n_parameters(name, K, D) == expected
    assert structures.n_parameters(structures.get(name), K, D) == expected
    assert gaussian.n_parameters(name, K, D) == expected
    assert structures.get(name).n_covariance_parameters(K, D) == covariance


def _free_entries(array, n_features):
    """Free entries of a fitted attribute: symmetric (D, D) matrices count their upper triangle.

    Needs n_components != n_features, where 'diag' variances (K, D) would look like one matrix.
    """
    array = np.asarray(array)
    if array.ndim >= 2 and array.shape[-2:] == (n_features, n_features):
        np.testing.assert_allclose(array, np.swapaxes(array, -1, -2))
        return array.size // (n_features * n_features) * (n_features * (n_features + 1) // 2)
    return array.size


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_components, n_features", [(3, 4), (2, 1), (4, 2)])
def test_n_parameters_counts_the_free_entries_of_scikit_learns_fit(name, n_components, n_features):
    X, _ = make_blobs(n_samples=300, centers=n_components, n_features=n_features, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = SklearnGaussianMixture(n_components, covariance_type=name, random_state=0).fit(X)
    # The weights sum to one: one fewer free entry than there are weights.
    counted = (
        fitted.weights_.size - 1
        + fitted.means_.size
        + _free_entries(fitted.covariances_, X.shape[1])
    )
    assert structures.n_parameters(name, n_components, n_features) == counted


def _reference_covariances(name, X, resp, reg_covar):
    """The M-step's covariances from responsibilities, about the new means (NumPy)."""
    nk = resp.sum(axis=0) + 10 * np.finfo(X.dtype).eps
    means = resp.T @ X / nk[:, None]
    difference = X[None, :, :] - means[:, None, :]  # (K, N, D)
    scatter = np.einsum("nk,kni,knj->kij", resp, difference, difference)
    if name == "full":
        return scatter / nk[:, None, None] + reg_covar * np.eye(X.shape[1])
    if name == "tied":
        return scatter.sum(axis=0) / nk.sum() + reg_covar * np.eye(X.shape[1])
    variances = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar
    return variances if name == "diag" else variances.mean(axis=1)


def _m_step_covariances(entry, X, resp, reg_covar):
    """The entry's M-step from the raw moments of its own features, as the EM core computes them."""
    with parameters.precision_scope(np.float64):
        sums = jnp.asarray(resp).T @ entry.features(jnp.asarray(X))
        weight_sum, first, second = entry.moments(sums, X.shape[1])
        nk = weight_sum + 10 * jnp.finfo(sums.dtype).eps
        means = first / nk[:, None]
        return np.asarray(entry.m_step_covariances(nk, means, second, reg_covar))


@pytest.mark.parametrize("name", NAMES)
def test_m_step_covariances_from_responsibilities(name):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, N_FEATURES)) + 1.0
    resp = rng.dirichlet(np.ones(N_COMPONENTS), size=60)
    entry = structures.get(name)
    actual = _m_step_covariances(entry, X, resp, 1e-6)
    assert actual.shape == entry.parameter_shape(N_COMPONENTS, N_FEATURES)
    np.testing.assert_allclose(actual, _reference_covariances(name, X, resp, 1e-6), rtol=1e-10, atol=1e-13)
    if not entry.narrow_features:
        # Symmetrised exactly, not just to rounding.
        np.testing.assert_array_equal(actual, np.swapaxes(actual, -1, -2))


@pytest.mark.parametrize("name", NAMES)
def test_m_step_covariances_of_padded_components(name):
    # Components padded up to a bucket carry no responsibility: they get the
    # identity, and the active ones (for 'tied', the pooled one) are those of
    # the unpadded mixture.
    rng = np.random.default_rng(9)
    n_active, n_padded = N_COMPONENTS, N_COMPONENTS + 2
    X = rng.normal(size=(60, N_FEATURES)) + 1.0
    resp = np.zeros((60, n_padded))
    resp[:, :n_active] = rng.dirichlet(np.ones(n_active), size=60)
    entry = structures.get(name)
    with parameters.precision_scope(np.float64):
        active = jnp.asarray(np.arange(n_padded) < n_active)
        sums = jnp.asarray(resp).T @ entry.features(jnp.asarray(X))
        weight_sum, first, second = entry.moments(sums, X.shape[1])
        nk = weight_sum + 10 * jnp.finfo(sums.dtype).eps
        means = first / jnp.where(active, nk, 1.0)[:, None]
        actual = np.asarray(entry.m_step_covariances(nk, means, second, 1e-6, active=active))
    assert actual.shape == entry.parameter_shape(n_padded, N_FEATURES)
    expected = _reference_covariances(name, X, resp[:, :n_active], 1e-6)
    if not entry.component_axis:
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-13)
        return
    np.testing.assert_allclose(actual[:n_active], expected, rtol=1e-10, atol=1e-13)
    padding, _ = entry.inactive_parameters(n_padded - n_active, N_FEATURES, np.float64)
    np.testing.assert_array_equal(actual[n_active:], padding)


def _component_densities(name, X, weights, means, precisions):
    """``pi_k N(x | mu_k, inv(precision_k))`` with SciPy, shape (n_samples, K)."""
    K, D = means.shape
    covariances = {
        "full": lambda k: np.linalg.inv(precisions[k]),
        "tied": lambda k: np.linalg.inv(precisions),
        "diag": lambda k: np.diag(1.0 / precisions[k]),
        "spherical": lambda k: np.eye(D) / precisions[k],
    }[name]
    return np.stack([weights[k] * multivariate_normal(means[k], covariances(k)).pdf(X) for k in range(K)], axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_m_step_covariances_match_one_scikit_learn_iteration(name):
    # max_iter=1 from given parameters: one E-step (the responsibilities,
    # recomputed here with SciPy) and one M-step, whose covariances_ is the
    # reference.
    X, _ = make_blobs(n_samples=200, centers=3, n_features=3, cluster_std=1.5, random_state=4)
    K, D = 3, X.shape[1]
    rng = np.random.default_rng(3)
    weights = np.array([0.5, 0.3, 0.2])
    means = X[rng.choice(len(X), K, replace=False)]
    precisions = {
        "full": np.stack([np.eye(D) * (0.5 + k) for k in range(K)]),
        "tied": np.eye(D) * 0.7,
        "diag": rng.uniform(0.3, 1.5, size=(K, D)),
        "spherical": rng.uniform(0.3, 1.5, size=K),
    }[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SklearnGaussianMixture(
            K, covariance_type=name, max_iter=1, reg_covar=1e-6,
            weights_init=weights, means_init=means, precisions_init=precisions,
        ).fit(X)
    densities = _component_densities(name, X, weights, means, precisions)
    resp = densities / densities.sum(axis=1, keepdims=True)
    actual = _m_step_covariances(structures.get(name), X, resp, 1e-6)
    np.testing.assert_allclose(actual, reference.covariances_, rtol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_centred_second_is_the_packed_second_moment(name):
    rng = np.random.default_rng(5)
    B, K, D = 9, N_COMPONENTS, N_FEATURES
    scaled = rng.normal(size=(B, K, D))
    difference = rng.normal(size=(B, K, D))
    entry = structures.get(name)
    with parameters.precision_scope(np.float64):
        actual = np.asarray(entry.centred_second(jnp.asarray(scaled), jnp.asarray(difference)))
    products = np.einsum("bki,bkj->kij", scaled, difference)
    if name in ("full", "tied"):
        rows, columns = np.triu_indices(D)
        expected = products[:, rows, columns]
    elif name == "diag":
        expected = np.diagonal(products, axis1=1, axis2=2)
    else:
        expected = np.trace(products, axis1=1, axis2=2)[:, None]
    assert actual.shape == (K, entry.feature_count(D) - 1 - D)
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_inactive_parameters_are_positive_definite_identities(name, dtype):
    entry = structures.get(name)
    covariances, precisions_cholesky = entry.inactive_parameters(N_COMPONENTS, N_FEATURES, dtype)
    if not entry.component_axis:
        assert covariances is None and precisions_cholesky is None
        return
    shape = entry.parameter_shape(N_COMPONENTS, N_FEATURES)
    for array in (covariances, precisions_cholesky):
        assert isinstance(array, np.ndarray) and array.shape == shape and array.dtype == dtype
    dense = entry.full_matrices(covariances, N_COMPONENTS, N_FEATURES)
    np.testing.assert_array_equal(dense, np.broadcast_to(np.eye(N_FEATURES), dense.shape))
    assert np.all(np.linalg.eigvalsh(dense) > 0)
    with parameters.precision_scope(dtype):
        factors = entry.precisions_cholesky_from_covariances(jnp.asarray(covariances))
    np.testing.assert_array_equal(np.asarray(factors), precisions_cholesky)
    # Separate arrays: writing one (a padded fit's parameters) leaves the other.
    assert not np.shares_memory(covariances, precisions_cholesky)


@pytest.mark.parametrize("name", NAMES)
def test_sample_draws_scikit_learns_samples(name):
    X, _ = make_blobs(n_samples=300, centers=3, n_features=3, random_state=1)
    fitted = SklearnGaussianMixture(3, covariance_type=name, random_state=7).fit(X)
    expected, expected_labels = fitted.sample(250)
    entry = structures.get(name)
    rng = np.random.RandomState(7)
    counts = rng.multinomial(250, fitted.weights_)
    draws = [
        entry.sample(rng, fitted.means_[k], entry.component_covariance(fitted.covariances_, k), count)
        for k, count in enumerate(counts)
    ]
    for draw, count in zip(draws, counts):
        assert draw.shape == (count, X.shape[1])
    np.testing.assert_array_equal(np.vstack(draws), expected)
    np.testing.assert_array_equal(np.repeat(np.arange(3), counts), expected_labels)


@pytest.mark.parametrize("name", NAMES)
def test_component_covariance_and_full_matrices(name):
    rng = np.random.default_rng(6)
    entry = structures.get(name)
    covariances = _random_covariances(rng, name)
    dense = entry.full_matrices(covariances, N_COMPONENTS, N_FEATURES)
    assert dense.shape == (N_COMPONENTS, N_FEATURES, N_FEATURES)
    assert not np.shares_memory(dense, covariances)
    for k in range(N_COMPONENTS):
        component = np.asarray(entry.component_covariance(covariances, k))
        as_matrix = {
            "full": lambda: component,
            "tied": lambda: component,
            "diag": lambda: np.diag(component),
            "spherical": lambda: component * np.eye(N_FEATURES),
        }[name]
        np.testing.assert_array_equal(dense[k], as_matrix())


@pytest.mark.parametrize("name", NAMES)
def test_entries_are_what_the_module_functions_compute(name):
    # gaussian.py and quadratic.py are lookups into the table: same arrays, bit for bit.
    from bayesgmm.mixture import quadratic

    rng = np.random.default_rng(8)
    entry = structures.get(name)
    with parameters.precision_scope(np.float64):
        X = jnp.asarray(rng.normal(size=(11, N_FEATURES)))
        means = jnp.asarray(rng.normal(size=(N_COMPONENTS, N_FEATURES)))
        weights = jnp.asarray(rng.dirichlet(np.ones(N_COMPONENTS)))
        precisions_cholesky = entry.precisions_cholesky_from_covariances(jnp.asarray(_random_covariances(rng, name)))
        pairs = [
            (gaussian.squared_mahalanobis(X, means, precisions_cholesky, name),
             entry.squared_mahalanobis(X, means, precisions_cholesky)),
            (quadratic.coefficients(weights, means, precisions_cholesky, name),
             entry.coefficients(weights, means, precisions_cholesky)),
            (quadratic.features(X, name), entry.features(X)),
        ]
    for module_result, entry_result in pairs:
        np.testing.assert_array_equal(module_result, entry_result)


def test_docstring_examples():
    import doctest

    result = doctest.testmod(structures, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted >= 2


# -- The Bayesian fields -------------------------------------------------------


def _expected_sites(name, n_features):
    """(site name, kind, dims) of each entry, in the order the model samples them."""
    K, D, D2 = "component", "feature", "feature_bis"
    sites = {
        "full": [("scales", "feature_scales", (K, D)), ("corr_cholesky", "lkj_cholesky", (K, D, D2))],
        "tied": [("scales", "feature_scales", (D,)), ("corr_cholesky", "lkj_cholesky", (D, D2))],
        "diag": [("scales", "feature_scales", (K, D))],
        "spherical": [("scales", "common_scale", (K,))],
    }[name]
    # One feature: no correlation to sample.
    return [site for site in sites if n_features > 1 or site[1] != "lkj_cholesky"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_features", [1, N_FEATURES])
def test_covariance_sites(name, n_features):
    entry = structures.get(name)
    sites = entry.covariance_sites(n_features)
    assert [tuple(site) for site in sites] == _expected_sites(name, n_features)
    K, D = N_COMPONENTS, n_features
    shapes = {
        "full": {"scales": (K, D), "corr_cholesky": (K, D, D)},
        "tied": {"scales": (D,), "corr_cholesky": (D, D)},
        "diag": {"scales": (K, D)},
        "spherical": {"scales": (K,)},
    }[name]
    for site in sites:
        assert isinstance(site, structures.Site) and site.kind in structures.SITE_KINDS
        assert site.component_axis == entry.component_axis
        assert site.shape(K, D) == shapes[site.name]
        assert site.event_dims == site.dims[site.component_axis:]
    hash(sites)  # plain tuples of strings: the entry stays a static argument


@pytest.mark.parametrize("name", NAMES)
def test_covariance_dims_name_the_parameter_shape(name):
    entry = structures.get(name)
    sizes = {"component": N_COMPONENTS, "feature": N_FEATURES, "feature_bis": N_FEATURES}
    shape = tuple(sizes[dim] for dim in entry.covariance_dims)
    assert shape == entry.parameter_shape(N_COMPONENTS, N_FEATURES)
    assert (entry.covariance_dims[0] == "component") == entry.component_axis


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_features", [1, N_FEATURES])
def test_sites_give_back_their_covariances_and_precision_factors(name, n_features):
    rng = np.random.default_rng(10)
    entry = structures.get(name)
    K, D = N_COMPONENTS, n_features
    # Two draws stacked: the maps keep leading batch axes.
    covariances = np.stack([_random_covariances(rng, name, K, D) for _ in range(2)])
    sites = [entry.sites_from_covariances(draw, 0.0) for draw in covariances]
    names = [site.name for site in entry.covariance_sites(D)]
    for values in sites:
        assert list(values) == names
        for site in entry.covariance_sites(D):
            assert values[site.name].shape == site.shape(K, D)
    stacked = {name_: np.stack([values[name_] for values in sites]) for name_ in names}
    with parameters.precision_scope(np.float64):
        as_jax = {name_: jnp.asarray(value) for name_, value in stacked.items()}
        # Sites the structure does not have are ignored.
        back = np.asarray(entry.covariances_from_sites({**as_jax, "means": None}))
        factors = np.asarray(entry.precisions_cholesky_from_sites(as_jax))
        expected_factors = np.stack([
            np.asarray(entry.precisions_cholesky_from_covariances(jnp.asarray(draw))) for draw in covariances
        ])
    assert back.shape == factors.shape == (2,) + entry.parameter_shape(K, D)
    np.testing.assert_allclose(back, covariances, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(factors, expected_factors, rtol=1e-9, atol=1e-12)
    if not entry.narrow_features:
        np.testing.assert_array_equal(np.tril(factors, -1), 0.0)  # scikit-learn's upper factors


@pytest.mark.parametrize("name", ["full", "tied"])
def test_sites_from_covariances_shrink_the_correlation(name):
    # Points on a line: a correlation of one, whose Cholesky factor would be singular.
    covariances = _random_covariances(np.random.default_rng(11), name, n_features=2)
    line = np.array([[1.0, 2.0], [2.0, 4.0]])
    covariances = np.broadcast_to(line, covariances.shape).copy()
    corr_cholesky = structures.get(name).sites_from_covariances(covariances, 1e-6)["corr_cholesky"]
    assert np.all(np.isfinite(corr_cholesky))
    np.testing.assert_allclose(corr_cholesky[..., 1, 1], np.sqrt(1.0 - (1.0 - 1e-6) ** 2))


@pytest.mark.parametrize("name", NAMES)
def test_feature_variances_are_the_diagonals(name):
    entry = structures.get(name)
    covariances = _random_covariances(np.random.default_rng(12), name)
    dense = entry.full_matrices(covariances, N_COMPONENTS, N_FEATURES)
    diagonals = np.diagonal(dense, axis1=1, axis2=2)
    variances = entry.feature_variances(covariances, N_FEATURES)
    np.testing.assert_array_equal(variances, diagonals if entry.component_axis else diagonals[:1])


@pytest.mark.parametrize("name", NAMES)
def test_correlated_noise_has_the_components_covariance(name):
    # Noise e_1..e_D of points of component k maps to the columns of a factor A_k
    # with A_k A_k^T = Sigma_k, on the device (from P) and on the host (from Sigma).
    rng = np.random.default_rng(13)
    entry = structures.get(name)
    K, D = N_COMPONENTS, N_FEATURES
    covariances = _random_covariances(rng, name)
    dense = entry.full_matrices(covariances, K, D)
    noise = np.eye(D)
    with parameters.precision_scope(np.float64):
        precisions_cholesky = entry.precisions_cholesky_from_covariances(jnp.asarray(covariances))
        for k in range(K):
            labels = np.full(D, k)
            device = np.asarray(entry.correlate_noise(jnp.asarray(noise), jnp.asarray(labels), precisions_cholesky))
            per_point = np.broadcast_to(covariances, (D,) + covariances.shape)
            host = entry.correlate_noise_host(noise, labels, per_point)
            for columns in (device.T, host.T):
                np.testing.assert_allclose(columns @ columns.T, dense[k], rtol=1e-10, atol=1e-12)
        # Any leading axes of points.
        batched = entry.correlate_noise(jnp.ones((2, 5, D)), jnp.zeros((2, 5), int), precisions_cholesky)
        assert batched.shape == (2, 5, D)


@pytest.mark.parametrize("name", NAMES)
def test_positive_definite(name):
    entry = structures.get(name)
    covariances = _random_covariances(np.random.default_rng(14), name)
    assert entry.positive_definite(covariances) is True
    assert entry.positive_definite(-covariances) is False
    requirement = {"full": "symmetric positive definite matrices", "tied": "symmetric positive definite matrices",
                   "diag": "strictly positive variances", "spherical": "strictly positive variances"}[name]
    assert entry.covariance_requirement == requirement
    if not entry.narrow_features:
        assert entry.positive_definite(np.triu(covariances)) is False  # not symmetric


@pytest.mark.parametrize("name", NAMES)
def test_random_covariances_draw_in_a_fixed_order(name):
    entry = structures.get(name)

    def draw(seed):
        rng = np.random.default_rng(seed)

        def rotated(eigenvalues):
            rotation, _ = np.linalg.qr(rng.standard_normal((N_FEATURES, N_FEATURES)))
            return (rotation * eigenvalues) @ rotation.T

        return entry.random_covariances(lambda *shape: rng.uniform(0.25, 1.0, size=shape), rotated,
                                        N_COMPONENTS, N_FEATURES)

    covariances = draw(0)
    assert covariances.shape == entry.parameter_shape(N_COMPONENTS, N_FEATURES)
    assert entry.positive_definite(covariances)
    eigenvalues = np.linalg.eigvalsh(entry.full_matrices(covariances, N_COMPONENTS, N_FEATURES))
    assert np.all((eigenvalues > 0.25 - 1e-12) & (eigenvalues < 1.0 + 1e-12))
    np.testing.assert_array_equal(draw(0), covariances)


def test_work_per_component():
    assert [structures.get(name).work_per_component(5) for name in NAMES] == [25, 5, 5, 5]


def test_bayesian_fields_do_not_import_numpyro():
    # The EM half imports this module; its Bayesian fields are plain descriptions.
    import subprocess
    import sys

    code = (
        "import sys; from bayesgmm import structures\n"
        "for entry in structures.STRUCTURES.values(): entry.covariance_sites(3)\n"
        "assert not any(m.split('.')[0] in ('numpyro', 'arviz') for m in sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
