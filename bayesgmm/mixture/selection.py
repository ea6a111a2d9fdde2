"""``GaussianMixtureIC``: the number of components and the covariance structure chosen by BIC, ICL or AIC.

Every covariance structure of the grid is one batched sweep of the engine
(:func:`bayesgmm.mixture.driver.fit_sweep`: every number of components and
every restart in one compiled run), so a grid costs at most one compiled
program per structure. Each candidate is checked for degeneracy
(:func:`degeneracy`): a fit whose likelihood comes from a covariance that
collapsed (onto tied or collinear values, to the ``reg_covar`` floor) or
from a component with too few points for its covariance is reported in
``results_`` and never chosen, as mclust reports such cells as missing.
"""

from __future__ import annotations

import warnings
from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from bayesgmm import _validation as v
from bayesgmm import structures
from bayesgmm.mixture import driver, fitting, incomplete, parameters
from bayesgmm.mixture.estimator import GaussianMixture
from bayesgmm.mixture.prior import check_prior
from bayesgmm.mixture.settings import check_settings

CRITERIA = ("bic", "icl", "aic")

# Criteria this close (relative) are equal: candidates that are one model
# (with one component, VVV, EEE, VEV...) differ by rounding only.
CRITERION_TIE = 1e-10

# An eigenvalue of a covariance, less reg_covar, below this many epsilons of
# the dtype times the scale its scatter was computed at: the covariance
# collapsed onto a subspace (tied or collinear values), where only reg_covar
# and rounding keep it positive definite, so its likelihood grows as
# reg_covar shrinks. Rounding leaves a collapsed direction a few hundred
# epsilons of that scale; features of very different scales (a ratio of
# standard deviations of 1e6) stay above it. The scale is the largest of the
# component's own largest variance, the data's (the mixture's total
# covariance) and the squared distance of its mean from the data's: a
# component collapsed in every direction (a spherical one on tied rows, one
# point per component) has no large variance of its own to compare with.
FLOOR_RELATIVE = 1e3

# Under a prior a small component is kept (its covariance leans on the
# prior's scale), but one that EM has emptied carries no data at all: mclust
# stops such a fit ("mixing proportion fell below threshold") and reports it
# as missing. Effective points below this count make a component empty.
EMPTY_POINTS = 1e-8


class GaussianMixtureIC(DensityMixin, BaseEstimator):
    """Gaussian mixture with the number of components and covariance structure chosen by an information criterion.

    Fits :class:`~bayesgmm.GaussianMixture` for every number of components
    from ``min_components`` to ``max_components`` and every covariance
    structure asked for, and keeps the candidate with the lowest criterion
    among those that are not degenerate. The candidates of one structure
    run batched in one compiled program. Each candidate's fit is the one
    ``GaussianMixture(n_components=k, covariance_type=t, ...)`` with the
    same settings would give (for an int ``random_state``, the same fit).

    Parameters
    ----------
    min_components : int, default=1
        Smallest number of components tried.
    max_components : int, default=9
        Largest number of components tried (mclust's default ``G = 1:9``).
    covariance_type : 'all', str or list of str, default='all'
        The structures tried: 'all' for mclust's fourteen
        (:data:`bayesgmm.structures.MCLUST_NAMES`, by mclust's names: 'VVV'
        is 'full', 'EEE' 'tied', 'VVI' 'diag', 'VII' 'spherical'), or for
        one feature mclust's two, 'E' and 'V' (one variance, a variance per
        component); one name, or a list of names (each structure once).
    criterion : {'bic', 'icl', 'aic'}, default='bic'
        The criterion minimised (scikit-learn's sign: lower is better).
        ICL (:meth:`GaussianMixture.icl`) is BIC plus twice the entropy of
        the classification: it prefers well-separated clusters.
    init_params : str or sequence of str, default=('hierarchical', 'kmeans')
        The starts tried in every cell, each a value of
        :class:`~bayesgmm.GaussianMixture`'s ``init_params``; each cell keeps
        the fit of highest likelihood among its sound ones (mclust's
        hierarchical start finds better optima where k-means starts fail, on
        elongated or nested clusters, and the reverse happens too).
        ``n_init`` restarts apply to the random starts; the hierarchical
        start is deterministic and runs once (on data above 2,000 rows, on a
        random subset: see
        :func:`bayesgmm.mixture.initialisation.hierarchical_start`).
    tol, reg_covar, max_iter, n_init, random_state, dtype, devices
        As in :class:`~bayesgmm.GaussianMixture`, for every candidate.
        mclust adds nothing to its covariances: to compare criteria with
        mclust's on features whose variances are small (below about 1e-3),
        lower ``reg_covar`` (1e-10, say), which otherwise lowers every
        likelihood a little; and mclust stops at a relative change of 1e-5,
        looser than a small ``tol`` (1e-8 reaches its optima or better).
    prior : None, 'default', ConjugatePrior or dict, default=None
        mclust's conjugate prior (``priorControl()``), given to every
        candidate (:class:`~bayesgmm.GaussianMixture`'s ``prior``, its
        defaults computed per number of components, as mclust does): MAP-EM,
        whose fits never collapse. 'all' then means the ten structures mclust
        has a prior for (``mclustBIC`` drops VEE, EVE, VVE and EVV; naming one
        of them is refused). The criteria use the log-likelihood at the MAP
        estimate, as ``mclustBIC(..., prior = priorControl())`` does (mclust
        reports ``bic(loglik)`` with the log-likelihood of its last E-step; the
        log prior density its Fortran also computes is not added). Small
        components are not marked degenerate under a prior: their covariance
        is held up by the prior's scale, not fitted to their few points.
    verbose : int, default=0
        0: silent; 1: one line per structure.
    missing : {'raise', 'marginalize'}, default='raise'
        As in :class:`GaussianMixture`: 'marginalize' fits every candidate
        to data with NaN entries on each row's observed coordinates, and
        scores it (BIC, ICL, AIC) by the observed-data log-likelihood. The
        starts (k-means, hierarchical) are drawn from the data with each
        missing entry replaced by its column's observed mean; a row with
        every value missing is refused unless its ``sample_weight`` is 0.

    Attributes
    ----------
    best_estimator_ : GaussianMixture
        The chosen fit.
    n_components_ : int
    covariance_type_ : str
    criterion_ : float
        The chosen fit's criterion.
    results_ : dict of ndarray
        One entry per candidate, in the style of ``GridSearchCV.cv_results_``
        (structures in the order given, then numbers of components):
        ``param_n_components``, ``param_covariance_type``, ``params`` (a list
        of dicts), ``bic``, ``icl``, ``aic``, ``log_likelihood`` (the total,
        weighted), ``n_parameters``, ``converged``, ``n_iter``,
        ``init_params`` (the start of the fit kept),
        ``degenerate``, ``degenerate_reason`` ('' for a sound fit) and
        ``rank`` (1 for the chosen fit; degenerate candidates rank after
        every sound one). Criteria are NaN where the fit failed.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Defined only when ``X`` has feature names that are all strings.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from bayesgmm import GaussianMixtureIC
    >>> X, _ = make_blobs(n_samples=300, centers=3, random_state=0)
    >>> model = GaussianMixtureIC(max_components=5, covariance_type=["full", "spherical"],
    ...                           random_state=0).fit(X)
    >>> model.n_components_
    3
    """

    def __init__(
        self,
        min_components=1,
        max_components=9,
        *,
        covariance_type="all",
        criterion="bic",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params=("hierarchical", "kmeans"),
        random_state=None,
        dtype=None,
        devices=None,
        verbose=0,
        prior=None,
        missing="raise",
    ):
        self.min_components = min_components
        self.max_components = max_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.dtype = dtype
        self.devices = devices
        self.verbose = verbose
        self.prior = prior
        self.missing = missing

    # ------------------------------------------------------------------ fit

    def _structures(self, n_features: int | None = None) -> list[str]:
        """The covariance structures of the grid, validated ('all': mclust's, for ``n_features``)."""
        value = self.covariance_type
        if isinstance(value, str):
            names = [value]
            if value == "all":
                names = ["E", "V"] if n_features == 1 else list(structures.MCLUST_NAMES)
                if self.prior is not None:
                    # As mclustBIC: the models without a prior are left out.
                    names = [name for name in names if structures.get(name).prior_form is not None]
        elif isinstance(value, (list, tuple)) and len(value) > 0:
            names = list(value)
        else:
            raise v.InvalidParameterError(
                f"Invalid value for 'covariance_type': {value!r}. It must be 'all', one of "
                f"{', '.join(repr(name) for name in structures.NAMES)}, or a non-empty "
                "list of them."
            )
        for name in names:
            v.check_choice("covariance_type", name, structures.NAMES)
            if n_features is not None:
                structures.check_n_features(name, n_features)
        if len({structures.get(name).name for name in names}) != len(names):
            raise v.InvalidParameterError(
                f"Invalid value for 'covariance_type': {value!r} names a structure twice."
            )
        return names

    def _check_parameters(self) -> None:
        v.check_int("min_components", self.min_components, 1)
        v.check_int("max_components", self.max_components, 1)
        if self.min_components > self.max_components:
            raise v.InvalidParameterError(
                f"min_components={self.min_components} is larger than "
                f"max_components={self.max_components}."
            )
        v.check_choice("criterion", self.criterion, CRITERIA)
        v.check_int("verbose", self.verbose, 0)
        check_prior(self.prior)
        incomplete.check_missing(self.missing)
        self._starts()
        self._structures()

    def _starts(self) -> list[str]:
        """The values of ``init_params`` tried, validated."""
        value = self.init_params
        starts = [value] if isinstance(value, str) else list(value) if isinstance(
            value, (list, tuple)) else None
        if not starts or len(set(starts)) != len(starts):
            raise v.InvalidParameterError(
                f"Invalid value for 'init_params': {value!r}. It must be one of "
                f"{', '.join(repr(choice) for choice in v.INIT_PARAMS)} or a non-empty list of "
                "them, each once."
            )
        for start in starts:
            v.check_choice("init_params", start, v.INIT_PARAMS)
        return starts

    def _candidate(self, n_components: int, covariance_type: str, start: str) -> GaussianMixture:
        """An unfitted ``GaussianMixture`` with this grid's settings and one start."""
        return GaussianMixture(
            n_components=n_components, covariance_type=covariance_type, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter,
            n_init=1 if start == "hierarchical" else self.n_init, init_params=start,
            random_state=self.random_state, dtype=self.dtype, devices=self.devices, prior=self.prior,
            missing=self.missing,
        )

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Self:
        """Fit every candidate and keep the best sound one.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, used in every fit and criterion.

        Returns
        -------
        self : GaussianMixtureIC

        Raises
        ------
        ValueError
            On invalid settings or data (before any fit), on a grid larger
            than the data support, and when every candidate is degenerate.
        """
        self._check_parameters()
        v.check_feature_names(self, X, reset=True)
        dtype = v.data_dtype(self.dtype, X)
        X = v.check_array(X, dtype, min_samples=2, copy=False, missing=self.missing)
        starts_from = X
        if np.isnan(X).any():
            # Rows with every value missing (weight 0) are left out here, so that
            # the starts, the fits and the criteria all see the same rows.
            given = np.ones(X.shape[0], dtype) if sample_weight is None else v.check_sample_weight(
                sample_weight, X.shape[0], dtype)
            X, kept = incomplete.usable_rows(X, given)
            sample_weight = None if sample_weight is None else kept
            starts_from = incomplete.mean_imputed(X, incomplete.observed_mean(X, kept))
        n_samples = X.shape[0]
        if self.max_components > n_samples:
            raise ValueError(
                f"max_components={self.max_components} is more than the {n_samples} samples; "
                "lower it."
            )
        sizes = list(range(self.min_components, self.max_components + 1))
        names = self._structures(X.shape[1])
        starts = self._starts()
        # Every candidate's settings are checked before any start is drawn.
        for name in names:
            fitting.check_parameters(self._candidate(sizes[-1], name, starts[0]))
            for start in starts:
                check_settings(sizes, covariance_type=name, tol=self.tol, reg_covar=self.reg_covar,
                               max_iter=self.max_iter, n_init=self.n_init, init_params=start,
                               dtype=dtype, prior=self.prior)
        weights = v.check_sample_weight(sample_weight, n_samples, dtype)
        # The starts do not depend on the structure: drawn once for the grid.
        labels = {start: self._start_labels(starts_from, sample_weight, sizes, start, len(starts) > 1)
                  for start in starts}
        starts = [start for start in starts if labels[start] is not None]
        families = structures.families(names)
        rows = []
        for name in names:
            if self.verbose:
                print(f"GaussianMixtureIC: {name}, {len(sizes)} numbers of components")
            cells = [[] for _ in sizes]
            for start in starts:
                results = self._sweep(X, sample_weight, sizes, name, start, dtype, labels[start],
                                      families[name])
                for cell, size, result in zip(cells, sizes, results):
                    cell.append(self._evaluate(X, weights, size, name, start, result))
            rows.extend(_best_start(cell) for cell in cells)
        self.results_ = _results_table(rows, self.criterion)
        chosen = int(np.argmin(self.results_["rank"]))
        if self.results_["degenerate"][chosen]:
            raise ValueError(
                "Every candidate fit is degenerate (see results_['degenerate_reason']); "
                "increase reg_covar, lower max_components, or try other covariance types."
            )
        self._warn_if_degenerate_would_win()
        model = rows[chosen]["model"]
        self.best_estimator_ = model
        self.n_components_ = int(self.results_["param_n_components"][chosen])
        self.covariance_type_ = str(self.results_["param_covariance_type"][chosen])
        self.criterion_ = float(self.results_[self.criterion][chosen])
        self.n_features_in_ = X.shape[1]
        if not model.converged_ and self.max_iter > 0:
            warnings.warn(
                f"The chosen fit ({self.covariance_type_}, {self.n_components_} components) did "
                "not converge. Increase max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _start_labels(self, X, sample_weight, sizes, start, others: bool):
        """Every size's initial labels from one start, drawn once for the grid; None if impossible.

        The hierarchical start cannot be built on fewer distinct rows than
        components or on no more rows than features: where other starts
        remain, a warning says so and the start is skipped.
        """
        try:
            return driver.initial_start_labels(
                X, sample_weight, sizes, n_init=1 if start == "hierarchical" else self.n_init,
                init_params=start, random_state=self.random_state,
            )
        except ValueError as error:
            if start != "hierarchical" or not others:
                raise
            warnings.warn(f"The hierarchical start was skipped: {error}", UserWarning, stacklevel=3)
            return None

    def _sweep(self, X, sample_weight, sizes, name, start, dtype, start_labels, family=None):
        """Every size of one structure from one start, in one batched run (``family``'s program)."""
        return driver.fit_sweep(
            X, sample_weight, n_components=sizes, covariance_type=name, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter,
            n_init=1 if start == "hierarchical" else self.n_init, init_params=start,
            random_state=self.random_state, dtype=dtype, devices=self.devices,
            start_labels=start_labels, prior=self.prior, missing=self.missing, family=family,
        )

    def _evaluate(self, X, weights, size, name, start, result) -> dict:
        """One row of ``results_`` (and its fitted model, or None where the fit failed)."""
        n_parameters = structures.n_parameters(name, size, X.shape[1])
        row = dict(
            n_components=size, covariance_type=name, n_parameters=n_parameters,
            converged=bool(result.converged), n_iter=int(result.n_iter), init_params=start,
        )
        if result.failed:
            return dict(
                row, model=None, bic=np.nan, icl=np.nan, aic=np.nan, log_likelihood=np.nan,
                reason="a covariance became singular: increase reg_covar",
            )
        model = self._candidate(size, name, start)
        model._set_result(result)
        # One pass gives log p(x) and the largest responsibility, with every
        # size of the grid padded alike: one compiled program per structure.
        scores = model._predict_blocks(X, "criteria", n_padded=self._scoring_components())
        # After the passes over X, which is a plain array by now.
        if hasattr(self, "feature_names_in_"):
            model.feature_names_in_ = self.feature_names_in_
        log_likelihood = float(np.sum(weights * scores[:, 0]))
        n_effective = float(np.sum(weights))
        bic = -2.0 * log_likelihood + n_parameters * np.log(n_effective)
        entropy = -float(np.sum(weights * scores[:, 1]))
        return dict(
            row, model=model, log_likelihood=log_likelihood, bic=bic, icl=bic + 2.0 * entropy,
            aic=-2.0 * log_likelihood + 2.0 * n_parameters,
            reason=degeneracy(model, n_effective, self.reg_covar),
        )

    def _scoring_components(self) -> int:
        """Components the scoring program carries: ``max_components`` up to a multiple of the fits' bucket."""
        bucket = parameters.COMPONENT_BUCKET
        return -(-self.max_components // bucket) * bucket

    def _warn_if_degenerate_would_win(self) -> None:
        values = self.results_[self.criterion]
        if np.all(np.isnan(values)):
            return
        lowest = int(np.nanargmin(values))
        if self.results_["degenerate"][lowest]:
            warnings.warn(
                f"The lowest {self.criterion.upper()} ({values[lowest]:.6g}) is of "
                f"{self.results_['param_covariance_type'][lowest]} with "
                f"{self.results_['param_n_components'][lowest]} components, which is "
                f"degenerate ({self.results_['degenerate_reason'][lowest]}); it was not chosen.",
                UserWarning,
                stacklevel=3,
            )

    # ----------------------------------------------------------- delegation

    def _best(self) -> GaussianMixture:
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(v.NOT_FITTED_MESSAGE.format(name=type(self).__name__))
        return self.best_estimator_

    def __sklearn_is_fitted__(self):
        return hasattr(self, "best_estimator_")

    def fit_predict(self, X: ArrayLike, y: object = None,
                    sample_weight: ArrayLike | None = None) -> np.ndarray:
        """Fit, then return the labels of ``X`` under the chosen fit.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).predict(X)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Labels of ``X`` under the chosen fit; see :meth:`GaussianMixture.predict`."""
        return self._best().predict(X)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Responsibilities under the chosen fit; see :meth:`GaussianMixture.predict_proba`."""
        return self._best().predict_proba(X)

    def score_samples(self, X: ArrayLike) -> np.ndarray:
        """Log-density of each sample under the chosen fit."""
        return self._best().score_samples(X)

    def score(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> float:
        """(Weighted) mean log-likelihood under the chosen fit."""
        return self._best().score(X, sample_weight=sample_weight)

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draws from the chosen fit; see :meth:`GaussianMixture.sample`."""
        return self._best().sample(n_samples)

    def bic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """BIC of the chosen fit on ``X``."""
        return self._best().bic(X, sample_weight)

    def aic(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """AIC of the chosen fit on ``X``."""
        return self._best().aic(X, sample_weight)

    def icl(self, X: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """ICL of the chosen fit on ``X``."""
        return self._best().icl(X, sample_weight)


def degeneracy(model: GaussianMixture, n_effective: float, reg_covar: float) -> str:
    """Why a fitted candidate cannot be trusted in model choice, or '' if it can.

    A component with fewer effective points than its covariance needs
    (:attr:`CovarianceStructure.min_component_points`; under a prior, only
    an empty one, fewer than :data:`EMPTY_POINTS`), or a covariance with
    an eigenvalue that only ``reg_covar`` keeps above zero (the component
    collapsed onto tied or collinear values; its likelihood grows without
    bound as ``reg_covar`` shrinks).

    Parameters
    ----------
    model : GaussianMixture
        Fitted.
    n_effective : float
        The weight of the data (the number of samples, unweighted).
    reg_covar : float

    Returns
    -------
    str
    """
    structure = structures.get(model.covariance_type)
    n_components, n_features = model.means_.shape
    needed = structure.min_component_points(n_features)
    points = np.asarray(model.weights_, dtype=np.float64) * n_effective
    # Responsibilities of exactly `needed` points may sum to a little less.
    # Under a prior a small component's covariance is mostly the prior's scale
    # (mclust reports such fits): only a collapse counts.
    if model.prior is not None:
        empty = np.flatnonzero(points < EMPTY_POINTS)
        if empty.size:
            k = int(empty[0])
            return (f"component {k} is empty ({points[k]:.3g} effective points): mclust reports "
                    "such a fit as missing")
    small = np.flatnonzero(points < needed * (1.0 - 1e-6)) if model.prior is None else np.array([], int)
    if small.size:
        k = int(small[0])
        return (
            f"component {k} has {points[k]:.4g} effective points, fewer than the {needed} "
            "its covariance needs"
        )
    matrices = np.asarray(structure.full_matrices(model.covariances_, n_components, n_features),
                          dtype=np.float64)
    eigenvalues = np.linalg.eigvalsh(matrices)
    resolution = np.finfo(model.means_.dtype).eps
    floor = eigenvalues - reg_covar <= FLOOR_RELATIVE * resolution * _scatter_scales(
        model, matrices, eigenvalues)[:, None]
    collapsed = np.flatnonzero(floor.any(axis=1))
    if collapsed.size:
        k = int(collapsed[0])
        which = f"component {k}'s covariance" if structure.component_axis else "the covariance"
        return (
            f"{which} collapsed to the reg_covar floor (smallest variance "
            f"{eigenvalues[k, 0]:.3g}): a spurious maximum on tied or collinear values"
        )
    return ""


def _scatter_scales(model: GaussianMixture, matrices: np.ndarray, eigenvalues: np.ndarray) -> np.ndarray:
    """The scale each component's scatter was computed at, shape (K,) (see :data:`FLOOR_RELATIVE`).

    The data's mean and covariance are the mixture's (at a maximum of the
    likelihood they are the weighted data's, by the law of total variance).
    """
    weights = np.asarray(model.weights_, dtype=np.float64)
    means = np.asarray(model.means_, dtype=np.float64)
    distances = means - weights @ means
    total = np.einsum("k,kij->ij", weights, matrices) + np.einsum("k,ki,kj->ij", weights, distances, distances)
    data_scale = np.linalg.eigvalsh(total)[-1]
    return np.maximum(np.maximum(eigenvalues[:, -1], data_scale), np.sum(distances**2, axis=1))


def _best_start(cell: list[dict]) -> dict:
    """The row a cell keeps among its starts: sound fits first, then the highest likelihood."""
    return min(cell, key=lambda row: (row["reason"] != "", -np.nan_to_num(row["log_likelihood"],
                                                                        nan=-np.inf)))


def _tie_keys(values: np.ndarray) -> np.ndarray:
    """``values`` with each run of values within :data:`CRITERION_TIE` of its smallest set to it.

    With one component several structures are one model (VVV, EEE, VEV...
    all fit one full covariance) and their criteria differ by rounding
    only; the tie rule, not the rounding, must choose among them.
    """
    keys = values.copy()
    order = np.argsort(values, kind="stable")
    start = None
    for index in order:
        value = values[index]
        if start is None or not value - start <= CRITERION_TIE * max(1.0, abs(start)):
            start = value
        keys[index] = start
    return keys


def _results_table(rows: list[dict], criterion: str) -> dict:
    """``results_`` from the candidates' rows, with ranks by ``criterion`` (sound fits first)."""
    degenerate = np.array([row["reason"] != "" for row in rows])
    values = np.array([row[criterion] for row in rows], dtype=np.float64)
    # Sound candidates by value (ties: the earlier, simpler one), then the degenerate ones.
    order = np.lexsort((np.arange(len(rows)), _tie_keys(np.nan_to_num(values, nan=np.inf)), degenerate))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(1, len(rows) + 1)
    return {
        "param_n_components": np.array([row["n_components"] for row in rows], dtype=np.int64),
        "param_covariance_type": np.array([row["covariance_type"] for row in rows], dtype=object),
        "params": [
            {"covariance_type": row["covariance_type"], "n_components": row["n_components"]}
            for row in rows
        ],
        "bic": np.array([row["bic"] for row in rows], dtype=np.float64),
        "icl": np.array([row["icl"] for row in rows], dtype=np.float64),
        "aic": np.array([row["aic"] for row in rows], dtype=np.float64),
        "log_likelihood": np.array([row["log_likelihood"] for row in rows], dtype=np.float64),
        "n_parameters": np.array([row["n_parameters"] for row in rows], dtype=np.int64),
        "converged": np.array([row["converged"] for row in rows], dtype=bool),
        "n_iter": np.array([row["n_iter"] for row in rows], dtype=np.int64),
        "init_params": np.array([row["init_params"] for row in rows], dtype=object),
        "degenerate": degenerate,
        "degenerate_reason": np.array([row["reason"] for row in rows], dtype=object),
        "rank": rank,
    }


__all__ = ["CRITERIA", "GaussianMixtureIC", "degeneracy"]
