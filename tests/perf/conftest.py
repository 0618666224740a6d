import pytest

from hubbench.io import cache_dir


@pytest.fixture(scope="session")
def cache():
    """The user's cache instead of the test suite's throw-away one: the mini hubs are built there already
    (minutes each to rebuild), and the benchmarks' two-iteration protocol keys its artifacts apart from real runs'."""
    return cache_dir()
