"""The example plugin's own tests: hubbench's common checks of its method (pytest examples/test_linear_probe.py)."""

from linear_probe import LinearProbe

from hubbench.testing import parametrize_with_checks


@parametrize_with_checks([LinearProbe(), LinearProbe(model=2)])
def test_hubbench_checks(method, check):
    check(method)
