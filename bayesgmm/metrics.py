"""Evaluation of a clustering against true classes, and predictive density.

The source document scores a two-component fit on held-out points by::

    accuracy = 100 * (n - sum_n |p_n - y_n|) / n

after flipping the probability column if the cluster labels came out
reversed. With ``p_n`` aligned to be the probability of class 1,
``|p_n - y_n| = 1 - P(true class of n)``, so the document's accuracy is the
mean probability that the model gives to each point's true class.
:func:`soft_accuracy` computes that for any number of classes and clusters,
with the flip replaced by Hungarian alignment (:mod:`bayesgmm.alignment`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import adjusted_rand_score

from bayesgmm._validation import check_sample_weight
from bayesgmm.alignment import align_labels, align_proba

__all__ = [
    "soft_accuracy",
    "hard_accuracy",
    "adjusted_rand_index",
    "mean_log_predictive_density",
]


def _check_targets(y_true, predictions, name: str):
    """Return ``y_true`` (1-D) and ``predictions`` (1-D labels or 2-D proba) as arrays."""
    y_true = np.asarray(y_true)
    predictions = np.asarray(predictions)
    if y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(
            f"y_true must be a non-empty 1-D array of shape (n_samples,), got shape {y_true.shape}."
        )
    if predictions.ndim not in (1, 2) or predictions.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"{name} must have shape (n_samples,) or (n_samples, K) with n_samples = "
            f"{y_true.shape[0]} as y_true, got shape {predictions.shape}."
        )
    return y_true, predictions


def _class_positions(y_true: np.ndarray, n_columns: int) -> np.ndarray:
    """``y_true`` as column indices into unaligned proba: integers in 0 .. n_columns - 1."""
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= n_columns:
        raise ValueError(
            f"With align=False, y_true must hold integer classes in 0 .. {n_columns - 1} "
            "that index the columns of proba; pass align=True otherwise."
        )
    return y_true


def soft_accuracy(y_true: ArrayLike, proba: ArrayLike, align: bool = True) -> float:
    """The document's accuracy: mean probability given to the true class, in percent.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    proba : array-like of shape (n_samples, K)
        Membership probabilities, e.g. ``predict_proba(X)``.
    align : bool, default=True
        Match the K columns to the classes first (:func:`bayesgmm.alignment.align_proba`),
        which makes the score invariant to relabelling the clusters. With
        ``align=False`` column ``y_true[n]`` is taken as the probability of
        the true class, so ``y_true`` must hold integers in ``0 .. K-1``.

    Returns
    -------
    accuracy : float
        ``100 * mean_n proba[n, true class of n]``, in [0, 100]. For two
        classes this equals the document's ``100 * (n - sum |p - y|) / n``.

    Examples
    --------
    Cluster labels that came out reversed are matched to the classes first:

    >>> from bayesgmm.metrics import soft_accuracy
    >>> proba = [[0.1, 0.9], [0.2, 0.8], [0.7, 0.3]]
    >>> round(soft_accuracy([0, 0, 1], proba), 2)
    80.0
    >>> round(soft_accuracy([0, 0, 1], proba, align=False), 2)
    20.0
    """
    y_true, proba = _check_targets(y_true, proba, "proba")
    if proba.ndim != 2:
        raise ValueError(f"proba must have shape (n_samples, K), got shape {proba.shape}.")
    if align:
        aligned = align_proba(proba, y_true)
        _, class_index = np.unique(y_true, return_inverse=True)
    else:
        aligned = np.asarray(proba, dtype=float)
        class_index = _class_positions(y_true, proba.shape[1])
    return float(100.0 * np.mean(aligned[np.arange(y_true.shape[0]), class_index]))


def hard_accuracy(y_true: ArrayLike, labels_or_proba: ArrayLike, align: bool = True) -> float:
    """The percentage of points whose (aligned) cluster is their true class.

    Parameters
    ----------
    y_true : array-like of int of shape (n_samples,)
        True classes.
    labels_or_proba : array-like of shape (n_samples,) or (n_samples, K)
        Cluster labels, or membership probabilities whose row-wise argmax is
        taken as the label.
    align : bool, default=True
        Relabel the clusters with the classes they agree with most
        (:func:`bayesgmm.alignment.align_labels`), which maximises this
        accuracy over one-to-one relabellings; otherwise labels are compared
        to ``y_true`` as they are.

    Returns
    -------
    accuracy : float
        In [0, 100].

    Examples
    --------
    >>> from bayesgmm.metrics import hard_accuracy
    >>> hard_accuracy([0, 0, 1, 1], [1, 1, 0, 1])  # clusters 1 -> class 0, 0 -> class 1
    75.0
    """
    y_true, predictions = _check_targets(y_true, labels_or_proba, "labels_or_proba")
    labels = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions
    if align:
        labels = align_labels(labels, y_true)
    return float(100.0 * np.mean(labels == y_true))


def adjusted_rand_index(y_true: ArrayLike, labels: ArrayLike) -> float:
    """The adjusted Rand index (:func:`sklearn.metrics.adjusted_rand_score`).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes.
    labels : array-like of shape (n_samples,) or (n_samples, K)
        Cluster labels, or probabilities whose row-wise argmax is the label.

    Returns
    -------
    ari : float
        1 for a perfect clustering up to relabelling, about 0 for a random one.

    Examples
    --------
    >>> from bayesgmm.metrics import adjusted_rand_index
    >>> adjusted_rand_index([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    """
    y_true, predictions = _check_targets(y_true, labels, "labels")
    labels = predictions.argmax(axis=1) if predictions.ndim == 2 else predictions
    return float(adjusted_rand_score(y_true, labels))


def mean_log_predictive_density(model: Any, X: ArrayLike,
                                sample_weight: ArrayLike | None = None) -> float:
    """The mean log density of ``X`` under a fitted model.

    Parameters
    ----------
    model : estimator with a ``score_samples`` method
        E.g. a fitted ``GaussianMixture``; ``score_samples(X)`` must return
        the log density of each row of ``X``.
    X : array-like of shape (n_samples, n_features)
        Points, typically held out from the fit.
    sample_weight : array-like of shape (n_samples,), optional
        Non-negative weights for a weighted mean; unit weights if None.

    Returns
    -------
    mean_log_density : float
        ``sum_n w_n log p(x_n) / sum_n w_n`` (nats per point).

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.metrics import mean_log_predictive_density
    >>> X = np.random.default_rng(0).normal(size=(500, 2))
    >>> model = GaussianMixture(1, random_state=0).fit(X[:400])
    >>> bool(-3.5 < mean_log_predictive_density(model, X[400:]) < -2.4)  # log N(0, I) is about -2.84
    True
    """
    if not callable(getattr(model, "score_samples", None)):
        raise TypeError(
            f"{type(model).__name__} has no score_samples method; pass a fitted model "
            "that returns per-sample log densities."
        )
    log_density = np.asarray(model.score_samples(X), dtype=float)
    if log_density.ndim != 1:
        raise ValueError(
            f"score_samples returned shape {log_density.shape}; expected (n_samples,)."
        )
    weights = check_sample_weight(sample_weight, log_density.shape[0], np.dtype(float))
    return float(np.average(log_density, weights=weights))
