import os
import pathlib
import subprocess
import sys

import pytest

import recsample as rs


def test_version_and_all_names_import():
    assert isinstance(rs.__version__, str) and rs.__version__.count(".") >= 2
    for name in rs.__all__:
        assert hasattr(rs, name), name


def test_py_typed_ships():
    assert (pathlib.Path(rs.__file__).parent / "py.typed").exists()


def test_set_get_num_threads():
    rs.set_num_threads(3)
    assert rs.get_num_threads() == 3
    rs.set_num_threads(0)
    env = os.environ.get("RECSAMPLE_NUM_THREADS", "").strip()
    default = int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)
    assert rs.get_num_threads() == default
    with pytest.raises(ValueError, match="n"):
        rs.set_num_threads(-1)
    with pytest.raises(TypeError, match="n"):
        rs.set_num_threads(1.5)


def _threads_in_subprocess(value):
    env = dict(os.environ, RECSAMPLE_NUM_THREADS=value)
    return subprocess.run([sys.executable, "-c", "import recsample; print(recsample.get_num_threads())"],
                          env=env, capture_output=True, text=True)


def test_environment_variable_sets_default():
    r = _threads_in_subprocess("3")
    assert r.returncode == 0 and r.stdout.strip() == "3"
    # "0" means the default, all hardware threads (std::thread::hardware_concurrency, which counts
    # the same online CPUs as os.cpu_count; 1 if unknown).
    r = _threads_in_subprocess("0")
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == (os.cpu_count() or 1)


def test_bad_environment_variable_is_a_clear_error():
    r = _threads_in_subprocess("many")
    assert r.returncode != 0 and "RECSAMPLE_NUM_THREADS" in r.stderr
