"""Rounding in the expanded square: the fast form where it is accurate, the direct form where not.

EM evaluates ``x^T P x - 2 mu^T P x + mu^T P mu`` on data centred at their
mean (:mod:`bayesgmm.mixture.quadratic`). That is exact enough in float64 for
realistic data, and more accurate than scikit-learn's own 'diag' and
'spherical' paths when the data sit far from the origin. A component far
from the centre in units of its own spread (float32 beyond ~145 standard
deviations, float64 beyond ~3 million: a cluster collapsed onto duplicated
points) loses its covariance to rounding there; the in-memory fit is then
redone in the direct form, and streamed and online fits raise rather than
return wrong numbers. Collinear features (a covariance nearly singular along
an oblique direction) cost the expanded square its digits too, and beyond
float32's resolution of the covariance itself the fit is refused.
"""

import re
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from bayesgmm import GaussianMixture, _validation
from bayesgmm.mixture import data_pass, forms, parameters, rounding

LOST = "The fit lost its accuracy to rounding"


def _far_clusters(offset=1e4, n=300, seed=0):
    """Two tight clusters (sd 1) at -offset and +offset: the data's mean is between them."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-offset, 1.0, (n, 2)), rng.normal(offset, 1.0, (n, 2))])


def _exact_log_density(model, X):
    """log p(x) from scipy's normal densities, for 'diag' and 'spherical' fits."""
    variances = model.covariances_
    if model.covariance_type == "spherical":
        variances = np.repeat(variances[:, None], X.shape[1], axis=1)
    return logsumexp(
        [
            np.log(weight) + norm(mean, np.sqrt(variance)).logpdf(X).sum(axis=1)
            for weight, mean, variance in zip(model.weights_, model.means_, variances)
        ],
        axis=0,
    )


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_data_far_from_the_origin_keep_full_accuracy(covariance_type):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2)) + 1e6 + np.repeat([[0.0, 0.0], [5.0, 5.0]], 200, axis=0)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    # scikit-learn 1.9.1 is off by about 1e-2 here (it expands the square around 0).
    np.testing.assert_allclose(model.score_samples(X), _exact_log_density(model, X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [1e6, 1e6 + 5.0], atol=0.2)


def test_far_tight_clusters_are_recovered_in_float64():
    X = _far_clusters()
    model = GaussianMixture(2, covariance_type="spherical", random_state=0).fit(X)
    np.testing.assert_allclose(np.sort(model.means_[:, 0]), [-1e4, 1e4], atol=0.2)
    np.testing.assert_allclose(model.covariances_, 1.0, rtol=0.15)


def _sorted_covariances(model):
    if model.covariance_type == "tied":
        return model.covariances_
    return model.covariances_[np.argsort(model.means_[:, 0])]


@pytest.mark.parametrize("offset", [1e4, 300.0])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_float32_fit_far_from_the_centre_is_redone_in_the_direct_form(covariance_type, offset):
    # Clusters 300 and 1e4 standard deviations from the centre: in the
    # expanded square float32 loses the covariances (~1) to rounding
    # ('spherical' used to come back finite with variance ~13; the others
    # failed or were 6-8 % off). The fit is redone in the direct form and
    # agrees with float64 (measured: 4e-5 at 1e4, 8e-7 at 300; scikit-learn's
    # float32 fails at 1e4 for 'tied', 'diag' and 'spherical' and is 2-6 %
    # off at 300 for them).
    X = _far_clusters(offset=offset)
    single = GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32").fit(X)
    double = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    assert single.covariances_.dtype == np.float32
    np.testing.assert_allclose(_sorted_covariances(single), _sorted_covariances(double), rtol=0, atol=2e-4)
    # Predictions use the direct form too: log densities within float32's
    # resolution of x itself (x ~ 1e4 is known to 1e-3).
    np.testing.assert_allclose(single.score_samples(X), double.score_samples(X), rtol=0, atol=2e-2)


def _count_direct_runs(monkeypatch):
    calls = []
    original = data_pass.iterate

    def spy(*args, **kwargs):
        calls.append(kwargs["form"] is forms.DIRECT)
        return original(*args, **kwargs)

    monkeypatch.setattr(data_pass, "iterate", spy)
    return calls


def test_direct_form_only_when_the_expanded_square_is_inaccurate(monkeypatch):
    calls = _count_direct_runs(monkeypatch)
    GaussianMixture(2, random_state=0, dtype="float32").fit(_far_clusters(offset=30.0))
    assert calls == [False]
    GaussianMixture(2, random_state=0, dtype="float32").fit(_far_clusters(offset=300.0))
    assert calls == [False, False, True]


def test_duplicated_points_far_away_fit_like_scikit_learn():
    # A group of identical rows ~5e6 of its own standard deviations
    # (sqrt(reg_covar)) from the data's mean, in float64: scikit-learn fits
    # it exactly (it centres per component); so must bayesgmm.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(100, 2) * 1000, np.full((20, 2), 5000.0)])
    reference = SklearnGaussianMixture(2, random_state=0).fit(X)
    ours = GaussianMixture(2, random_state=0).fit(X)
    assert ours.n_iter_ == reference.n_iter_
    np.testing.assert_allclose(ours.lower_bounds_, reference.lower_bounds_, rtol=1e-12)
    collapsed = int(np.argmax(ours.weights_ < 0.5))
    np.testing.assert_allclose(ours.covariances_[collapsed], 1e-6 * np.eye(2), rtol=1e-9, atol=1e-20)
    np.testing.assert_allclose(ours.score_samples(X), reference.score_samples(X), rtol=1e-12)


def test_streamed_fit_of_far_duplicates_equals_the_in_memory_fit():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(100, 2) * 1000, np.full((20, 2), 5000.0)])
    memory = GaussianMixture(2, random_state=0).fit(X)
    streamed = GaussianMixture(2, random_state=0).fit(lambda: iter([X[:50], X[50:]]))
    assert streamed.n_iter_ == memory.n_iter_
    np.testing.assert_allclose(streamed.lower_bound_, memory.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(streamed.covariances_, memory.covariances_, rtol=1e-8)


def test_collapse_without_reg_covar_is_returned_as_scikit_learn_does():
    # scikit-learn's test_gaussian_mixture_setting_best_params: one iteration
    # from a start that collapses a spherical component (variance ~4e-16
    # with reg_covar=0) must return a model, not raise.
    X = np.random.RandomState(0).uniform(size=(30, 3))
    means_init = np.array([
        [0.670637869618158, 0.21038256107384043, 0.12892629765485303],
        [0.09394051075844147, 0.5759464955561779, 0.929296197576212],
        [0.5033230372781258, 0.9569852381759425, 0.08654043447295741],
        [0.18578301420435747, 0.5531158970919712, 0.19388943970532435],
        [0.4548589928173794, 0.35182513658825276, 0.568146063202464],
        [0.609279894978321, 0.7929063819678847, 0.9620097270828052],
    ])
    precisions_init = np.array(
        [999999.999604483, 999999.9990869573, 553.7603944542167, 204.78596008931834,
         15.867423501783637, 85.4595728389735]
    )
    weights_init = [
        0.03333333333333341, 0.03333333333333341, 0.06666666666666674, 0.06666666666666674,
        0.7000000000000001, 0.10000000000000007,
    ]
    params = dict(
        n_components=6, covariance_type="spherical", reg_covar=0, means_init=means_init,
        weights_init=weights_init, precisions_init=precisions_init, max_iter=1, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = SklearnGaussianMixture(**params).fit(X)
        ours = GaussianMixture(**params).fit(X)
    assert not ours.converged_ and ours.n_iter_ == 1
    np.testing.assert_allclose(ours.lower_bound_, reference.lower_bound_, rtol=1e-10)
    np.testing.assert_allclose(ours.means_, reference.means_, rtol=1e-10)
    assert np.min(ours.covariances_) < 1e-12


def test_float32_fits_data_with_constant_features_per_cluster():
    # load_digits: pixels a component holds constant get variance reg_covar,
    # mu^T P mu ~ 1e8; the expanded square failed in float32 ("ill-defined
    # covariance"), the direct form fits it as scikit-learn's float32 does.
    from sklearn.datasets import load_digits

    X = load_digits().data
    single = GaussianMixture(10, random_state=0, dtype="float32").fit(X)
    double = GaussianMixture(10, random_state=0).fit(X)
    np.testing.assert_allclose(single.lower_bound_, double.lower_bound_, rtol=1e-4)


def test_float32_keeps_fits_that_rounding_leaves_accurate():
    # 30 standard deviations: float32 covariances (about 1) within 2e-3 of float64 (6e-4 measured).
    X = _far_clusters(offset=30.0)
    single = GaussianMixture(2, random_state=0, dtype="float32").fit(X)
    double = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(single.covariances_, double.covariances_, rtol=0, atol=2e-3)


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_streamed_float32_fit_is_redone_in_the_direct_form_too(covariance_type):
    X = _far_clusters(offset=300.0)
    streamed = GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32")
    streamed.fit(lambda: iter([X[:400], X[400:]]))
    double = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    np.testing.assert_allclose(_sorted_covariances(streamed), _sorted_covariances(double), rtol=0, atol=2e-4)


def test_online_float32_fit_that_rounding_ruins_raises():
    X = _far_clusters(offset=300.0)
    model = GaussianMixture(2, covariance_type="spherical", random_state=0, dtype="float32")
    message = LOST + r".* Online fits \(partial_fit\) work in that fast form only"
    with pytest.raises(ValueError, match=message):
        model.partial_fit(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_check_precision_threshold_depends_on_the_dtype(covariance_type):
    # One component 1000 standard deviations from the centre: float32 loses
    # about 8 eps * 1e6 = 95 % of its covariance, float64 nothing visible.
    shapes = {"full": (2, 2, 2), "tied": (2, 2), "diag": (2, 2), "spherical": (2,)}
    factor = {"full": np.eye(2)[None].repeat(2, 0), "tied": np.eye(2)}.get(
        covariance_type, np.ones(shapes[covariance_type])
    )
    params = parameters.GMMParams(np.array([0.5, 0.5]), np.array([[0.0, 0.0], [1000.0, 0.0]]), None, factor)
    rounding.check_precision(params, covariance_type, np.float64)
    with pytest.raises(ValueError, match=LOST + ": the mean of component 1 lies 1e\\+03 standard deviations"):
        rounding.check_precision(params, covariance_type, np.float32)
    # 100 standard deviations: about 1 % in float32 (0.5 to 0.8 % measured), below the limit.
    rounding.check_precision(params._replace(means=params.means / 10), covariance_type, np.float32)


def _collinear(noise, n=400, seed=0, pair=False):
    """Two clusters in two features and a third feature collinear with them, float32.

    The third is ``x0 + 2 x1`` (``pair``: ``x0``) plus ``noise`` times a standard
    normal draw: exactly rank-deficient data at ``noise=0``.
    """
    rng = np.random.default_rng(seed)
    base = np.concatenate([rng.normal(0.0, 1.0, (n // 2, 2)), rng.normal(4.0, 1.0, (n // 2, 2))])
    combination = base[:, 0] if pair else base[:, 0] + 2.0 * base[:, 1]
    return np.column_stack([base, combination + noise * rng.normal(size=n)]).astype(np.float32)


def _float64_log_density(model, X):
    """log p(x) in float64 from the model's own weights, means and precision factors (scipy)."""
    from scipy.stats import multivariate_normal

    factors = np.asarray(model.precisions_cholesky_, np.float64)
    if model.covariance_type == "tied":
        factors = np.repeat(factors[None], len(model.weights_), axis=0)
    return logsumexp(
        [
            np.log(weight) + multivariate_normal(mean, np.linalg.inv(factor @ factor.T)).logpdf(X)
            for weight, mean, factor in zip(
                np.asarray(model.weights_, np.float64), np.asarray(model.means_, np.float64), factors
            )
        ],
        axis=0,
    )


@pytest.mark.parametrize(
    "covariance_type, noise, pair",
    [("tied", 0.0, False), ("full", 1e-10, True), ("tied", 1e-10, True)],
)
def test_float32_fit_of_collinear_features_is_refused(covariance_type, noise, pair):
    # With the default reg_covar the covariance's smallest variance (about
    # 1e-6) lies below float32's resolution of its entries (eps * 5): float32
    # cannot hold it to better than 10-40 %, nor the log-likelihood it
    # decides (these fits stopped unconverged, or with score() 0.1-0.2 per
    # sample off the model's own parameters; scikit-learn's float32 fails on
    # such data or ends up to 1 nat per sample off its float64 fit).
    X = _collinear(noise, pair=pair)
    message = re.escape(_validation.ILL_DEFINED_COVARIANCE_MESSAGE + _validation.FLOAT32_HINT)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32")
    with pytest.raises(ValueError, match=message):
        model.fit(X)


def test_the_remedies_named_by_the_refusal_work():
    # float64, or a reg_covar above float32's resolution of the covariance.
    X = _collinear(0.0)
    double = GaussianMixture(2, covariance_type="tied", random_state=0, dtype="float64").fit(X)
    wider = GaussianMixture(2, covariance_type="tied", random_state=0, dtype="float32", reg_covar=1e-3).fit(X)
    assert double.converged_ and wider.converged_
    np.testing.assert_allclose(np.sort(wider.means_, axis=0), np.sort(double.means_, axis=0), atol=1e-3)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_float32_fit_of_nearly_collinear_features_scores_its_own_parameters(covariance_type):
    # A third feature equal to x0 + 2 x1 up to noise of 1e-2: the expanded
    # square's terms (~|x|^2 / 1e-4) cancel to about 1, and in float32 its
    # log densities were up to 0.14 off (score() 0.004-0.015 per sample).
    # Such fits and their predictions now use the direct form.
    X = _collinear(1e-2)
    single = GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float32").fit(X)
    exact = _float64_log_density(single, X.astype(np.float64))
    # Measured: at most 2.6e-4 per sample, 2.4e-6 on average (scikit-learn's own: 1e-6).
    np.testing.assert_allclose(single.score_samples(X), exact, rtol=0, atol=1e-3)
    assert abs(single.score(X) - exact.mean()) < 2e-5
    # As accurate as scikit-learn's float32 fit: the same clusters, and a
    # lower bound as close to float64's (measured: ours within 7e-4,
    # scikit-learn's 1e-4 to 4e-2).
    reference = SklearnGaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    double = GaussianMixture(2, covariance_type=covariance_type, random_state=0, dtype="float64").fit(X)
    # scikit-learn's float32 'tied' fit may cycle without converging, depending on
    # the BLAS build's rounding (seen with NumPy 2.4's OpenBLAS): only ours must.
    assert single.converged_
    np.testing.assert_allclose(np.sort(single.means_, axis=0), np.sort(reference.means_, axis=0), atol=1e-3)
    ours_off = abs(single.lower_bound_ - double.lower_bound_)
    assert ours_off < 2e-3
    assert ours_off <= abs(reference.lower_bound_ - double.lower_bound_) + 1e-3


def test_online_float32_fit_of_nearly_collinear_features_raises():
    X = _collinear(1e-2)
    model = GaussianMixture(2, covariance_type="tied", random_state=0, dtype="float32")
    message = LOST + ": the covariance of component 1 is nearly singular along a direction oblique"
    with pytest.raises(ValueError, match=message):
        model.partial_fit(X)
