"""The weights of a mixture whose component axis is padded: K active of B, in stick-breaking coordinates.

Given ``n_active = K`` (a traced value), the component axis has
``n_components = B >= K`` entries of which only the first K are in the
mixture, so that every K up to B shares one compiled program. The weights
are then the deterministic site ``weights`` (B,), computed from the site
``weight_sticks`` (B - 1,) of :class:`PaddedDirichlet`: the first K are
``Dirichlet(weight_concentration * 1_K)``, in the very coordinates NumPyro
gives a Dirichlet site of size K, and the other B - K are exactly zero
(:func:`padded_log_weights`, and its inverse :func:`padded_sticks`). See
"Padded components" in :mod:`bayesgmm.bayes.model` for the other sites.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from jax import lax
from jax.scipy.special import gammaln
from numpyro.distributions import constraints

__all__ = ["PaddedDirichlet", "padded_log_weights", "padded_sticks"]


def padded_log_weights(sticks, n_active):
    """Log weights of the first ``n_active`` of ``B`` components from stick-breaking coordinates.

    NumPyro's stick-breaking map (the unconstrained space of a Dirichlet
    site) applied to the first ``K - 1 = n_active - 1`` coordinates: with
    ``x_i = sticks[i] - log(K - 1 - i)`` the stick fractions are
    ``sigmoid(x_i)``, component ``i < K - 1`` takes its fraction of what is
    left and component ``K - 1`` the rest. Computed in log space, so no
    weight rounds to zero or one before it is used.

    Parameters
    ----------
    sticks : Array of shape (..., B - 1)
        Coordinates ``K - 1`` and on are ignored.
    n_active : int or integer Array of shape ()
        ``K``, between 1 and ``B``; may be traced.

    Returns
    -------
    log_weights : Array of shape (..., B)
        ``-inf`` for the ``B - K`` inactive components.
    """
    n_sticks = sticks.shape[-1]
    index = jnp.arange(n_sticks)
    active_stick = index < n_active - 1
    x = sticks - jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(sticks.dtype))
    # log of the stick left before component k, and of the fraction k takes of it
    # (the last active component takes all of it).
    left = jnp.cumsum(jnp.where(active_stick, jax.nn.log_sigmoid(-x), 0.0), axis=-1)
    zero = jnp.zeros(sticks.shape[:-1] + (1,), sticks.dtype)
    before = jnp.concatenate([zero, left], axis=-1)
    taken = jnp.concatenate([jnp.where(active_stick, jax.nn.log_sigmoid(x), 0.0), zero], axis=-1)
    return jnp.where(jnp.arange(n_sticks + 1) < n_active, before + taken, -jnp.inf)


def padded_sticks(log_weights, n_active):
    """Inverse of :func:`padded_log_weights` on the active components.

    Parameters
    ----------
    log_weights : Array of shape (..., B)
        Log weights; the first ``n_active`` must sum (as weights) to one, the
        others are ignored.
    n_active : int or integer Array of shape ()

    Returns
    -------
    sticks : Array of shape (..., B - 1)
        Zero from coordinate ``n_active - 1`` on.
    """
    n_sticks = log_weights.shape[-1] - 1
    active = jnp.arange(n_sticks + 1) < n_active
    log_weights = jnp.where(active, log_weights, -jnp.inf)
    # log of the weight of the components after i: what stick i's fraction is taken against.
    after = lax.cumlogsumexp(log_weights, axis=log_weights.ndim - 1, reverse=True)[..., 1:]
    index = jnp.arange(n_sticks)
    active_stick = index < n_active - 1
    offset = jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(log_weights.dtype))
    sticks = log_weights[..., :-1] - jnp.where(active_stick, after, 0.0) + offset
    return jnp.where(active_stick, sticks, 0.0)


class PaddedDirichlet(dist.Distribution):
    """``Dirichlet(concentration 1_K)`` on the first K of B weights, in stick-breaking coordinates.

    The weights of a mixture whose component axis is padded to a bucket of
    ``B`` components with ``K`` active (:func:`gmm_model` with ``n_active``).
    The value is the unconstrained vector of a NumPyro Dirichlet site of
    size B (its support is the real line), mapped to the weights by
    :func:`padded_log_weights`. Its density is

    * on the first ``K - 1`` coordinates: exactly the density NumPyro gives a
      ``Dirichlet(concentration 1_K)`` site in its unconstrained space (the
      Dirichlet density of the weights times the Jacobian of the
      stick-breaking map), so NUTS sees today's unpadded geometry there;
    * on the other ``B - K`` coordinates, which no weight depends on:
      independent standard normal (they must have a proper density, or NUTS
      would drift along them without bound), or nothing when
      ``padding_density`` is False.

    Parameters
    ----------
    concentration : float or Array of shape ()
    n_active : int or integer Array of shape ()
        K, between 1 and ``n_components``; may be traced.
    n_components : int
        B, the size of the padded component axis (static).
    padding_density : bool or bool Array of shape (), default=True
        Whether the inactive coordinates' standard normal density counts.
    """

    arg_constraints = {"concentration": constraints.positive}
    support = constraints.real_vector
    pytree_data_fields = ("concentration", "n_active", "padding_density")

    def __init__(self, concentration, n_active, n_components: int, padding_density=True,
                 *, validate_args=None):
        self.concentration = concentration
        self.n_active = n_active
        self.padding_density = padding_density
        super().__init__(batch_shape=(), event_shape=(n_components - 1,),
                         validate_args=validate_args)

    def _active_sticks(self):
        return jnp.arange(self.event_shape[0]) < self.n_active - 1

    def sample(self, key, sample_shape=()):
        """Stick coordinates of Dirichlet weights; standard normal inactive coordinates."""
        gamma_key, noise_key = jax.random.split(key)
        n_components = self.event_shape[0] + 1
        concentration = jnp.asarray(self.concentration)
        dtype = concentration.dtype
        shape = sample_shape + (n_components,)
        log_gamma = jax.random.loggamma(gamma_key, concentration, shape, dtype)
        active = jnp.arange(n_components) < self.n_active
        log_gamma = jnp.where(active, log_gamma, -jnp.inf)
        log_weights = log_gamma - jax.nn.logsumexp(log_gamma, axis=-1, keepdims=True)
        noise = jax.random.normal(noise_key, sample_shape + self.event_shape, dtype)
        return jnp.where(self._active_sticks(), padded_sticks(log_weights, self.n_active), noise)

    def log_prob(self, value):
        """Log density of stick coordinates of shape (..., B - 1); shape ``value.shape[:-1]``."""
        active_stick = self._active_sticks()
        n_active = self.n_active
        concentration = jnp.asarray(self.concentration, value.dtype)
        log_weights = padded_log_weights(value, n_active)
        active = jnp.arange(value.shape[-1] + 1) < n_active
        used = jnp.where(active, log_weights, 0.0)
        dirichlet = (
            (concentration - 1.0) * jnp.sum(used, axis=-1)
            + gammaln(n_active * concentration) - n_active * gammaln(concentration)
        )
        # NumPyro's stick-breaking Jacobian: log w_i + log sigmoid(x_i) - x_i per stick.
        index = jnp.arange(value.shape[-1])
        x = value - jnp.log(jnp.where(active_stick, n_active - 1 - index, 1).astype(value.dtype))
        jacobian = jnp.sum(
            jnp.where(active_stick, used[..., :-1] + jax.nn.log_sigmoid(x) - x, 0.0), axis=-1
        )
        padding = jnp.sum(
            jnp.where(active_stick, 0.0, -0.5 * (value**2 + math.log(2.0 * math.pi))), axis=-1)
        return dirichlet + jacobian + jnp.where(self.padding_density, padding, 0.0)
