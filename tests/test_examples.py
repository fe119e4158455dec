"""examples/ run as written, in their quick mode."""

import importlib.util
import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_torch_two_tower_runs_as_a_script():
    r = subprocess.run([sys.executable, str(EXAMPLES / "torch_two_tower.py"), "--quick"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "HR@10" in r.stdout.splitlines()[-1]


def test_torch_two_tower_learns():
    spec = importlib.util.spec_from_file_location("torch_two_tower", EXAMPLES / "torch_two_tower.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick"])
    assert out["loss_last"] < 0.9 * out["loss_first"]
    assert 0.0 <= out["hr@10"] <= 1.0
