"""``GaussianMixture``: a scikit-learn estimator over the pure EM core.

This is the only place that holds fitted state for the maximum-likelihood
half. It never imports NumPyro or ArviZ. Its methods delegate the work:
the fits to :mod:`bayesgmm.mixture.fitting`, the predictions and
imputation to :mod:`bayesgmm.mixture.prediction`.
"""

from __future__ import annotations

import os
import warnings
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils import check_random_state

from bayesgmm import _validation as v
from bayesgmm import gaussian, structures
from bayesgmm.mixture import fitting, parameters, prediction


class GaussianMixture(DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood with a JAX-jitted EM.

    A drop-in for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, defaults, fitted attributes and methods, and, for the same
    ``random_state``, the same initialisation and the same fit. In addition
    every method that looks at data accepts ``sample_weight`` and the
    precision is chosen with ``dtype``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        'full': each component has its own covariance matrix; 'tied': all
        share one; 'diag': each has a diagonal covariance; 'spherical': each
        has a single variance. mclust's names of the same structures,
        'VVV', 'EEE', 'VVI' and 'VII', give the same fits and attributes;
        its ten others (Celeux and Govaert's ``lambda_k D_k A_k D_k^T``
        with Equal or Variable volume, shape and orientation, or I the
        identity: 'EII', 'EEI', 'VEI', 'EVI', 'VEE', 'EVE', 'VVE', 'EEV',
        'VEV', 'EVV') are stored like 'spherical' (EII), 'diag' (xxI) or
        'full' (the others).
    tol : float, default=1e-3
        Convergence threshold on the change of the mean log-likelihood.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance so it stays positive
        definite.
    max_iter : int, default=100
        Number of EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best is kept. Restarts run batched on
        the device.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', 'hierarchical'}, default='kmeans'
        How the initial responsibilities are drawn (as in scikit-learn), or
        'hierarchical': mclust's model-based hierarchical agglomeration
        (VVV, on mclust's SVD-transformed variables, on a random subset of
        2,000 rows for larger data) cut at ``n_components`` clusters, the
        start R's ``mclustBIC`` uses; deterministic, so restarts repeat it
        (:func:`bayesgmm.mixture.initialisation.hierarchical_start`).
    weights_init : array-like of shape (n_components,), default=None
    means_init : array-like of shape (n_components, n_features), default=None
    precisions_init : array-like, default=None
        Shape (n_components, n_features, n_features) for 'full',
        (n_features, n_features) for 'tied', (n_components, n_features) for
        'diag', (n_components,) for 'spherical'.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation and :meth:`sample`.
    warm_start : bool, default=False
        Start each ``fit`` from the previous solution (``n_init`` is then 1).
    verbose : int, default=0
        1 prints each initialisation, 2 also every ``verbose_interval``
        iterations (with time and change of the bound).
    verbose_interval : int, default=10
    dtype : {None, 'float64', 'float32'}, default=None
        The precision of the fit, its attributes and predictions. None
        follows the data, as scikit-learn does: float32 for float32 arrays,
        float64 for everything else; a value forces that precision.
        float64 is computed in JAX's x64 mode inside a scoped context; the
        global JAX setting is never changed. float32 is about twice as fast.
        The EM core works with raw moments of the centred data, which lose
        about ``eps * (distance / sigma)^2`` in the log densities, where
        ``distance`` is a component's distance from the data's mean and
        ``sigma`` its smallest standard deviation. Where that would cost a
        covariance more than 2 % (float32: a ratio above about 145; float64:
        about 3 million, e.g. a component collapsed onto duplicated rows far
        from the rest) the fit is redone in the direct form, per component
        as scikit-learn computes it, and predictions use that form too; so
        are fits of (nearly) collinear features. A fit whose covariances
        float32 cannot hold (rounding would move a smallest variance by more
        than 10 %) is refused with the fix named: dtype='float64' or a larger
        reg_covar.
    devices : None, int, 'all', list of jax.Device or jax.sharding.Mesh, default=None
        Shard the samples over several devices with JAX's own sharding: each
        device runs the E-step on its rows and only the K*D^2 statistics
        are summed across devices. None uses the default device, or the mesh
        of ``X`` when ``fit`` is given a sharded ``jax.Array``. After
        ``jax.distributed.initialize``, 'all' spans every process and each
        process passes its own rows to ``fit`` (see
        ``examples/multi_process_fit.py``).
    prior : None, 'default', ConjugatePrior or dict, default=None
        mclust's conjugate prior (``priorControl()``; Fraley and Raftery
        2007): the fit is then MAP-EM, whose M-step shrinks the means
        towards the prior mean and adds the prior's scale to every scatter.
        'default' is mclust's ``defaultPrior`` (shrinkage 0.01, the data's
        mean, ``n_features + 2`` degrees of freedom, a scale from the data's
        covariance and ``n_components``); a :class:`bayesgmm.ConjugatePrior`
        or a dict of its fields sets some of them. Every structure but VEE,
        EVE, VVE and EVV, which mclust has no prior for (refused). As in
        mclust, ``lower_bound_``, :meth:`score`, :meth:`bic`, :meth:`aic` and
        :meth:`icl` use the log-likelihood at the MAP estimate, not the
        penalised one, and the weights have no prior. Sample weights count
        as observations after scaling to a largest weight of 1. Not for
        chunked data, ``partial_fit`` or several processes: fit in memory.
    missing : {'raise', 'marginalize'}, default='raise'
        What NaN entries of ``X`` mean. 'raise' refuses them. 'marginalize'
        treats them as values missing at random: EM uses each row's marginal
        density on its observed coordinates and the conditional expectations
        of the missing ones (:mod:`bayesgmm.mixture.incomplete`); ``predict``,
        ``predict_proba``, ``score_samples`` and ``score`` use the marginal
        too (also for a model fitted on complete data), and :meth:`impute`
        fills them in. A row with every value missing is refused unless its
        ``sample_weight`` is 0 (it is then left out); a column with no
        observed value is refused. Complete data take the usual path, with
        the same result as 'raise'. Fits with missing values run on one
        device (not with ``devices``); chunked (out-of-core) data take them
        too, with the in-memory result.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray, shape per ``covariance_type``
    precisions_ : ndarray, shape per ``covariance_type``
    precisions_cholesky_ : ndarray, shape per ``covariance_type``
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        Mean (weighted) log-likelihood of the training data at the last E-step.
    lower_bounds_ : ndarray of shape (min(`n_iter_`, 10000),)
        The lower bound at every iteration of the best initialisation (the
        last 10,000 of longer fits, so that memory does not grow with
        ``max_iter``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        The column names of ``X`` when it was a DataFrame with string
        column names; absent otherwise. Predictions then check them.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> np.round(np.sort(gm.means_[:, 0]), 6)
    array([ 1., 10.])
    >>> len(set(gm.predict([[0, 0], [12, 3]])))
    2
    """

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        dtype=None,
        devices=None,
        prior=None,
        missing="raise",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.dtype = dtype
        self.devices = devices
        self.prior = prior
        self.missing = missing

    # ------------------------------------------------------------------ fit

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Self:
        """Estimate the parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A NumPy array, or a ``jax.Array`` sharded over its first axis
            (``NamedSharding(mesh, PartitionSpec('data'))``).

            Data larger than memory are read chunk by chunk, one pass per EM
            iteration, with the same result as in memory: a ``numpy.memmap``,
            a zarr or dask array (any 2-D float array with ``shape``,
            ``dtype``, row slicing and a ``chunks`` attribute), or a callable
            returning, on every call, a new iterable over the same chunks,
            each of shape (n_rows, n_features) or an ``(X_chunk,
            weight_chunk)`` tuple. The initialisation then runs on a uniform
            sample of at most 100,000 rows. See
            :func:`bayesgmm.mixture.streaming.fit_streaming` for chunk and sample
            sizes.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : GaussianMixture
        """
        result = fitting.fit(self, X, sample_weight)
        self._set_result(result)
        if not result.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different "
                "init parameters, or increase max_iter, tol, or check for "
                "degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def fit_predict(self, X: ArrayLike, y: object = None,
                    sample_weight: ArrayLike | None = None) -> np.ndarray:
        """Fit, then return the labels of ``X`` (consistent with ``predict``).

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def partial_fit(self, X: ArrayLike, y: object = None,
                    sample_weight: ArrayLike | None = None) -> Self:
        """Update the model with one batch by stepwise online EM.

        For streams seen once (Cappé & Moulines 2009): the model keeps
        running sufficient statistics per unit weight ``s``; each batch runs
        the E-step under the current parameters, then ``s <- (1 - gamma_t) s
        + gamma_t * s_batch / batch_weight`` and the parameters are the
        M-step of ``s``. The step size is ``gamma_t = (t + 2) ** -0.6`` for
        the t-th batch after the first (whose statistics are taken whole);
        see :func:`bayesgmm.mixture.online.step_size`. The first call initialises
        from its batch with ``init_params`` (or the user-given initial
        values); a call after ``fit`` continues from the fitted parameters.
        ``n_init`` and ``max_iter`` are not used.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch (the first needs at least ``n_components`` samples).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : GaussianMixture
            ``n_iter_`` counts the batches, ``lower_bound_`` is the running
            mean log-likelihood (stepwise average of the batches' values)
            and ``converged_`` says whether it changed by less than ``tol``.
        """
        result, self._online_state_ = fitting.partial_fit(self, X, sample_weight)
        self._set_result(result)
        return self

    def _set_result(self, result: parameters.EMResult) -> None:
        params = result.params
        self.weights_ = params.weights
        self.means_ = params.means
        self.covariances_ = params.covariances
        self.precisions_cholesky_ = params.precisions_cholesky
        # On the host: a JAX op here would compile once per number of components.
        self.precisions_ = np.asarray(
            gaussian.precisions_from_cholesky(
                np.asarray(params.precisions_cholesky), self._structure_name()
            ),
            dtype=params.means.dtype,
        )
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = result.lower_bound
        self.lower_bounds_ = result.lower_bounds
        self.n_features_in_ = params.means.shape[1]

    def _structure_name(self) -> str:
        """The name of the structure's table entry ('full' for 'VVV'): what the engine is given."""
        return structures.get(self.covariance_type).name

    def _params(self) -> parameters.GMMParams:
        return parameters.GMMParams(
            self.weights_, self.means_, self.covariances_, self.precisions_cholesky_
        )

    # ----------------------------------------------------------- prediction

    def _check_fitted(self) -> None:
        if not hasattr(self, "means_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "means_")

    def _predict_blocks(self, X, output: str, n_padded: int | None = None):
        """Validate ``X`` and run one prediction on the device, chunk by chunk (:func:`prediction.predict`)."""
        return prediction.predict(self, X, output, n_padded)

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log of the weighted sum of the component densities, per sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return self._predict_blocks(X, "log_prob_norm")

    def score(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> float:
        """(Weighted) mean log-likelihood of ``X``.

        Returns
        -------
        log_likelihood : float
        """
        from bayesgmm.metrics import mean_log_predictive_density

        return mean_log_predictive_density(self, X, sample_weight)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Posterior probability of each component for each sample.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
        """
        return self._predict_blocks(X, "proba")

    def predict(self, X: ArrayLike) -> np.ndarray:
        """The most probable component of each sample.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._predict_blocks(X, "labels").astype(np.intp, copy=False)

    def impute(self, X: ArrayLike, n_draws: int | None = None,
               random_state: int | np.random.RandomState | None = None) -> np.ndarray:
        """Fill in the missing (NaN) entries of ``X`` from the fitted mixture.

        Each missing entry becomes its conditional mean given the row's
        observed values, ``sum_k p(k | x_o) E[x_m | x_o, k]``; with
        ``n_draws``, each of ``n_draws`` completed copies draws the component
        from ``p(k | x_o)`` and the missing values from their conditional
        Gaussian (multiple imputation). Observed entries are kept as given.
        Needs ``missing='marginalize'`` only to fit incomplete data: any
        fitted model imputes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        n_draws : int, optional
        random_state : int, RandomState instance or None, default=None
            Seeds the draws.

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features), or (n_draws, n_samples, n_features)

        Examples
        --------
        >>> import numpy as np
        >>> from bayesgmm import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=500)
        >>> model = GaussianMixture(1, missing="marginalize").fit(X)
        >>> filled = model.impute([[1.0, np.nan]])
        >>> bool(0.7 < filled[0, 1] < 1.1)
        True
        """
        return prediction.impute(self, X, n_draws, random_state)

    # --------------------------------------------------------- model choice

    def _n_parameters(self) -> int:
        return gaussian.n_parameters(self._structure_name(), self.n_components, self.n_features_in_)

    def _total_log_likelihood(self, X, sample_weight):
        log_prob = self.score_samples(X)
        weights = v.check_sample_weight(sample_weight, log_prob.shape[0], log_prob.dtype)
        return float(np.sum(weights * log_prob)), float(np.sum(weights))

    def bic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Bayesian information criterion; lower is better.

        With ``sample_weight`` the log-likelihood is weighted and the sample
        size is the sum of the weights.

        Returns
        -------
        bic : float
        """
        log_likelihood, n_effective = self._total_log_likelihood(X, sample_weight)
        return -2.0 * log_likelihood + self._n_parameters() * np.log(n_effective)

    def aic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Akaike information criterion; lower is better.

        Returns
        -------
        aic : float
        """
        log_likelihood, _ = self._total_log_likelihood(X, sample_weight)
        return -2.0 * log_likelihood + 2.0 * self._n_parameters()

    def icl(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Integrated completed likelihood (Biernacki, Celeux and Govaert 2000); lower is better.

        BIC plus twice the entropy of the hard classification,
        ``bic(X) - 2 * sum_i w_i log max_k p(k | x_i)``: mclust's ``icl`` in
        scikit-learn's sign (mclust reports ``-icl``). It penalises
        components that overlap, so it prefers fewer, well-separated
        clusters than BIC does.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        icl : float
        """
        resp = self.predict_proba(X)
        weights = v.check_sample_weight(sample_weight, resp.shape[0], resp.dtype)
        # The largest responsibility is at least 1 / n_components: its log is finite.
        entropy = -float(np.sum(weights * np.log(np.max(resp, axis=1))))
        return self.bic(X, sample_weight) + 2.0 * entropy

    # ---------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted model to ``path`` (.npz with JSON metadata, no pickle).

        Load it back with :func:`bayesgmm.load`.
        """
        from bayesgmm._archive_npz import write_em

        write_em(self, path)

    # ------------------------------------------------------------- sampling

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw samples from the fitted mixture (the same draws as scikit-learn).

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component labels.
        """
        self._check_fitted()
        n_samples = v.check_int("n_samples", n_samples, 1)
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_.astype(np.float64))
        structure = structures.get(self.covariance_type)
        draws = [
            structure.sample(rng, mean, structure.component_covariance(self.covariances_, k), int(count))
            for k, (mean, count) in enumerate(zip(self.means_, counts))
        ]
        labels = np.repeat(np.arange(self.n_components), counts)
        return np.vstack(draws).astype(self.means_.dtype), labels
