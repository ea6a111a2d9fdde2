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


def _run_data():
    """The data of the ``run`` fixture."""
    X, _, _ = make_mixture(
        300, [0.3, 0.3, 0.4], [[0.0, 0.0], [7.0, 0.0], [0.0, 7.0]], [1.0, 0.7, 1.3],
        "spherical", random_state=0,
    )
    return X


def test_relabel_draws_of_chains_sampled_by_hand(run):
    """The raw sites of three chains in three labellings, as mcmc.get_samples(group_by_chain=True) gives them."""
    from bayesgmm.bayes import relabel_draws

    posterior, _, covariance_type = run
    X = _run_data()
    raw = {name: np.asarray(value) for name, value in posterior.trace.samples.items()}
    assert _max_rhat_min_ess({"means": raw["means"]})[0] > 1.5
    relabelled, permutations = relabel_draws(raw, X, covariance_type=covariance_type)
    assert _max_rhat_min_ess({"means": relabelled["means"]})[0] < 1.05
    assert _max_rhat_min_ess({"weights": relabelled["weights"]})[0] < 1.05
    assert permutations.shape == (3, 300, 3)
    for name in ("weights", "means", "scales", "corr_cholesky"):
        np.testing.assert_array_equal(
            relabelled[name], np.take_along_axis(
                raw[name], permutations.reshape(permutations.shape + (1,) * (raw[name].ndim - 3)),
                axis=2))
    # Draws without the chain axis (mcmc.get_samples()) get the same permutations.
    flat = {name: value.reshape((-1,) + value.shape[2:]) for name, value in raw.items()}
    np.testing.assert_array_equal(relabel_draws(flat, X).permutations,
                                  permutations.reshape(-1, 3))


def test_relabel_draws_takes_a_dict_of_sites():
    from bayesgmm.bayes import relabel_draws

    with pytest.raises(TypeError, match="samples must be a dict of site name -> array"):
        relabel_draws([1.0], np.zeros((5, 2)))


@pytest.mark.parametrize("samples, X, kwargs, message", [
    ({"weights": np.ones((4, 2)) / 2}, np.zeros((5, 2)), {},
     "samples must hold the sites 'weights' and 'means' of gmm_model"),
    ({"weights": np.ones((4, 2)) / 2, "means": np.zeros((4, 2, 2))}, np.zeros((5, 2)), {},
     "samples has no site 'scales'"),
    ({"weights": np.ones((4, 2)) / 2, "means": np.zeros((4, 2, 2)), "scales": np.ones((4, 2))},
     np.zeros((5, 2)), {"covariance_type": "diag"},
     r"samples\['scales'\] has shape \(4, 2\), expected \(4, 2, 2\)"),
    ({"weights": np.ones((4, 2)) / 2, "means": np.zeros((4, 2, 2)), "scales": np.ones((4, 2))},
     np.zeros((5, 3)), {"covariance_type": "spherical"},
     "X has 3 features, but the draws' means have 2"),
    ({"weight_sticks": np.zeros((4, 1)), "weights": np.ones((4, 2)) / 2}, np.zeros((5, 2)), {},
     "samples come from gmm_model with n_active"),
    ({"weights": np.ones((4, 2)) / 2, "means": np.zeros((4, 2, 2))}, np.zeros((5, 2)),
     {"covariance_type": "round"}, "Invalid value for 'covariance_type': 'round'"),
])
def test_relabel_draws_refuses_what_is_not_gmm_model_draws(samples, X, kwargs, message):
    from bayesgmm.bayes import relabel_draws

    with pytest.raises(ValueError, match=message):
        relabel_draws(samples, X, **kwargs)
