"""Every ```python example in README.md runs as written."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_examples():
    assert BLOCKS


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    # Run as a script would: examples that start worker processes guard with `if __name__ == "__main__"`.
    exec(compile(BLOCKS[index], f"README.md example {index}", "exec"), {"__name__": "__main__"})
