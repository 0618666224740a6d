"""A method defined outside the package runs through the same runner and reaches the leaderboard."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, hubbench, write_suite

EXAMPLE = ROOT / "examples" / "linear_probe.py"
EXAMPLE_TESTS = ROOT / "examples" / "test_linear_probe.py"


def test_the_docs_show_the_example_and_its_tests_from_their_files():
    """`tox -e docs` includes them (pymdownx.snippets, failing on a missing file): the page cannot drift."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "adding-a-method.md").read_text(), re.S)
    assert [b.strip() for b in blocks if "--8<--" in b] == [f'--8<-- "{p.relative_to(ROOT)}"' for p in
                                                             (EXAMPLE, EXAMPLE_TESTS)]


def test_the_example_runs_the_common_checks_in_its_own_tests(tmp_path):
    """As a plugin author would (two of its checks, to keep CI short: the common test runs them all)."""
    tests = [f"{EXAMPLE_TESTS}::test_hubbench_checks[{test}]" for test in
             ("linear_probe-check_describes_itself", "linear_probe[model=2]-check_cell[landmarks-bf16-channels_last]")]
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-3000:]


@pytest.mark.parametrize("how", ["plugin", "entry_point"])
def test_external_method_runs_and_reaches_the_leaderboard(how, tmp_path):
    env = dict(os.environ)
    args = []
    if how == "plugin":
        args = ["--plugin", str(EXAMPLE)]
    else:  # an installed distribution declaring the entry point
        site = tmp_path / "site"
        dist = site / "probe_plugin-0.1.dist-info"
        dist.mkdir(parents=True)
        (site / "probe_plugin.py").write_text(EXAMPLE.read_text())
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[hubbench.methods]\nlinear_probe = probe_plugin\n")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    assert "method linear_probe" in hubbench(*args, "list", "methods", env=env).stdout
    suite = write_suite(tmp_path, methods=("linear_probe", "linear_probe[model=1]"))
    results = tmp_path / "results"
    assert "2 ok" in hubbench(*args, "run", "--suite", str(suite), "--results", str(results), env=env).stdout
    hubbench("leaderboard", "--results", str(results), "--out", str(tmp_path / "lb"))
    readme = (tmp_path / "lb/tiny/README.md").read_text()
    assert "| linear_probe |" in readme and "| linear_probe[model=1] |" in readme
