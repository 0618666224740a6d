import pytest

from hubbench.registry import Registry, UnknownName, check_name


def test_register_and_get():
    reg = Registry("widget")
    reg.register("a")(int)
    assert reg.get("a") is int and "a" in reg and reg.names() == ["a"]


def test_unknown_name_lists_choices():
    reg = Registry("widget")
    reg.register("b")(str)
    reg.register("a")(int)
    with pytest.raises(UnknownName, match=r"unknown widget 'c' \(choose from: a, b\)"):
        reg.get("c")


def test_duplicate_registration_refused():
    reg = Registry("widget")
    reg.register("a")(int)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(str)


@pytest.mark.parametrize("bad", ["", "A", "../x", "a/b", "a b", "-a", None])
def test_unsafe_names_refused(bad):
    with pytest.raises(ValueError, match="invalid"):
        check_name("suite", bad)


def test_a_method_declares_a_known_role_by_member_or_by_value():
    from hubbench.methods.base import Method
    from hubbench.params import Role

    class Kind(Method):  # a kind of its own: these register nowhere else
        REGISTRY = Registry("thing")

        def fit(self, ctx):
            raise NotImplementedError

    class ByValue(Kind):
        name, description, role = "lpft", "linear probe, then fine-tune", "single-source"

    class Unknown(Kind):
        name, description, role = "odd", "a role of its own", "best"

    assert Kind.register(ByValue).role is Role.SINGLE_SOURCE
    with pytest.raises(ValueError, match=r"unknown role 'best' \(choose from: single-source, from-scratch, hub, oth"):
        Kind.register(Unknown)
