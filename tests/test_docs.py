"""The documentation site covers what is registered: a page per method and a section per ranker, each in
the navigation (its build, `tox -e docs`, checks the links and renders the docstrings)."""

from pathlib import Path

from hubbench.methods import METHODS
from hubbench.rankers import RANKERS

ROOT = Path(__file__).resolve().parent.parent


def test_every_method_and_ranker_has_its_page_in_the_site():
    nav = (ROOT / "mkdocs.yml").read_text()
    builtin = [name for name in METHODS if METHODS.get(name).__module__.startswith("hubbench.methods.")]
    assert len(builtin) > 10  # not the plugins other tests register
    for name in builtin:
        page = ROOT / "docs" / "methods" / f"{name}.md"
        assert page.is_file() and f"methods/{name}.md" in nav, f"{name}: no docs/methods/{name}.md in the nav"
        assert f"members: [{METHODS.get(name).__qualname__}]" in page.read_text()
    rankers = (ROOT / "docs" / "rankers.md").read_text()
    assert all(f"members: [{cls.__qualname__}]" in rankers for cls in map(RANKERS.get, RANKERS)
               if cls.__module__.startswith("hubbench.rankers."))


def test_readme_is_a_front_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150 and "leaderboard/<suite>/index.html" in readme
