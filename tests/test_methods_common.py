"""Every registered method passes the public common checks (hubbench.testing), as a plugin's method would."""

from hubbench.testing import parametrize_with_checks, registered_methods


@parametrize_with_checks(registered_methods())
def test_common_checks(method, check):
    check(method)
