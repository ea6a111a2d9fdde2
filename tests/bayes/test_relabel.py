"""Label switching is real, and relabelling fixes it.

Three well-separated clusters; three chains start from the EM fit with their
component labels permuted differently, so each chain samples a different
(but equivalent) labelling. The raw draws must then disagree across chains
(r_hat far above 1.01) and the relabelled ones agree. This is the CI-sized
check (3 x 300 draws, bound r_hat <= 1.03, bulk ESS >= 300); the full-size one
(r_hat <= 1.01, ESS >= 400) is ``validation/label_switching.py``.
"""

import warnings

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bayesgmm.mixture.parameters import precision_scope

from bayesgmm.bayes import chain_start, nuts, relabel
from bayesgmm.bayes.model import default_prior
from bayesgmm.datasets import make_mixture

PERMUTATIONS = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]])


def _max_rhat_min_ess(samples):
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        idata = az.from_dict(posterior={name: np.asarray(v) for name, v in samples.items()})
        rhat, ess = az.rhat(idata), az.ess(idata, method="bulk")

    def finite(dataset, reduce):
        values = np.concatenate([np.ravel(dataset[name]) for name in dataset.data_vars])
        return float(reduce(values[np.isfinite(values)]))

    return finite(rhat, np.max), finite(ess, np.min), {
        name: float(np.nanmax(rhat[name])) for name in rhat.data_vars
    }


@pytest.fixture(scope="module")
def run():
    X, _, _ = make_mixture(
        300, [0.3, 0.3, 0.4], [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]], [1.0, 0.7, 1.3],
        "spherical", random_state=0,
    )
    covariance_type = "full"
    with precision_scope("float64"):
        em_fit = chain_start.fit_em(X, None, n_components=3, covariance_type=covariance_type,
                                  random_state=0, dtype="float64")
        start = chain_start.permute_chain_start(
            chain_start.em_chain_start(em_fit.params, len(X), covariance_type=covariance_type,
                                     num_chains=3),
            PERMUTATIONS, covariance_type,
        )
        prior = default_prior(X)
        model_kwargs = dict(X=jnp.asarray(X), mean_prior_loc=prior.mean_loc,
                            mean_prior_scale=prior.mean_scale,
                            scale_prior_median=prior.scale_median)
        settings = nuts.NUTSSettings(num_warmup=200, num_samples=300, num_chains=3,
                                          chain_method="sequential")
        X_relabel, weight = relabel.relabel_points(X, None)
        posterior = nuts.sample_posterior(
            jax.random.key(0), start, model_kwargs, X_relabel, em_fit.params, n_components=3,
            covariance_type=covariance_type, settings=settings,
        )
    return posterior, weight, covariance_type


def test_raw_chains_disagree(run):
    posterior, _, _ = run
    max_rhat, _, per_site = _max_rhat_min_ess(posterior.trace.samples)
    assert max_rhat > 1.5
    assert per_site["means"] > 1.5 and per_site["weights"] > 1.5


def test_relabelled_chains_agree(run):
    posterior, weight, covariance_type = run
    samples, params, perms = relabel.relabel_run(posterior, weight, covariance_type)
    max_rhat, min_ess, _ = _max_rhat_min_ess(samples)
    assert max_rhat <= 1.03
    assert min_ess >= 300
    # Each chain needed (and got) the inverse of the permutation it started with.
    for chain, permutation in enumerate(PERMUTATIONS):
        most_common = np.unique(perms[chain], axis=0, return_counts=True)
        assert np.array_equal(most_common[0][np.argmax(most_common[1])],
                              np.argsort(permutation))
    # Every component-indexed site moved together: params agree with the sites.
    np.testing.assert_allclose(params.means.reshape(samples["means"].shape), samples["means"])
    np.testing.assert_allclose(params.weights.reshape(samples["weights"].shape),
                               samples["weights"])


def test_stephens_recovers_known_permutations():
    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(4), size=30)
    perms = np.array([rng.permutation(4) for _ in range(50)])
    noisy = reference[None] * np.exp(0.05 * rng.normal(size=(50, 30, 4)))
    noisy /= noisy.sum(axis=-1, keepdims=True)
    # Draw s shows the reference's component perms[s, j] in its column j.
    shuffled = np.log(np.take_along_axis(noisy, perms[:, None, :], axis=2))
    found, final_reference = relabel.stephens_permutations(shuffled, reference)
    np.testing.assert_array_equal(found, np.argsort(perms, axis=1))
    np.testing.assert_allclose(final_reference, noisy.mean(axis=0), atol=1e-12)


def test_tied_covariance_is_not_permuted():
    samples = {"weights": np.array([[0.2, 0.8]]), "means": np.array([[[0.0], [5.0]]]),
               "scales": np.array([[1.5]])}
    permuted = relabel.permute_components(samples, np.array([[1, 0]]), "tied")
    np.testing.assert_array_equal(permuted["weights"], [[0.8, 0.2]])
    np.testing.assert_array_equal(permuted["means"], [[[5.0], [0.0]]])
    np.testing.assert_array_equal(permuted["scales"], samples["scales"])
