"""Figures of fitted mixtures, with matplotlib (and ArviZ for posterior diagnostics).

* :func:`ellipses`: the components as 1- and 2-sigma ellipses over the data,
  coloured by predicted class (the first two principal axes when the data
  have more than two features).
* :func:`probability_map`: where the model is unsure of the class, i.e. the
  points near a boundary that the source document mentions.
* :func:`overview`: the two above side by side.
* :func:`criteria`: BIC, ICL or AIC against the number of components, a
  line per covariance type (mclust's ``plot(mclustBIC)``).
* :func:`two_rows`: the document's "two rows of data sets" with a fitted
  model and its accuracy on each panel.
* :func:`loo_comparison`, :func:`trace`, :func:`rank`, :func:`pair`,
  :func:`ppc`: the Bayesian fit's model comparison, diagnostics and posterior
  predictive check, drawn by ArviZ with the component dimension labelled
  (the last four defined in :mod:`bayesgmm._plot_arviz`).

Every function draws into the axes it is given (or new ones) and returns the
axes or the figure; none calls ``plt.show()``, so they work the same in
scripts, notebooks and on a headless server (``matplotlib.use("Agg")``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse
from numpy.typing import ArrayLike

from bayesgmm._plot_arviz import (
    pair,
    ppc,  # noqa: F401  public as bayesgmm.plot.ppc, though (as before the move) not in __all__
    rank,
    trace,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayesgmm.datasets import NamedDataset

__all__ = [
    "ellipses",
    "probability_map",
    "overview",
    "criteria",
    "two_rows",
    "loo_comparison",
    "trace",
    "rank",
    "pair",
]

# Points whose largest class probability is below this are drawn as uncertain.
UNCERTAIN_BELOW = 0.9
# Most (draw, point, component) probabilities held at once for credible intervals.
INTERVAL_ELEMENTS = 1 << 23
_LINESTYLES = ("-", "--", ":", "-.")


def component_color(k: int) -> tuple[float, float, float, float]:
    """The colour of component ``k`` in every figure (matplotlib's tab10 cycle)."""
    return plt.get_cmap("tab10")(k % 10)


# --------------------------------------------------------------------------
# Geometry: parameters of any covariance type, seen in a plane
# --------------------------------------------------------------------------


class _Plane:
    """The plane the data are drawn in: the features themselves for 2-D data,
    otherwise the first two principal axes of ``X``.

    Points map as ``(x - origin) @ basis.T`` and covariances as
    ``basis @ C @ basis.T``, so a projected ellipse is exactly the ellipse of
    the projected (marginal) Gaussian.
    """

    def __init__(self, X: np.ndarray, feature_names=None):
        n_features = X.shape[1]
        if n_features == 2:
            self.origin = np.zeros(2)
            self.basis = np.eye(2)
            names = list(feature_names) if feature_names is not None else ["feature 0", "feature 1"]
            self.labels = [str(name) for name in names]
            self.projected = False
        else:
            self.origin = X.mean(axis=0)
            _, singular_values, vt = np.linalg.svd(X - self.origin, full_matrices=False)
            self.basis = vt[:2]
            explained = singular_values**2 / np.sum(singular_values**2)
            self.labels = [f"principal axis {i + 1} ({100 * explained[i]:.0f}% of variance)" for i in range(2)]
            self.projected = True

    def points(self, X):
        return (np.asarray(X) - self.origin) @ self.basis.T

    def covariances(self, covariances):
        return self.basis @ covariances @ self.basis.T


def _check_X(X, model) -> np.ndarray:
    from bayesgmm._validation import check_array, check_n_features

    X = check_array(X, np.dtype(np.float64))
    n_features = getattr(model, "n_features_in_", None)
    if n_features is not None:
        check_n_features(X, n_features, type(model).__name__)
    return X


def _full_covariances(model) -> np.ndarray:
    """The covariances as (n_components, n_features, n_features) float64 matrices."""
    from bayesgmm.datasets import full_covariances

    if not hasattr(model, "means_") or not hasattr(model, "covariances_"):
        raise ValueError(
            f"{type(model).__name__} has no means_ and covariances_; pass a fitted mixture "
            "(call fit first)."
        )
    n_components, n_features = np.shape(model.means_)
    return full_covariances(
        np.asarray(model.covariances_, dtype=np.float64),
        getattr(model, "covariance_type", "full"),
        n_components,
        n_features,
    )


def _new_axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    return ax


def _add_ellipse(ax, mean, covariance, n_std, color, linestyle):
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    angle = np.degrees(np.arctan2(eigenvectors[1, -1], eigenvectors[0, -1]))
    patch = Ellipse(
        xy=mean,
        width=2.0 * n_std * np.sqrt(eigenvalues[-1]),
        height=2.0 * n_std * np.sqrt(eigenvalues[0]),
        angle=angle,
        fill=False,
        edgecolor=color,
        linewidth=2.0,
        linestyle=linestyle,
    )
    ax.add_patch(patch)
    return patch


def _draw_components(ax, model, plane: _Plane, n_std) -> None:
    means = plane.points(np.asarray(model.means_, dtype=np.float64))
    covariances = plane.covariances(_full_covariances(model))
    weights = np.asarray(model.weights_, dtype=np.float64)
    for k, (mean, covariance) in enumerate(zip(means, covariances)):
        for index, radius in enumerate(n_std):
            _add_ellipse(ax, mean, covariance, radius, component_color(k), _LINESTYLES[index % 4])
        ax.plot(*mean, marker="X", markersize=10, color=component_color(k),
                markeredgecolor="black", linestyle="none",
                label=f"component {k} (weight {weights[k]:.2f})")


# --------------------------------------------------------------------------
# Fitted mixture over data
# --------------------------------------------------------------------------


def ellipses(model: Any, X: ArrayLike, *, ax: Axes | None = None,
             n_std: Sequence[float] = (1.0, 2.0), feature_names: Sequence[str] | None = None,
             title: str | None = None) -> Axes:
    """The components as ellipses over the data, coloured by predicted class.

    Each component is drawn as the ellipses at ``n_std`` standard deviations
    (Mahalanobis radius) around its mean, which is marked with an X. Points
    take the colour of their most probable component. Data with more than two
    features are drawn in the plane of their first two principal axes, where
    each ellipse is that of the component's projected (marginal) Gaussian.

    Parameters
    ----------
    model : fitted GaussianMixture or BayesianGaussianMixture
        Needs ``means_``, ``covariances_``, ``weights_``, ``covariance_type``
        and ``predict``.
    X : array-like of shape (n_samples, n_features)
        The points to draw, with the features the model was fitted on
        (``n_features >= 2``).
    ax : matplotlib Axes, optional
        Where to draw; a new figure is made if None.
    n_std : sequence of float, default=(1.0, 2.0)
        Radii of the ellipses, in standard deviations.
    feature_names : sequence of 2 str, optional
        Axis labels for 2-D data.
    title : str, optional
        Defaults to the number of components and the covariance type.

    Returns
    -------
    ax : matplotlib Axes
        With one scatter collection of the points, ``len(n_std)`` ellipse
        patches per component and one mean marker line per component.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import document_data
    >>> XA, XB, yA, yB = document_data()
    >>> ax = ellipses(GaussianMixture(2, random_state=0).fit(XA), XB)
    >>> len(ax.patches)  # 2 components x (1 sigma, 2 sigma)
    4
    """
    X = _check_X(X, model)
    if X.shape[1] < 2:
        raise ValueError(
            "ellipses needs at least two features; for one feature plot a histogram "
            "of X against model.score_samples instead."
        )
    ax = _new_axes(ax)
    plane = _Plane(X, feature_names)
    points = plane.points(X)
    labels = np.asarray(model.predict(X))
    ax.scatter(points[:, 0], points[:, 1], c=[component_color(k) for k in labels],
               s=12, alpha=0.6, linewidths=0)
    _draw_components(ax, model, plane, tuple(n_std))
    ax.autoscale_view()
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])
    radii = " and ".join(f"{radius:g}" for radius in n_std)
    ax.set_title(title if title is not None else (
        f"{len(model.weights_)} components ({getattr(model, 'covariance_type', 'full')}), "
        f"{radii} sigma"
    ))
    ax.legend(loc="best", fontsize="small")
    return ax


def _uncertainty(model, points, kind: str):
    """Per-point value of the probability map and its colour-bar label."""
    if kind == "uncertainty":
        proba = np.asarray(model.predict_proba(points))
        return 1.0 - proba.max(axis=1), "1 - largest class probability"
    if kind == "interval":
        interval = getattr(model, "predict_proba_interval", None)
        if interval is None:
            raise ValueError(
                f"kind='interval' needs a Bayesian fit with credible intervals; "
                f"{type(model).__name__} has none. Use kind='uncertainty'."
            )
        # Every draw's probabilities of a chunk are held at once: bound the memory.
        n_draws = int(np.shape(getattr(model, "posterior_params_").weights)[0])
        chunk = max(1, INTERVAL_ELEMENTS // (n_draws * len(model.weights_)))
        widths = []
        for start in range(0, len(points), chunk):
            part = points[start:start + chunk]
            proba = np.asarray(model.predict_proba(part))
            lower, upper = (np.asarray(bound) for bound in interval(part))
            most_probable = proba.argmax(axis=1)[:, None]
            widths.append(np.take_along_axis(upper - lower, most_probable, axis=1)[:, 0])
        return np.concatenate(widths), "90% credible-interval width of the class probability"
    raise ValueError(f"kind must be 'uncertainty' or 'interval', got {kind!r}.")


def _colour_top(kind: str, n_components: int, values) -> float:
    """Top of the colour scale: the largest possible uncertainty, ``1 - 1/K``, so
    maps of different fits share a scale; for interval widths, the largest seen."""
    if kind == "uncertainty" and n_components > 1:
        return 1.0 - 1.0 / n_components
    return max(float(np.max(values)), 1e-3)


def probability_map(model: Any, X: ArrayLike, *, ax: Axes | None = None,
                    kind: str = "uncertainty", resolution: int = 120,
                    feature_names: Sequence[str] | None = None,
                    title: str | None = None) -> Axes:
    """Where the model is unsure of the class: the boundary points.

    For 2-D data the map covers the plane around the points; for more
    features each point is coloured in the plane of the first two principal
    axes. Points whose largest class probability is below 0.9 are ringed in
    red.

    Parameters
    ----------
    model : fitted GaussianMixture or BayesianGaussianMixture
    X : array-like of shape (n_samples, n_features)
        Points with the model's features (``n_features >= 2``).
    ax : matplotlib Axes, optional
    kind : {'uncertainty', 'interval'}, default='uncertainty'
        'uncertainty': ``1 - max_k p(k | x)``, zero where one class is
        certain, ``1 - 1/K`` where all are equally likely. 'interval' (a
        Bayesian fit): the width of the 90% credible interval of the
        probability of the most probable class, i.e. how unsure the
        posterior is about that probability.
    resolution : int, default=120
        Grid points per axis of the 2-D map.
    feature_names : sequence of 2 str, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
        With a filled contour set (2-D data) or a coloured scatter, a colour
        bar, the points, and the uncertain points ringed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from bayesgmm import GaussianMixture
    >>> from bayesgmm.datasets import document_data
    >>> XA, XB, yA, yB = document_data()
    >>> ax = probability_map(GaussianMixture(2, random_state=0).fit(XA), XB)
    >>> ax.get_title()
    'Uncertain points (largest probability < 0.9): 3 of 160'
    """
    X = _check_X(X, model)
    if X.shape[1] < 2:
        raise ValueError("probability_map needs at least two features.")
    ax = _new_axes(ax)
    plane = _Plane(X, feature_names)
    points = plane.points(X)
    values, label = _uncertainty(model, X, kind)
    if kind == "uncertainty":
        uncertain = values > 1.0 - UNCERTAIN_BELOW
    else:
        uncertain = 1.0 - np.asarray(model.predict_proba(X)).max(axis=1) > 1.0 - UNCERTAIN_BELOW
    if not plane.projected:
        low, high = points.min(axis=0), points.max(axis=0)
        margin = 0.1 * (high - low) + 1e-9
        grid_x, grid_y = np.meshgrid(
            np.linspace(low[0] - margin[0], high[0] + margin[0], resolution),
            np.linspace(low[1] - margin[1], high[1] + margin[1], resolution),
        )
        grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
        grid_values, _ = _uncertainty(model, grid, kind)
        top = _colour_top(kind, len(model.weights_), grid_values)
        mappable = ax.contourf(grid_x, grid_y, grid_values.reshape(grid_x.shape),
                               levels=np.linspace(0.0, top, 11), cmap="magma_r")
        ax.scatter(points[:, 0], points[:, 1], s=8, color="0.3", linewidths=0)
    else:
        top = _colour_top(kind, len(model.weights_), values)
        mappable = ax.scatter(points[:, 0], points[:, 1], c=values, s=14, cmap="magma_r",
                              vmin=0.0, vmax=top, linewidths=0)
    ax.scatter(points[uncertain, 0], points[uncertain, 1], s=60, facecolors="none",
               edgecolors="red", linewidths=1.2,
               label=f"largest probability < {UNCERTAIN_BELOW:g}")
    ax.figure.colorbar(mappable, ax=ax, label=label)
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])
    ax.set_title(title if title is not None else (
        f"Uncertain points (largest probability < {UNCERTAIN_BELOW:g}): "
        f"{int(uncertain.sum())} of {X.shape[0]}"
    ))
    ax.legend(loc="best", fontsize="small")
    return ax


def overview(model: Any, X: ArrayLike, *, kind: str = "uncertainty",
             feature_names: Sequence[str] | None = None,
             suptitle: str | None = None) -> Figure:
    """:func:`ellipses` and :func:`probability_map` side by side.

    Parameters
    ----------
    model : fitted GaussianMixture or BayesianGaussianMixture
    X : array-like of shape (n_samples, n_features)
    kind : {'uncertainty', 'interval'}, default='uncertainty'
        Passed to :func:`probability_map`.
    feature_names : sequence of 2 str, optional
    suptitle : str, optional

    Returns
    -------
    fig : matplotlib Figure
        With two axes (plus the colour bar's).
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained")
    ellipses(model, X, ax=left, feature_names=feature_names)
    probability_map(model, X, ax=right, kind=kind, feature_names=feature_names)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# --------------------------------------------------------------------------
# Model choice
# --------------------------------------------------------------------------


def criteria(n_components: Any, bic: Sequence[float] | None = None,
             aic: Sequence[float] | None = None, *, criterion: str = "bic",
             chosen: int | None = None, ax: Axes | None = None) -> Axes:
    """An information criterion against the number of components; lower is better.

    Given a fitted :class:`~bayesgmm.GaussianMixtureIC` (or its ``results_``),
    one line per covariance type, as mclust's ``plot(mclustBIC)`` draws them
    (in scikit-learn's sign): degenerate candidates are hollow markers off
    the line (mclust leaves them out), and the chosen one is ringed. Given
    arrays, BIC (and AIC) of one covariance type.

    Parameters
    ----------
    n_components : GaussianMixtureIC, dict, or array-like of int of shape (n_candidates,)
        A fitted model selection, its ``results_``, or the numbers of components.
    bic : array-like of shape (n_candidates,), optional
        With arrays: the BIC of each (required).
    aic : array-like of shape (n_candidates,), optional
        With arrays: the AIC of each.
    criterion : {'bic', 'icl', 'aic'}, default='bic'
        With a model selection: the criterion drawn.
    chosen : int, optional
        With arrays: the number of components to mark; the BIC minimum by default.
    ax : matplotlib Axes, optional

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> ax = criteria([1, 2, 3], [310.0, 250.0, 262.0], [300.0, 230.0, 231.0])
    >>> [line.get_label() for line in ax.get_lines()]
    ['BIC', 'AIC', 'chosen K = 2']
    """
    results = getattr(n_components, "results_", n_components)
    if isinstance(results, dict):
        return _criteria_grid(results, criterion, ax)
    n_components = np.asarray(n_components)
    if bic is None:
        raise ValueError("criteria needs bic with arrays of numbers of components.")
    bic = np.asarray(bic, dtype=float)
    if n_components.ndim != 1 or bic.shape != n_components.shape:
        raise ValueError(
            f"n_components and bic must be 1-D of the same length, got shapes "
            f"{n_components.shape} and {bic.shape}."
        )
    ax = _new_axes(ax)
    ax.plot(n_components, bic, marker="o", label="BIC")
    if aic is not None:
        aic = np.asarray(aic, dtype=float)
        if aic.shape != bic.shape:
            raise ValueError(f"aic must have the shape of bic {bic.shape}, got {aic.shape}.")
        ax.plot(n_components, aic, marker="s", label="AIC")
    if chosen is None:
        chosen = int(n_components[np.argmin(bic)])
    ax.axvline(chosen, color="0.4", linestyle=":", label=f"chosen K = {chosen}")
    ax.set_xticks(n_components)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("information criterion (lower is better)")
    ax.set_title("Choosing the number of components")
    ax.legend()
    return ax


def _criteria_grid(results: dict, criterion: str, ax) -> Axes:
    """:func:`criteria` of a ``GaussianMixtureIC.results_``: a line per covariance type."""
    if criterion not in ("bic", "icl", "aic"):
        raise ValueError(f"criterion must be 'bic', 'icl' or 'aic', got {criterion!r}.")
    names = np.asarray(results["param_covariance_type"])
    sizes = np.asarray(results["param_n_components"])
    values = np.asarray(results[criterion], dtype=float)
    degenerate = np.asarray(results["degenerate"], dtype=bool)
    ax = _new_axes(ax)
    markers = "osD^v<>ph*XP8dH"
    for index, name in enumerate(dict.fromkeys(names)):
        own = names == name
        sound = own & ~degenerate
        color = component_color(index)
        ax.plot(sizes[sound], values[sound], marker=markers[index % len(markers)],
                color=color, linestyle=_LINESTYLES[index % len(_LINESTYLES)], label=name)
        off = own & degenerate & np.isfinite(values)
        if off.any():
            ax.plot(sizes[off], values[off], marker=markers[index % len(markers)],
                    linestyle="none", markerfacecolor="none", color=color)
    chosen = int(np.argmin(results["rank"]))
    ax.plot([sizes[chosen]], [values[chosen]], marker="o", markersize=16, markerfacecolor="none",
            color="0.2", linestyle="none",
            label=f"chosen: {names[chosen]}, K = {sizes[chosen]}")
    if degenerate.any():
        ax.plot([], [], marker="o", markerfacecolor="none", color="0.5", linestyle="none",
                label="degenerate (not chosen)")
    ax.set_xticks(np.unique(sizes))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.set_title("Choosing the model")
    ax.legend(fontsize="small")
    return ax


def two_rows(datasets: Sequence[NamedDataset] | None = None, *, covariance_type: str = "full",
             random_state: int = 0) -> Figure:
    """The document's "two rows of data sets", each with a fitted mixture.

    Row 1 holds the data sets without gaps between the classes, row 2 those
    with gaps. Each panel shows a :class:`~bayesgmm.GaussianMixture` with as
    many components as classes, fitted to the panel's points, drawn as in
    :func:`ellipses`, and titled with the document's accuracy (mean
    probability of the true class, after aligning clusters to classes).

    Parameters
    ----------
    datasets : list of NamedDataset, optional
        Defaults to :func:`bayesgmm.datasets.two_rows` ``()``.
    covariance_type : str, default='full'
    random_state : int, default=0
        Seed of each fit.

    Returns
    -------
    fig : matplotlib Figure
        Two rows of panels; each panel's title ends with the accuracy.
    """
    from bayesgmm.datasets import two_rows as make_two_rows
    from bayesgmm.metrics import soft_accuracy
    from bayesgmm.mixture.estimator import GaussianMixture

    if datasets is None:
        datasets = make_two_rows()
    rows = [[d for d in datasets if not d.has_gaps], [d for d in datasets if d.has_gaps]]
    n_columns = max(len(row) for row in rows)
    fig, axes = plt.subplots(2, n_columns, figsize=(3.2 * n_columns, 6.6), layout="constrained",
                             squeeze=False)
    for row_index, row in enumerate(rows):
        for column_index in range(n_columns):
            ax = axes[row_index, column_index]
            if column_index >= len(row):
                ax.set_axis_off()
                continue
            dataset = row[column_index]
            n_classes = np.unique(dataset.y).size
            model = GaussianMixture(n_classes, covariance_type=covariance_type,
                                    random_state=random_state).fit(dataset.X)
            accuracy = soft_accuracy(dataset.y, model.predict_proba(dataset.X))
            ellipses(model, dataset.X, ax=ax, title=f"{dataset.name}\naccuracy {accuracy:.1f}%")
            ax.get_legend().remove()
            ax.set_xlabel("")
            ax.set_ylabel("with gaps" if dataset.has_gaps and column_index == 0 else
                          "without gaps" if column_index == 0 else "")
            ax.tick_params(labelsize="small")
    fig.suptitle("A Gaussian mixture does poorly without gaps between the classes (top) "
                 "and well with gaps (bottom)")
    return fig


# --------------------------------------------------------------------------
# Bayesian fits: ArviZ
# --------------------------------------------------------------------------


def loo_comparison(comparison: pd.DataFrame, *, ax: Axes | None = None,
                   **kwargs: Any) -> Axes:
    """ArviZ's plot of a LOO model comparison (e.g. fits with different K).

    Parameters
    ----------
    comparison : pandas.DataFrame
        The result of :func:`arviz.compare` on models named e.g. ``"K=2"``.
    ax : matplotlib Axes, optional
    **kwargs
        Passed to :func:`arviz.plot_compare`.

    Returns
    -------
    ax : matplotlib Axes
    """
    import arviz as az

    ax = _new_axes(ax)
    return az.plot_compare(comparison, ax=ax, **kwargs)
