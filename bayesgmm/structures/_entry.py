"""What one entry of the covariance-structure table holds (:class:`CovarianceStructure`).

The table itself, and the lookups, are in :mod:`bayesgmm.structures`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from bayesgmm.structures._prior import PriorForm


class CovarianceStructure(NamedTuple):
    """One covariance type: its shapes, counts and pure math.

    ``K`` is the number of components, ``D`` the number of features, ``F``
    the number of quadratic features, ``B`` a block of samples. "Parameter
    shape" is the shape of both ``covariances`` and ``precisions_cholesky``
    (see the module docstring).

    Attributes
    ----------
    name : str
        ``'full'``, ``'tied'``, ``'diag'`` or ``'spherical'``.
    component_axis : bool
        Whether the parameters have a leading component axis (False for
        ``'tied'``: one covariance shared by all components).
    narrow_features : bool
        True where ``F`` grows linearly in ``D`` (``'diag'``: ``1 + 2D``,
        ``'spherical'``: ``D + 2``), which decides the orientation of the
        feature products.
    parameter_shape : callable ``(n_components, n_features) -> tuple``
    second_shape : callable ``(n_components, n_features) -> tuple``
        Shape of the second moments of the sufficient statistics
        (:class:`bayesgmm.mixture.parameters.SufficientStats`).
    n_covariance_parameters : callable ``(n_components, n_features) -> float``
        Free covariance parameters (scikit-learn's count, mclust's
        ``nMclustParams``).
    precisions_cholesky_from_covariances : callable ``(covariances) -> precisions_cholesky``
        NaN where a covariance is not positive definite.
    precisions_cholesky_from_precisions : callable ``(precisions) -> precisions_cholesky``
        Upper-triangular factors ``U`` with ``U @ U.T = precisions`` (the
        convention of scikit-learn's ``precisions_cholesky_``).
    precisions_from_cholesky : callable ``(precisions_cholesky) -> precisions``
    covariances_from_precisions_cholesky : callable ``(precisions_cholesky) -> covariances``
    log_det_cholesky : callable ``(precisions_cholesky, n_features) -> log_det``
        ``log|P|``, shape (K,), or a scalar for ``'tied'``.
    squared_mahalanobis : callable ``(X (n, D), means (K, D), precisions_cholesky) -> (n, K)``
        The direct form.
    feature_count : callable ``(n_features) -> int``
        ``F`` of :attr:`features`.
    features : callable ``(X (n, D)) -> Phi (n, F)``
        ``[1, x, x_i x_j (i <= j)]`` ('full', 'tied'), ``[1, x, x^2]``
        ('diag'), ``[1, x, |x|^2]`` ('spherical').
    mean_distances : callable ``(means (K, D), precisions_cholesky, xp=jax.numpy) -> (K,)``
        ``mu_k^T P_k mu_k``; ``xp=numpy`` computes on the host.
    coefficients : callable ``(weights (K,), means (K, D), precisions_cholesky) -> Theta (F, K)``
        ``features(X) @ Theta = log pi_k + log N(x | mu_k, Sigma_k)``.
    moments : callable ``(sums (K, F), n_features) -> (weight_sum (K,), first (K, D), second)``
        ``second`` is (K, D, D) for 'full', (D, D) for 'tied' (summed over
        components), (K, D) for 'diag' and 'spherical' (for 'spherical' the
        mean of the diagonal repeated D times).
    m_step_covariances : callable ``(nk (K,), means (K, D), second, reg_covar, active=None) -> covariances``
        Maximum-likelihood covariances from the raw moments of :attr:`moments`
        and ``means = first / nk`` (``nk`` as the caller floors it), plus
        ``reg_covar`` on the diagonal; 'full' and 'tied' are symmetrised.
        ``active``, a boolean (K,) mask, marks components padded up to a
        bucket (False; zero moments, ``means = first / where(active, nk, 1)``):
        they get identity covariances (ones for 'diag' and 'spherical'), and
        'tied' pools the active components only. Without it, no masking
        operation is traced.
    centred_second : callable ``(scaled (B, K, D), difference (B, K, D)) -> (K, F - 1 - D)``
        The second-moment block of moments about each component's own
        centre, packed like :attr:`features`.
    inactive_parameters : callable ``(n_components, n_features, dtype) -> (covariances, precisions_cholesky)``
        Identity parameters (NumPy arrays) for padding components that carry
        weight 0; ``(None, None)`` without a component axis.
    sample : callable ``(rng, mean (D,), covariance, count) -> (count, D)``
        scikit-learn's draws for one component from a ``np.random.RandomState``.
    component_covariance : callable ``(covariances, k) -> covariance``
        Component ``k``'s covariance (for 'tied', the shared one).
    full_matrices : callable ``(covariances, n_components, n_features) -> (K, D, D)``
        The covariances as a new NumPy array of dense matrices.
    positive_definite : callable ``(covariances) -> bool``
        Whether NumPy covariances of the parameter shape are valid:
        symmetric positive definite matrices, or strictly positive variances.
    covariance_requirement : str
        What :attr:`positive_definite` requires, in words, for error messages
        (``"symmetric positive definite matrices"``).
    random_covariances : callable ``(eigenvalues, rotated, n_components, n_features) -> covariances``
        Random covariances of the parameter shape (NumPy), from the caller's
        generators: ``eigenvalues(*shape)`` draws positive values of a shape,
        ``rotated(eigenvalues (D,))`` a matrix with those eigenvalues. The
        draws are made in a fixed order, so a seeded generator gives fixed
        covariances (:func:`bayesgmm.datasets.random_mixture`).
    covariance_sites : callable ``(n_features) -> tuple of Site``
        The latent sites of the covariances in
        :func:`bayesgmm.bayes.model.gmm_model`, in the order they are
        sampled: ``scales`` (kind ``'feature_scales'``: (K, D) for 'full' and
        'diag', (D,) for 'tied'; ``'common_scale'``: (K,) for 'spherical') and
        ``corr_cholesky`` (``'lkj_cholesky'``, (K, D, D) for 'full', (D, D) for
        'tied'; absent when D == 1). Sites with a component axis are those
        padded, relabelled and counted per component in chain starts.
    covariance_dims : tuple of str
        The ArviZ dimensions of one draw of ``covariances`` (named as in
        :attr:`Site.dims`).
    covariances_from_sites : callable ``(sites) -> covariances``
        Covariances in the parameter shape from a mapping of site name to
        value (other names are ignored), any leading batch axes kept:
        ``Sigma = diag(s) C diag(s)``, ``C = corr_cholesky @ corr_cholesky.T``
        ('full', 'tied'), ``scales**2`` ('diag', 'spherical').
    precisions_cholesky_from_sites : callable ``(sites) -> precisions_cholesky``
        The same for the precision factors: ``P = diag(1/s) inv(Lc)^T``
        (``P @ P.T = inv(Sigma)``, upper triangular, no general D x D
        inverse), ``1 / scales`` ('diag', 'spherical').
    sites_from_covariances : callable ``(covariances, correlation_shrinkage) -> dict``
        The inverse on the host (NumPy), for chain starts: site name -> value
        for every site of :attr:`covariance_sites`; correlation matrices are
        first shrunk by ``correlation_shrinkage`` towards the identity, so
        that a barely positive definite covariance has a Cholesky factor.
    feature_variances : callable ``(covariances, n_features) -> (K, D)``
        The variance of each feature in each component (NumPy), ``(1, D)`` for
        'tied'; chain starts scatter the means by it.
    work_per_component : callable ``(n_features) -> int``
        The likelihood work of one component at one point, relative across
        structures (``D**2`` for 'full', whose component maps each point by
        its own factor; ``D`` for the others): what padding components costs.
    min_component_points : callable ``(n_features) -> int``
        The effective number of points (summed responsibilities) a component
        needs to support the covariance parameters it does not share with
        the others: ``D + 1`` for its own orientation (a scatter of ``D``
        points or fewer has a null direction), 2 for its own variances
        (volume or shape), 1 where the covariance is shared. A fit with a smaller
        component is degenerate in model choice: its likelihood comes from a
        covariance fitted to too few points.
    correlate_noise : callable ``(noise (..., D), labels (...), precisions_cholesky) -> (..., D)``
        Standard normal ``noise`` mapped to ``N(0, Sigma_label)`` by
        ``P^-T`` (JAX): draws of the model's likelihood.
    correlate_noise_host : callable ``(noise (n, D), labels (n,), covariances) -> (n, D)``
        The same on the host from covariances, through their Cholesky
        factors: ``covariances`` has a leading axis of points (each point's
        posterior draw) before the parameter shape.
    prior_form : PriorForm or None
        The MAP M-step under mclust's conjugate prior, as augmented
        statistics for :attr:`m_step_covariances`
        (:mod:`bayesgmm.structures._prior`); None where mclust has no prior
        (VEE, EVE, VVE, EVV).
    m_step_continues : bool
        True where :attr:`m_step_covariances` is an iteration that takes
        ``previous=`` (K, D, D), the covariances of the EM iteration before,
        and starts from them instead of from scratch (EVE, VVE: the common
        orientation), as mclust's EM carries its inner iteration over.
    scatter_of_unassigned_rows : bool
        True for 'tied' alone: scikit-learn's tied M-step sums ``x x^T`` over
        every row, also rows that no component holds, so the starts that
        seed each component with one point ('k-means++',
        'random_from_data') begin from a covariance that adds those rows'
        uncentred scatter (:func:`bayesgmm.mixture.initialisation.scikit_learn_seeded_start`);
        the same fit as scikit-learn's needs the same start.
    """

    name: str
    component_axis: bool
    narrow_features: bool
    parameter_shape: Callable[[int, int], tuple]
    second_shape: Callable[[int, int], tuple]
    n_covariance_parameters: Callable[[int, int], float]
    precisions_cholesky_from_covariances: Callable
    precisions_cholesky_from_precisions: Callable
    precisions_from_cholesky: Callable
    covariances_from_precisions_cholesky: Callable
    log_det_cholesky: Callable
    squared_mahalanobis: Callable
    feature_count: Callable[[int], int]
    features: Callable
    mean_distances: Callable
    coefficients: Callable
    moments: Callable
    m_step_covariances: Callable
    centred_second: Callable
    inactive_parameters: Callable
    sample: Callable
    component_covariance: Callable
    full_matrices: Callable
    positive_definite: Callable
    covariance_requirement: str
    random_covariances: Callable
    covariance_sites: Callable[[int], tuple]
    covariance_dims: tuple
    covariances_from_sites: Callable
    precisions_cholesky_from_sites: Callable
    sites_from_covariances: Callable
    feature_variances: Callable
    work_per_component: Callable[[int], int]
    min_component_points: Callable[[int], int]
    correlate_noise: Callable
    correlate_noise_host: Callable
    prior_form: PriorForm | None = None
    m_step_continues: bool = False
    scatter_of_unassigned_rows: bool = False
