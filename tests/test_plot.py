"""Plots render on Agg, return their axes or figure, and hold the expected artists."""

import io

import matplotlib

matplotlib.use("Agg")

import arviz as az  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from bayesgmm import GaussianMixture, plot  # noqa: E402
from bayesgmm.datasets import document_data, two_rows  # noqa: E402


@pytest.fixture(autouse=True)
def no_show_and_close(monkeypatch):
    def show(*args, **kwargs):
        raise AssertionError("a plot function called plt.show()")

    monkeypatch.setattr(plt, "show", show)
    yield
    plt.close("all")


def _render(figure):
    """Draw to PNG bytes: every artist must be drawable."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def document():
    XA, XB, yA, yB = document_data()
    return GaussianMixture(2, random_state=0).fit(XA), XA, XB


@pytest.fixture(scope="module")
def blobs_4d():
    X, _ = make_blobs(n_samples=150, centers=3, n_features=4, random_state=1)
    return X


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_ellipses_one_and_two_sigma(covariance_type):
    XA, _, _, _ = document_data(n_samples=200)
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(XA)
    ax = plot.ellipses(model, XA)
    _render(ax.figure)
    patches = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(patches) == 4  # two components x (1 sigma, 2 sigma)
    assert len(ax.collections) == 1 and len(ax.collections[0].get_offsets()) == len(XA)
    assert len(ax.get_lines()) == 2  # one mean marker per component
    covariances = model.covariances_
    for k in range(2):
        if covariance_type == "full":
            matrix = covariances[k]
        elif covariance_type == "tied":
            matrix = covariances
        elif covariance_type == "diag":
            matrix = np.diag(covariances[k])
        else:
            matrix = covariances[k] * np.eye(2)
        axes = 2.0 * np.sqrt(np.linalg.eigvalsh(matrix))
        one, two = patches[2 * k], patches[2 * k + 1]
        np.testing.assert_allclose(sorted([one.width, one.height]), axes, rtol=1e-10)
        np.testing.assert_allclose(sorted([two.width, two.height]), 2 * axes, rtol=1e-10)
        np.testing.assert_allclose(one.center, model.means_[k])
        assert (one.get_linestyle(), two.get_linestyle()) == ("-", "--")
    # Points take the colour of their predicted component.
    colours = ax.collections[0].get_facecolors()[:, :3]
    expected = np.array([plot.component_color(k)[:3] for k in model.predict(XA)])
    np.testing.assert_allclose(colours, expected)


def test_ellipse_orientation_follows_the_covariance():
    rng = np.random.default_rng(0)
    X = rng.multivariate_normal([0, 0], [[4.0, 1.9], [1.9, 1.0]], size=400)
    model = GaussianMixture(1, random_state=0).fit(X)
    patch = plot.ellipses(model, X, n_std=(1.0,)).patches[0]
    eigenvalues, eigenvectors = np.linalg.eigh(model.covariances_[0])
    major = eigenvectors[:, -1]
    angle = np.radians(patch.angle)
    assert abs(abs(np.dot([np.cos(angle), np.sin(angle)], major)) - 1.0) < 1e-10
    assert patch.width == pytest.approx(2 * np.sqrt(eigenvalues[-1]))


def test_more_than_two_features_use_principal_axes(blobs_4d):
    model = GaussianMixture(3, random_state=0).fit(blobs_4d)
    ax = plot.ellipses(model, blobs_4d)
    assert ax.get_xlabel().startswith("principal axis 1 (") and "variance" in ax.get_ylabel()
    assert len(ax.patches) == 6
    # The means are drawn at their projections on the first two principal axes.
    centred = blobs_4d - blobs_4d.mean(axis=0)
    basis = np.linalg.svd(centred, full_matrices=False)[2][:2]
    projected = (model.means_ - blobs_4d.mean(axis=0)) @ basis.T
    drawn = np.array([line.get_xydata()[0] for line in ax.get_lines()])
    np.testing.assert_allclose(np.abs(drawn), np.abs(projected), rtol=1e-8)
    ax = plot.probability_map(model, blobs_4d)
    _render(ax.figure)
    assert ax.collections[0].get_array().shape == (150,)  # points coloured by uncertainty


def test_probability_map_marks_the_boundary(document):
    model, XA, XB = document
    ax = plot.probability_map(model, XB, resolution=40)
    _render(ax.figure)
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    uncertain = np.sum(model.predict_proba(XB).max(axis=1) < 0.9)
    assert ax.get_title() == f"Uncertain points (largest probability < 0.9): {uncertain} of 160"
    ringed = [c for c in ax.collections if c.get_label().startswith("largest probability")]
    assert len(ringed) == 1 and len(ringed[0].get_offsets()) == uncertain
    assert len(ax.figure.axes) == 2  # the map and its colour bar
    assert ax.figure.axes[1].get_ylabel() == "1 - largest class probability"


def test_probability_map_checks_its_input(document):
    model, XA, _ = document
    with pytest.raises(ValueError, match="kind='interval' needs a Bayesian fit"):
        plot.probability_map(model, XA, kind="interval")
    with pytest.raises(ValueError, match="kind must be"):
        plot.probability_map(model, XA, kind="entropy")
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2 features as input"):
        plot.ellipses(model, np.zeros((4, 3)))
    with pytest.raises(NotFittedError):
        plot.ellipses(GaussianMixture(2), XA)


def test_overview_and_given_axes(document):
    model, XA, XB = document
    fig = plot.overview(model, XB, feature_names=["a", "b"], suptitle="title")
    _render(fig)
    assert fig.axes[0].get_xlabel() == "a" and fig.get_suptitle() == "title"
    assert len(fig.axes) == 3  # ellipses, map, colour bar
    _, ax = plt.subplots()
    assert plot.ellipses(model, XB, ax=ax) is ax


def test_criteria_of_a_model_selection_draws_a_line_per_covariance_type():
    results = {
        "param_covariance_type": np.array(["full"] * 3 + ["diag"] * 3, dtype=object),
        "param_n_components": np.array([1, 2, 3] * 2),
        "bic": np.array([300.0, 250.0, 260.0, 310.0, 240.0, 255.0]),
        "icl": np.array([300.0, 270.0, 290.0, 310.0, 262.0, 280.0]),
        "aic": np.zeros(6),
        "degenerate": np.array([False, False, False, False, True, False]),
        "rank": np.array([5, 1, 3, 6, 4, 2]),
    }
    ax = plot.criteria(results)
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_array_equal(lines["full"].get_ydata(), [300.0, 250.0, 260.0])
    # The degenerate cell is left out of its line (drawn hollow on its own).
    np.testing.assert_array_equal(lines["diag"].get_ydata(), [310.0, 255.0])
    assert "chosen: full, K = 2" in lines
    assert "degenerate (not chosen)" in lines
    assert ax.get_ylabel() == "BIC (lower is better)"
    icl = plot.criteria(results, criterion="icl")
    assert icl.get_ylabel() == "ICL (lower is better)"
    with pytest.raises(ValueError, match="criterion must be 'bic', 'icl' or 'aic', got 'x'"):
        plot.criteria(results, criterion="x")
    plt.close("all")


def test_criteria_curve():
    ax = plot.criteria([1, 2, 3, 4], [300.0, 250.0, 255.0, 270.0], [290.0, 230.0, 228.0, 240.0])
    _render(ax.figure)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"BIC", "AIC", "chosen K = 2"}
    np.testing.assert_array_equal(lines["BIC"].get_ydata(), [300.0, 250.0, 255.0, 270.0])
    assert plot.criteria([1, 2], [3.0, 4.0], chosen=2).get_lines()[-1].get_label() == "chosen K = 2"
    with pytest.raises(ValueError, match="same length"):
        plot.criteria([1, 2], [1.0])


def test_two_rows_figure():
    datasets = two_rows(n_samples=60)
    fig = plot.two_rows(datasets)
    _render(fig)
    panels = fig.axes
    assert len(panels) == 8
    for ax, dataset in zip(panels, datasets):
        name, accuracy = ax.get_title().split("\n")
        assert name == dataset.name and accuracy.startswith("accuracy ")
        assert float(accuracy.split()[1].rstrip("%")) >= 50.0
        assert len([p for p in ax.patches if isinstance(p, Ellipse)]) == 2 * len(set(dataset.y))
    assert panels[0].get_ylabel() == "without gaps" and panels[4].get_ylabel() == "with gaps"


# ------------------------------------------------------------------ ArviZ


@pytest.fixture(scope="module")
def posterior():
    """A small InferenceData shaped like a mixture posterior (component dimension)."""
    rng = np.random.default_rng(0)
    chains, draws = 2, 30

    def idata(shift):
        return az.from_dict(
            posterior={
                "weights": rng.dirichlet([5.0, 5.0], size=(chains, draws)),
                "means": rng.normal(shift, 0.1, size=(chains, draws, 2, 2)),
            },
            log_likelihood={"obs": rng.normal(-2.0 - shift, 0.1, size=(chains, draws, 20))},
            sample_stats={"diverging": np.zeros((chains, draws), dtype=bool)},
            dims={"weights": ["component"], "means": ["component", "feature"]},
        )

    return idata(0.0), idata(0.5)


def test_trace_labels_the_component(posterior):
    axes = plot.trace(posterior[0], var_names=["weights"])
    _render(axes.ravel()[0].figure)
    assert axes.shape == (1, 2)
    legends = [ax.get_legend() for ax in axes.ravel() if ax.get_legend() is not None]
    assert "component" in [legend.get_title().get_text() for legend in legends]


def test_rank_and_pair_titles_name_the_component(posterior):
    axes = plot.rank(posterior[0], var_names=["weights"])
    assert [ax.get_title() for ax in np.ravel(axes)] == ["weights\ncomponent: 0",
                                                           "weights\ncomponent: 1"]
    axes = plot.pair(posterior[0], var_names=["means"], coords={"feature": [0]})
    _render(np.ravel(axes)[0].figure)
    (ax,) = np.ravel(axes)
    assert ax.get_xlabel() == "means\ncomponent: 0, feature: 0"
    assert ax.get_ylabel() == "means\ncomponent: 1, feature: 0"


def test_loo_comparison(posterior):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PSIS warnings on this synthetic posterior
        comparison = az.compare({"K=2": posterior[0], "K=3": posterior[1]})
    ax = plot.loo_comparison(comparison)
    _render(ax.figure)
    assert "K=2" in [label.get_text() for label in ax.get_yticklabels()]


def test_arviz_plots_need_a_posterior(document):
    with pytest.raises(ValueError, match="has no posterior draws"):
        plot.trace(document[0])


# ------------------------------------------------------------ a real Bayesian fit


def test_bayesian_ellipses_and_interval_map(tiny_nuts_fit):
    model, X = tiny_nuts_fit
    ax = plot.ellipses(model, X)
    assert len(ax.patches) == 4
    ax = plot.probability_map(model, X, kind="interval", resolution=20)
    _render(ax.figure)
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    colour_bar = ax.figure.axes[1]
    assert colour_bar.get_ylabel() == "90% credible-interval width of the class probability"


def test_bayesian_interval_map_in_chunks(tiny_nuts_fit, monkeypatch):
    model, X = tiny_nuts_fit
    expected = plot._uncertainty(model, X, "interval")[0]
    monkeypatch.setattr(plot, "INTERVAL_ELEMENTS", 7 * 40 * 2)  # 7 points per chunk
    np.testing.assert_allclose(plot._uncertainty(model, X, "interval")[0], expected, rtol=1e-12,
                               atol=1e-15)


def test_diagnostics_of_a_real_fit(tiny_nuts_fit):
    model, _ = tiny_nuts_fit
    axes = plot.trace(model, var_names=["weights"])
    _render(axes.ravel()[0].figure)
    legends = [ax.get_legend() for ax in axes.ravel() if ax.get_legend() is not None]
    assert "component" in [legend.get_title().get_text() for legend in legends]
    axes = plot.rank(model, var_names=["weights"])
    assert np.ravel(axes)[0].get_title() == "weights\ncomponent: 0"
    axes = plot.pair(model, var_names=["weights"])
    _render(np.ravel(axes)[0].figure)


def test_readme_picture_script(tmp_path, capsys):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "plot_document_example.py"
    main = runpy.run_path(str(script))["main"]
    output = main(tmp_path / "picture.png")
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Accuracy = 97.66%" in capsys.readouterr().out
