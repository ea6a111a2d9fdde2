"""The documentation: the Sphinx API reference builds cleanly, and the README's examples run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def test_api_reference_builds_without_warnings(tmp_path):
    for module in ("sphinx", "numpydoc", "myst_parser"):
        pytest.importorskip(module, reason='the docs extra: pip install ".[docs]"')
    # A fresh environment (-E) so that every page is read again; -W makes any
    # warning (a docstring that does not render, a missing page) fail the build.
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr
    api = (tmp_path / "html" / "api.html").read_text()
    for name in ("GaussianMixture.fit", "BayesianGaussianMixture.predict_proba_interval",
                 "GaussianMixtureIC.fit",
                 "persistence.load", "datasets.document_data", "plot.overview"):
        assert f'id="bayesgmm.{name}"' in api


def test_every_example_has_its_page():
    included = re.findall(r"^\.\. literalinclude:: \.\./examples/(\S+\.py)$",
                          (ROOT / "docs" / "examples.rst").read_text(), flags=re.M)
    assert sorted(included) == sorted(path.name for path in (ROOT / "examples").glob("*.py"))


def test_readme_save_load_block_runs_on_its_own(tmp_path):
    (block,) = [code for code in _python_blocks((ROOT / "README.md").read_text())
                if "gmm.save(" in code]
    result = subprocess.run(
        [sys.executable, "-c", block], capture_output=True, text=True, timeout=300,
        cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "gmm.npz").stat().st_size > 0
    assert (tmp_path / "gmm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
