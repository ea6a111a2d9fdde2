"""What a fit asks of its data: the :class:`DataPass` value, and its ``run`` for data on the device.

The driver (:mod:`bayesgmm.mixture.driver`) fits through a ``DataPass``;
in-memory, incomplete (:mod:`bayesgmm.mixture.incomplete`), sharded and
streamed data each build one, so none of them needs the driver itself.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import numpy as np

from bayesgmm import _progress
from bayesgmm.mixture.blocks import DataLayout, to_host
from bayesgmm.mixture.engine import iterate
from bayesgmm.mixture.settings import Settings


class DataPass(NamedTuple):
    """How a fit reads its data: what the driver asks of in-memory, sharded and streamed data.

    Every array is of the fit's dtype; parameters are of data centred at
    ``Problem.centre``.
    """

    n_components: int  # components every candidate carries (padded, see component_bucket)
    rows: np.ndarray  # (n_rows, n_features) the rows initial responsibilities are drawn from
    row_weights: np.ndarray | None  # (n_rows,) their weights; None: unit (scikit-learn's draws)
    # The initial M-step's data: a DataLayout of ``rows`` and the centred rows and weights in it.
    init_layout: DataLayout
    init_blocks: jax.Array
    init_weight_blocks: jax.Array
    # (params, bounds, active, form, reporter, prior=None) -> EMState of every candidate, on
    # the host: EM from ``params`` (leading axis n_candidates) until each candidate stops;
    # ``prior`` the candidates' stacked PriorValues (Problem.candidate_priors).
    run: Callable
    batch_size: int  # candidates per run
    # (n_components, random_state) -> GMMParams (centred, unpadded): one start computed
    # once and shared (several processes), or None: candidates are initialised here.
    shared_start: Callable | None = None



def in_memory_run(X_blocks, weight_blocks, settings: Settings, **run_settings) -> Callable:
    """The ``run`` of a :class:`DataPass` over data on the device: :func:`iterate`, states to the host.

    ``run_settings`` go to :func:`bayesgmm.mixture.engine.run_em` (``mesh``, ``statistics``).
    """
    run_settings = dict(
        covariance_type=settings.program_structure, tol=settings.tol, reg_covar=settings.reg_covar,
        max_iter=settings.max_iter, **run_settings,
    )

    def run(params, bounds, active, form, reporter, prior=None):
        bounds, active = np.asarray(bounds, X_blocks.dtype), np.asarray(active)
        with _progress.registered(reporter if reporter.active else None) as token:
            states = iterate(
                X_blocks, weight_blocks, params, bounds, active, token, prior,
                None if settings.structure_choice is None else np.int32(settings.structure_choice), form=form,
                report=reporter.active, **run_settings,
            )
            return jax.tree_util.tree_map(to_host, states)

    return run
