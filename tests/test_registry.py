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
