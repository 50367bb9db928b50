"""The package as a user installs it, not as this checkout runs it (a review of packaging): package
data, the version, the extras named where they are missing, the bench without a checkout."""

from __future__ import annotations

import fnmatch
import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import labeltrace
from labeltrace.bench import PACKAGED, config_path
from labeltrace.bench.config import load_config
from labeltrace.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_file_of_the_package_that_is_not_python_is_declared_package_data() -> None:
    """A data file left out of package-data is in this checkout (an editable install) and missing
    from the wheel: the review page, the report's CSS, the packaged bench grid, py.typed."""
    globs = PYPROJECT["tool"]["setuptools"]["package-data"]
    src = ROOT / "src"
    data = [p for p in (src / "labeltrace").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
            and "__pycache__" not in p.parts]  # fmt: skip
    assert {p.name for p in data} >= {"py.typed", "index.html", "review.js", "review.css", "report.css", "digits.toml"}

    def declared(p: Path) -> bool:
        for package, patterns in globs.items():
            base = src.joinpath(*package.split("."))
            if base in p.parents and any(fnmatch.fnmatch(str(p.relative_to(base)), g) for g in patterns):
                return True
        return False

    assert [str(p.relative_to(src)) for p in data if not declared(p)] == []


def test_one_version() -> None:
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "labeltrace.__version__"}
    assert importlib.metadata.version("labeltrace") == labeltrace.__version__
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License\n")


@pytest.mark.parametrize(("module", "missing", "extra"), [
    ("labeltrace.integrations.lightning", "lightning", "lightning"),
    ("labeltrace.integrations.hf", "transformers", "hf-trainer"),
])
def test_an_integration_without_its_package_names_its_extra(module: str, missing: str, extra: str) -> None:
    """`import labeltrace.integrations.lightning` without Lightning was a bare ModuleNotFoundError."""
    code = f"import sys\nsys.modules[{missing!r}] = None\nimport {module}"
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stderr
    assert f"ImportError: {module} needs " in err and f"pip install 'labeltrace[{extra}]'" in err


def test_a_detector_without_its_package_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """--detector cleanlab without cleanlab claimed the folder first: the next scan there was told to
    resume a scan that could never run, or to pass --force."""
    monkeypatch.setitem(sys.modules, "cleanlab", None)
    out = tmp_path / "run"
    assert main(["scan", "--example", "digits", "--detector", "cleanlab", "--out", str(out)]) == 2
    assert "detector 'cleanlab' needs the cleanlab package (pip install 'labeltrace[bench]')" in capsys.readouterr().err
    assert not out.exists()


def test_the_bench_outside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`labeltrace bench --quick` read benchmarks/configs/default.toml from the current folder: installed,
    it could only fail ('not found')."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"no --config given, and benchmarks/configs/default.toml \(the grid of a "
                       r"labeltrace checkout\) is not in this folder: pass --config FILE, or --config digits"):
        config_path(None)
    assert config_path("digits") == PACKAGED / "digits.toml"
    (tmp_path / "digits").mkdir()  # a path of that name is the user's, not the packaged grid
    assert config_path("digits") == Path("digits")
    cfg = load_config(PACKAGED / "digits.toml", quick=True)
    assert [d.source for d in cfg.datasets] == ["digits"] and cfg.seeds == (0,)
