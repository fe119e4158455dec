"""The package's annotations type-check (py.typed promises them to users), and the extension's stub
is the one pybind11-stubgen generates from the built module."""

import pathlib
import subprocess
import sys

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "python" / "recsample"


def test_mypy_clean():
    r = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-incremental", str(SOURCE)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


# The maintenance command that writes python/recsample/_core.pyi from the installed build (README,
# "Where things are"); pinned in the test extra so the output is reproducible.
STUBGEN = ["-m", "pybind11_stubgen", "recsample._core", "--numpy-array-use-type-var"]


def test_core_stub_is_the_generated_one(tmp_path):
    r = subprocess.run([sys.executable, *STUBGEN, "-o", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    generated = (tmp_path / "recsample" / "_core.pyi").read_text()
    checked_in = (SOURCE / "_core.pyi").read_text()
    assert generated == checked_in, (
        "python/recsample/_core.pyi is out of date: rebuild, then run "
        f"`python {' '.join(STUBGEN)} -o python`")
