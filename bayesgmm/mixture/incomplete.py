"""EM for data with values missing at random.

The rows of a fit are split once, on the host: complete rows go through the
fast path of every fit unchanged (:func:`bayesgmm.mixture.forms.accumulate_statistics`
on their blocks); incomplete rows are grouped by their pattern of observed
coordinates into **tiles** (:class:`PatternTiles`), each tile holding rows of
one pattern, so that a tile is one batched computation with that pattern's
factors (:mod:`bayesgmm.marginal`). Tiles come in a few sizes
(:data:`TILE_SIZES`) and their number is bucketed
(:func:`bayesgmm.mixture.blocks.count_bucket`), so that the number of
compiled programs stays small whatever the patterns.

Per EM iteration (Ghahramani and Jordan 1994; McLachlan and Krishnan, *The
EM Algorithm and Extensions*, 2.2 and 2.7), for every pattern and component
the factors of the marginal on the observed coordinates are computed once;
the E-step of a row uses its marginal density; the M-step's statistics use
the conditional expectations of the missing coordinates given the observed
ones and the component::

    N_k      = sum_n w_n r_nk
    first_k  = sum_n w_n r_nk E[x_n | x_no, k]
    second_k = sum_n w_n r_nk (E[x_n | x_no, k] E[x_n | x_no, k]^T + Cov[x_n | x_no, k])

With the fast E-step form (:data:`bayesgmm.mixture.forms.EXPANDED`) a tile
is two matrix products against its rows' pair features ``[1, x, x_i x_j]``,
as for complete rows: the log densities with its pattern's coefficients
(the marginal's expanded square), then the responsibility-weighted feature
sums, added up per pattern (:func:`tile_moments`). The conditional
expectation is linear in the observed values, ``E[x | x_o, k] = A x + b``,
so the moments above follow per pattern and component from those sums,
without any per-row ``D x D`` product; the factors of all patterns come
from one batched sweep (:func:`bayesgmm.marginal.sweep_observed`). With the
centred form (components the expanded square cannot represent accurately)
each tile whitens its residuals instead (:func:`centred_tile_moments`).

Those are full ``D x D`` moments; :func:`statistics_from_matrices` lays them
out as the structure's own second moments (through the structure's
quadratic features, which are linear in ``x x^T``), so every structure's
M-step consumes them unchanged. The statistics computation is a value
passed to the engine (:func:`incomplete_statistics`, the ``statistics=``
of :func:`bayesgmm.mixture.engine.run_em`); the data it reads are an
:class:`IncompleteData`. Predictions and imputation on rows with missing
values use the same tiles (:mod:`bayesgmm.mixture.incomplete_predict`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from bayesgmm import marginal, structures
from bayesgmm.mixture.blocks import DataLayout, count_bucket
from bayesgmm.mixture.data_pass import DataPass, in_memory_run
from bayesgmm.mixture.forms import EXPANDED, EStepForm, accumulate_statistics, normalise
from bayesgmm.mixture.parameters import GMMParams, SufficientStats

MISSING_CHOICES = ("raise", "marginalize")

SHARDED_MESSAGE = (
    "Fits of data with missing values (missing='marginalize') run on one device and one "
    "process; leave devices=None, or impute the data before a sharded fit."
)

# Rows of a tile, largest first: a pattern's rows fill whole tiles of the
# largest size, then of the next, and the rest one tile of the smallest,
# padded with zero-weight rows (fewer than TILE_SIZES[-1] per pattern).
TILE_SIZES = (1024, 128, 16)

# Rows computed per step of a tile group (tiles of one size are batched by
# this many rows): bounds the (rows, K, D) temporaries.
ROWS_PER_STEP = 4096

# Below this many rows, every row (complete ones too) goes into tiles of the
# smallest size only: small fits then share one shape of data per number of
# features (one compiled program, instead of one per count of complete rows
# and of tile groups), at the cost of a few thousand rows of work.
SMALL_ROWS = 2 * ROWS_PER_STEP

# Patterns are padded to a power of two, at least this many.
MIN_PATTERNS = 8


# --------------------------------------------------------------------------
# Host side: checks and tiles
# --------------------------------------------------------------------------


def check_missing(missing) -> str:
    """The ``missing`` option, validated (before any work)."""
    from bayesgmm import _validation as v

    return v.check_choice("missing", missing, MISSING_CHOICES)


def usable_rows(X: np.ndarray, weights: np.ndarray):
    """Check the missing entries of a fit's data.

    A row with every value missing has no likelihood and is refused, naming
    it, unless its weight is 0: then it is left out of the fit. A column with
    no observed value among the rows of positive weight is refused.

    Returns
    -------
    X, weights : without the rows that have every value missing
    """
    observed = ~np.isnan(X)
    empty = ~observed.any(axis=1)
    if np.any(empty & (weights > 0)):
        row = int(np.flatnonzero(empty & (weights > 0))[0])
        raise ValueError(
            f"Row {row} of X has every value missing: it has no likelihood. Remove it, or give "
            "it sample_weight 0 (rows of weight 0 are left out of the fit)."
        )
    if empty.any():
        X, weights, observed = X[~empty], weights[~empty], observed[~empty]
    unobserved = ~(observed & (weights > 0)[:, None]).any(axis=0)
    if unobserved.any():
        column = int(np.flatnonzero(unobserved)[0])
        raise ValueError(
            f"Column {column} of X has no observed value (every entry is missing): it cannot "
            "be estimated. Remove the column."
        )
    return X, weights


def observed_mean(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted mean of the observed values of each column, shape (n_features,)."""
    observed = ~np.isnan(X)
    totals = weights @ np.where(observed, X, 0.0)
    return (totals / (weights @ observed)).astype(X.dtype)


def mean_imputed(X: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """``X`` with each missing entry replaced by its column's ``fill`` value (a new array)."""
    return np.where(np.isnan(X), fill, X)


class PatternTiles(NamedTuple):
    """Incomplete rows grouped by pattern into tiles (a pytree of arrays)."""

    observed: jax.Array  # (n_patterns, D) bool, bucketed (copies of pattern 0)
    # One entry per tile size in use: (n_steps, tiles_per_step, tile_rows, D) data,
    # missing entries 0; (n_steps, tiles_per_step, tile_rows) weights, 0 for padding;
    # (n_steps, tiles_per_step) int32 pattern of each tile.
    X: tuple
    weights: tuple
    pattern: tuple


class IncompleteData(NamedTuple):
    """The data :func:`incomplete_statistics` reads: complete rows in blocks, the rest in tiles."""

    complete: jax.Array  # (n_blocks, block_size, D) the complete rows (fast path)
    tiles: PatternTiles

    @property
    def dtype(self):
        return self.complete.dtype


def tile_rows(X: np.ndarray, weights: np.ndarray, offset=None, sizes=TILE_SIZES):
    """Group rows by their pattern of observed coordinates into tiles.

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        NaN marks a missing entry.
    weights : ndarray of shape (n_rows,)
    offset : ndarray of shape (n_features,), optional
        Subtracted from the observed entries (the fit's centre).
    sizes : tuple of int, default=TILE_SIZES
        The rows of a tile, largest first.

    Returns
    -------
    tiles : PatternTiles
        Host arrays.
    rows : tuple of ndarray
        Per tile group, the row of ``X`` in each place (-1 for padding), shaped
        like the group's weights.
    """
    n_rows, n_features = X.shape
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=patterns.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # (pattern, first row in `order`, tile size) of every tile.
    tiles = {size: [] for size in sizes}
    for pattern, (start, count) in enumerate(zip(starts, counts)):
        position, end = start, start + count
        for size in sizes:
            whole = count // size if size != sizes[-1] else -(-count // size)
            for _ in range(whole):
                tiles[size].append((pattern, position, min(size, end - position)))
                position += size
            count -= min(count, whole * size)
    values = np.where(observed, X - (0.0 if offset is None else offset), 0.0).astype(X.dtype)
    groups_X, groups_w, groups_p, groups_rows = [], [], [], []
    for size in sizes:
        if not tiles[size]:
            continue
        per_step = max(1, ROWS_PER_STEP // size)
        n_steps = count_bucket(-(-len(tiles[size]) // per_step))
        n_tiles = n_steps * per_step
        rows = np.full((n_tiles, size), -1, np.int64)
        pattern = np.zeros(n_tiles, np.int32)
        for index, (which, position, length) in enumerate(tiles[size]):
            rows[index, :length] = order[position : position + length]
            pattern[index] = which
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        groups_X.append(
            np.where(valid[..., None], values[safe], 0.0).reshape(n_steps, per_step, size, n_features)
        )
        groups_w.append(np.where(valid, weights[safe], 0.0).astype(X.dtype).reshape(n_steps, per_step, size))
        groups_p.append(pattern.reshape(n_steps, per_step))
        groups_rows.append(rows.reshape(n_steps, per_step, size))
    n_patterns = max(MIN_PATTERNS, 1 << (patterns.shape[0] - 1).bit_length())
    padded = np.concatenate([patterns, np.repeat(patterns[:1], n_patterns - patterns.shape[0], axis=0)])
    return PatternTiles(padded, tuple(groups_X), tuple(groups_w), tuple(groups_p)), tuple(groups_rows)


def n_patterns(X: np.ndarray) -> int:
    """The number of distinct patterns of missing entries among the rows of ``X``."""
    return int(np.unique(np.isnan(X), axis=0).shape[0])


# --------------------------------------------------------------------------
# Device side: statistics of the tiles
# --------------------------------------------------------------------------


def pattern_factors(tiles: PatternTiles, params: GMMParams, covariance_type: str) -> marginal.MarginalFactors:
    """:func:`bayesgmm.marginal.marginal_factors` of every pattern (leading axis n_patterns)."""
    n_components, n_features = params.means.shape
    covariances = marginal.dense_covariances(
        params.precisions_cholesky, covariance_type, n_components, n_features
    )
    return jax.vmap(marginal.marginal_factors, in_axes=(None, 0))(covariances, tiles.observed)


def tile_terms(X, weights, pattern, observed, factors, params: GMMParams):
    """One tile's E-step: log p(x_o), responsibilities, conditional deviations, factors.

    Shared by the M-step's moments and the predictions
    (:mod:`bayesgmm.mixture.incomplete_predict`).
    """
    own = jax.tree_util.tree_map(lambda leaf: leaf[pattern], factors)
    mask = observed[pattern]
    whitened = marginal.whitened_residuals(X, mask, params.means, own)
    positive = params.weights > 0
    log_weights = jnp.where(positive, jnp.log(jnp.where(positive, params.weights, 1.0)), -jnp.inf)
    weighted = marginal.marginal_log_prob_from_whitened(whitened, own) + log_weights
    log_prob_norm, resp = normalise(weighted)
    deviations = marginal.conditional_deviations(X, mask, params.means, own, whitened)
    return weighted, log_prob_norm, resp, deviations, own


def _tile_moments(X, weights, pattern, observed, factors, params: GMMParams):
    """Moments of one tile about each component's mean: N (K,), first (K, D), second (K, D, D), ll, weight."""
    _, log_prob_norm, resp, deviations, own = tile_terms(X, weights, pattern, observed, factors, params)
    weighted_resp = resp * weights[:, None]
    nk = jnp.sum(weighted_resp, axis=0)
    first = jnp.einsum("tk,tkd->kd", weighted_resp, deviations)
    second = jnp.einsum("tkd,tke->kde", weighted_resp[..., None] * deviations, deviations)
    second = second + nk[:, None, None] * own.conditional_covariance
    log_likelihood = jnp.sum(jnp.where(weights > 0, weights * log_prob_norm, 0.0))
    return nk, first, second, log_likelihood, jnp.sum(weights)


def centred_tile_moments(tiles: PatternTiles, params: GMMParams, covariance_type: str):
    """Moments of every tile about each component's mean, summed (the accurate, slower form).

    Each tile whitens its rows' residuals about every component's mean and
    forms the conditional deviations: used with the ``centred`` E-step form,
    where the expanded square would lose precision
    (:func:`bayesgmm.mixture.forms.form_for`).

    Returns
    -------
    nk : (K,), first : (K, D), second : (K, D, D), log_likelihood : (), total_weight : ()
        ``second`` includes the conditional covariances.
    """
    factors = pattern_factors(tiles, params, covariance_type)
    n_components, n_features = params.means.shape
    dtype = params.means.dtype
    total = (
        jnp.zeros((n_components,), dtype), jnp.zeros((n_components, n_features), dtype),
        jnp.zeros((n_components, n_features, n_features), dtype), jnp.zeros((), dtype), jnp.zeros((), dtype),
    )
    one_tile = functools.partial(_tile_moments, observed=tiles.observed, factors=factors, params=params)

    def step(carry, arrays):
        moments = jax.vmap(one_tile)(*arrays)
        return jax.tree_util.tree_map(lambda a, b: a + jnp.sum(b, axis=0), carry, moments), None

    for X, weights, pattern in zip(tiles.X, tiles.weights, tiles.pattern):
        total, _ = lax.scan(step, total, (X, weights, pattern))
    return total


def _pair_features(X, upper):
    """``[1, x, x_i x_j (i <= j)]`` of rows whose missing entries are 0, shape (..., 1 + D + D (D + 1) / 2)."""
    rows, columns = upper
    ones = jnp.ones(X.shape[:-1] + (1,), X.dtype)
    return jnp.concatenate([ones, X, X[..., rows] * X[..., columns]], axis=-1)


class PatternCoefficients(NamedTuple):
    """Per pattern and component: the expanded square of the marginal, and the conditional-mean map."""

    log_prob: jax.Array  # (P, K, F) coefficients of _pair_features: log pi_k + log N(x_o | ...), finite
    conditional_map: jax.Array  # (P, K, D, D) A: E[x | x_o, k] = A x + b (x zero on missing)
    conditional_offset: jax.Array  # (P, K, D) b
    conditional_covariance: jax.Array  # (P, K, D, D) Cov[x | x_o, k], zero on observed rows and columns


def pattern_coefficients(tiles: PatternTiles, params: GMMParams, covariance_type: str, upper):
    """:class:`PatternCoefficients` of every pattern, from :func:`bayesgmm.marginal.sweep_observed`.

    With ``Lambda = Sigma_oo^-1`` (zero on the missing rows and columns), the
    log density is ``c - x^T Lambda x / 2 + x^T Lambda mu``, and the
    conditional mean is ``x + m * mu + R (x - mu)`` (``m`` the missing
    coordinates, ``R`` the regression ``Sigma_mo Sigma_oo^-1``), linear in ``x``.
    """
    n_components, n_features = params.means.shape
    covariances = marginal.dense_covariances(
        params.precisions_cholesky, covariance_type, n_components, n_features
    )
    factors = jax.vmap(marginal.sweep_observed, in_axes=(None, 0))(covariances, tiles.observed)
    observed = tiles.observed[:, None, :]  # (P, 1, D)
    means_observed = jnp.where(observed, params.means, 0.0)
    linear = jnp.einsum("pkde,pke->pkd", factors.precision, means_observed)
    positive = params.weights > 0
    log_weights = jnp.log(jnp.where(positive, params.weights, 1.0))
    constant = log_weights - 0.5 * (
        factors.n_observed[:, None] * marginal.LOG_2PI + factors.log_det + jnp.sum(linear * means_observed, axis=-1)
    )
    rows, columns = upper
    quadratic = factors.precision[..., rows, columns] * jnp.where(rows == columns, -0.5, -1.0)
    log_prob = jnp.concatenate([constant[..., None], linear, quadratic], axis=-1)
    conditional_map = factors.regression + jnp.eye(n_features, dtype=linear.dtype)
    offset = jnp.where(observed, 0.0, params.means) - jnp.einsum("pkde,ke->pkd", factors.regression, params.means)
    return PatternCoefficients(log_prob, conditional_map, offset, factors.conditional_covariance)


def tile_moments(tiles: PatternTiles, params: GMMParams, covariance_type: str):
    """Raw moments of the completed rows of every tile, summed (the expanded square).

    A tile's log densities are one product of its rows' pair features with
    its pattern's coefficients, and its responsibility-weighted sums of the
    pair features one more; the sums are added up per pattern. The moments
    of the conditional expectations then follow per pattern and component
    from the linear map ``E[x | x_o, k] = A x + b``::

        first  = A s + N b
        second = A S A^T + (A s) b^T + b (A s)^T + N b b^T + N Cov[x | x_o, k]

    with ``N``, ``s``, ``S`` the pattern's sums of ``r``, ``r x``, ``r x x^T``.
    No per-row ``D x D`` product is formed.

    Returns
    -------
    nk : (K,), first : (K, D), second : (K, D, D), log_likelihood : (), total_weight : ()
        Moments about the data's origin (the fit's centre).
    """
    n_components, n_features = params.means.shape
    n_patterns = tiles.observed.shape[0]
    dtype = params.means.dtype
    upper = tuple(jnp.asarray(index) for index in np.triu_indices(n_features))
    coefficients = pattern_coefficients(tiles, params, covariance_type, upper)
    positive = params.weights > 0
    n_features_pairs = coefficients.log_prob.shape[-1]

    def step(carry, arrays):
        sums, log_likelihood, total_weight = carry
        X, weights, pattern = arrays  # (t, s, D), (t, s), (t,)
        features = _pair_features(X, upper)  # (t, s, F)
        weighted = jnp.einsum("tsf,tkf->tsk", features, coefficients.log_prob[pattern])
        weighted = jnp.where(positive, weighted, -jnp.inf)
        log_prob_norm, resp = normalise(weighted.reshape(-1, n_components))
        weights_flat = weights.reshape(-1)
        weighted_resp = (resp * weights_flat[:, None]).reshape(weights.shape + (n_components,))
        tile_sums = jnp.einsum("tsk,tsf->tkf", weighted_resp, features)
        log_likelihood = log_likelihood + jnp.sum(jnp.where(weights_flat > 0, weights_flat * log_prob_norm, 0.0))
        return (sums.at[pattern].add(tile_sums), log_likelihood, total_weight + jnp.sum(weights)), None

    carry = (jnp.zeros((n_patterns, n_components, n_features_pairs), dtype), jnp.zeros((), dtype),
             jnp.zeros((), dtype))
    for X, weights, pattern in zip(tiles.X, tiles.weights, tiles.pattern):
        carry, _ = lax.scan(step, carry, (X, weights, pattern))
    sums, log_likelihood, total_weight = carry
    counts = sums[..., 0]  # (P, K)
    linear = sums[..., 1:1 + n_features]
    rows, columns = upper
    pairs = jnp.zeros((n_patterns, n_components, n_features, n_features), dtype)
    pairs = pairs.at[..., rows, columns].set(sums[..., 1 + n_features:])
    pairs = pairs.at[..., columns, rows].set(sums[..., 1 + n_features:])
    A, b = coefficients.conditional_map, coefficients.conditional_offset
    mapped = jnp.einsum("pkde,pke->pkd", A, linear)  # A s
    first = mapped + counts[..., None] * b
    outer = mapped[..., :, None] * b[..., None, :]
    second = (
        A @ pairs @ jnp.swapaxes(A, -1, -2) + outer + jnp.swapaxes(outer, -1, -2)
        + counts[..., None, None] * (b[..., :, None] * b[..., None, :] + coefficients.conditional_covariance)
    )
    return (jnp.sum(counts, axis=0), jnp.sum(first, axis=0), jnp.sum(second, axis=0), log_likelihood,
            total_weight)


def _quadratic_map(n_features: int, covariance_type: str, dtype):
    """``Q`` of shape (D * D, F - 1 - D): the structure's quadratic features of ``x x^T`` are ``vec(x x^T) @ Q``.

    The quadratic features are linear in ``x x^T``; by polarisation, the
    coefficient of the entry (i, j) is ``(q(e_i + e_j) - q(e_i) - q(e_j)) / 2``
    (``q(2 e_i) / 4 = q(e_i)`` on the diagonal), read off the structure's
    own ``features`` so that no structure is named here.
    """
    features = structures.get(covariance_type).features
    eye = jnp.eye(n_features, dtype=dtype)
    single = features(eye)[:, 1 + n_features:]  # (D, Fq)
    pairs = features((eye[:, None, :] + eye[None, :, :]).reshape(-1, n_features))[:, 1 + n_features:]
    pairs = pairs.reshape(n_features, n_features, -1)
    return (0.5 * (pairs - single[:, None, :] - single[None, :, :])).reshape(n_features * n_features, -1)


def statistics_from_matrices(nk, first, second, covariance_type: str, log_likelihood, total_weight):
    """:class:`SufficientStats` in the structure's layout from full ``D x D`` second moments."""
    n_features = first.shape[1]
    quadratic = second.reshape(second.shape[0], -1) @ _quadratic_map(n_features, covariance_type, first.dtype)
    sums = jnp.concatenate([nk[:, None], first, quadratic], axis=1)
    weight_sum, first, second = structures.get(covariance_type).moments(sums, n_features)
    return SufficientStats(weight_sum, first, second, log_likelihood, total_weight)


def incomplete_statistics(
    data: IncompleteData, weight_blocks, params: GMMParams, covariance_type: str, axis_name=None,
    form: EStepForm = EXPANDED,
) -> SufficientStats:
    """The E-step over complete blocks (fast path) and pattern tiles: what the M-step needs.

    The counterpart of :func:`bayesgmm.mixture.forms.accumulate_statistics`
    (same signature, with an :class:`IncompleteData` for the blocks). With a
    ``centred`` form the moments are about ``params.means``, as that form's,
    and the tiles use :func:`centred_tile_moments`; otherwise the raw moments
    of :func:`tile_moments`.
    """
    stats = accumulate_statistics(data.complete, weight_blocks, params, covariance_type, axis_name, form)
    if form.centred:
        nk, first, second, log_likelihood, total_weight = centred_tile_moments(data.tiles, params, covariance_type)
    else:
        nk, first, second, log_likelihood, total_weight = tile_moments(data.tiles, params, covariance_type)
    tiles = statistics_from_matrices(nk, first, second, covariance_type, log_likelihood, total_weight)
    return jax.tree_util.tree_map(jnp.add, stats, tiles)


# --------------------------------------------------------------------------
# The in-memory data pass of a fit
# --------------------------------------------------------------------------


def put_incomplete(X: np.ndarray, weights: np.ndarray, centre: np.ndarray, n_components: int,
                   covariance_type: str):
    """Split rows into complete blocks and tiles of incomplete rows, on the device.

    Returns
    -------
    data : IncompleteData
    weight_blocks : Array of shape (n_blocks, block_size)
        The complete rows' weights.
    """
    complete = ~np.isnan(X).any(axis=1)
    small = X.shape[0] < SMALL_ROWS
    if small:
        complete[:] = False
    n_complete = int(complete.sum())
    layout = DataLayout.create(max(n_complete, 1), n_components, X.shape[1], None, X.dtype.itemsize,
                               covariance_type)
    rows = X[complete] if n_complete else np.zeros((1, X.shape[1]), X.dtype)
    row_weights = weights[complete] if n_complete else np.zeros(1, X.dtype)
    tiles, _ = tile_rows(X[~complete], weights[~complete], centre, TILE_SIZES[-1:] if small else TILE_SIZES)
    tiles = jax.device_put(tiles)
    return IncompleteData(layout.put(rows, offset=centre), tiles), layout.put(row_weights)


def in_memory_pass(X, sample_weight, weights, problem, sizes, mesh, multi_process):
    """The :class:`bayesgmm.mixture.data_pass.DataPass` of data with missing values, in memory.

    Initial responsibilities and the initial M-step see the rows with each
    missing entry replaced by its column's (weighted) mean: only a start,
    which EM then corrects. Takes the arguments of
    :func:`bayesgmm.mixture.driver.in_memory_pass`; one device only.
    """
    from bayesgmm.mixture.blocks import n_init_batches
    if mesh is not None or multi_process:
        raise ValueError(SHARDED_MESSAGE)
    settings = problem.settings
    n_samples, n_features = X.shape
    filled = mean_imputed(X, problem.centre)
    init_layout = DataLayout.create(
        n_samples, max(sizes), n_features, None, np.dtype(settings.dtype).itemsize,
        settings.covariance_type, pad_components=True,
    )
    data, weight_blocks = put_incomplete(X, weights, problem.centre, init_layout.n_components,
                                         settings.covariance_type)
    run = in_memory_run(data, weight_blocks, settings, statistics=incomplete_statistics)
    return DataPass(
        init_layout.n_components, filled, sample_weight, init_layout,
        init_layout.put(filled, offset=problem.centre), init_layout.put(weights), run,
        n_init_batches(len(sizes) * settings.n_init, init_layout, init_layout.n_components, n_features),
    )
