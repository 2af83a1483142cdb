"""The distribution: metadata, fast start-up, command lines."""

import subprocess
import sys
import time

import pytest

import atomseg
import tomocnn


@pytest.mark.parametrize("pkg", ["tomocnn", "atomseg"])
def test_import_does_not_load_heavy_dependencies(pkg):
    code = f"import sys, {pkg}; print(any(m in sys.modules for m in ('torch', 'astra')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("pkg", ["tomocnn", "atomseg"])
@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_cli_answers_fast(pkg, flag):
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", pkg, flag], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr
    assert pkg in out.stdout
    assert elapsed < 3.0  # includes interpreter start-up; the target is well under a second


def test_one_version_for_both_packages():
    assert tomocnn.__version__ == atomseg.__version__
    assert tomocnn.__version__ != "0+unknown"


def test_atomseg_does_not_import_tomocnn():
    code = "import sys, atomseg.cli; print('tomocnn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("pkg", [tomocnn, atomseg])
def test_unknown_attribute_is_an_attribute_error(pkg):
    with pytest.raises(AttributeError, match="no attribute"):
        pkg.does_not_exist  # noqa: B018
