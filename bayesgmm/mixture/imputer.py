"""``MixtureImputer``: a scikit-learn transformer that fills missing values from a Gaussian mixture."""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from bayesgmm import _validation as v
from bayesgmm.mixture.estimator import GaussianMixture


class MixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Impute missing values (NaN) by their conditional mean under a Gaussian mixture.

    ``fit`` fits a :class:`bayesgmm.GaussianMixture` with
    ``missing='marginalize'`` (every row's observed values count, none are
    filled in before the fit); ``transform`` replaces each missing entry by
    ``sum_k p(k | x_o) E[x_m | x_o, k]``
    (:meth:`bayesgmm.GaussianMixture.impute`). Observed entries are returned
    as given. Usable in a :class:`sklearn.pipeline.Pipeline` in place of
    :class:`sklearn.impute.SimpleImputer` or ``IterativeImputer``.

    Parameters
    ----------
    n_components, covariance_type, tol, reg_covar, max_iter, n_init, init_params, random_state, dtype
        As in :class:`bayesgmm.GaussianMixture`.

    Attributes
    ----------
    mixture_ : GaussianMixture
        The fitted mixture.
    n_iter_ : int
        EM iterations of the fit (``mixture_.n_iter_``).
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Only when ``X`` had string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import MixtureImputer
    >>> rng = np.random.default_rng(0)
    >>> X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=400)
    >>> X[::4, 1] = np.nan
    >>> filled = MixtureImputer(random_state=0).fit_transform(X)
    >>> bool(np.isnan(filled).any())
    False
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
        random_state=None,
        dtype=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None) -> Self:
        """Fit the mixture to ``X``, missing entries marginalised.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NaN marks a missing value.
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : MixtureImputer
        """
        v.check_feature_names(self, X, reset=True)
        X = v.check_array(X, v.data_dtype(self.dtype, X), min_samples=2, missing="marginalize")
        self.mixture_ = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter, n_init=self.n_init,
            init_params=self.init_params, random_state=self.random_state, dtype=self.dtype,
            missing="marginalize",
        ).fit(X, sample_weight=sample_weight)
        self.n_iter_ = self.mixture_.n_iter_
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: ArrayLike) -> np.ndarray:
        """``X`` with every missing entry replaced by its conditional mean.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_imputed : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "mixture_")
        v.check_feature_names(self, X, reset=False)
        X = v.check_array(X, self.mixture_.means_.dtype, missing="marginalize")
        v.check_n_features(X, self.n_features_in_, type(self).__name__)
        return self.mixture_.impute(X)
