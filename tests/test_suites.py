import pytest
from conftest import write_suite

from hubbench.benchmark.cells import expand
from hubbench.benchmark.suites import Suite, SuiteError, suite_names


@pytest.mark.parametrize("name", suite_names())
def test_bundled_suites_load(name):
    suite = Suite.load(name)
    assert suite.hubs and suite.tasks and suite.methods and suite.seeds


def test_mini_suite_has_three_seeds():
    assert len(Suite.load("mini").seeds) == 3


@pytest.mark.parametrize("name, hubs", [("smoke", {"mini", "mini-hetero"}), ("mini", {"mini"}),
                                        ("mini-hetero", {"mini-hetero"})])
def test_default_suites_run_every_builtin_method_on_the_mini_hubs_and_faces(name, hubs):
    from hubbench.methods import METHODS

    suite = Suite.load(name)
    builtin = {n for n in METHODS.names() if METHODS.get(n).__module__.startswith("hubbench.methods.")}
    assert set(suite.methods) == builtin
    assert set(suite.hubs) == hubs and "faces" in suite.tasks


def test_mini_hetero_is_the_mini_suite_on_the_other_hub():
    mini, hetero = Suite.load("mini"), Suite.load("mini-hetero")
    assert (hetero.tasks, hetero.methods, hetero.rankers, hetero.seeds, hetero.protocol) == (
        mini.tasks, mini.methods, mini.rankers, mini.seeds, mini.protocol)


@pytest.mark.parametrize("text, message", [
    ("hubs = [", "malformed suite file"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["scratch"]\ncolour = 1', "unknown key"),
    ('hubs = ["nope"]\ntasks = ["digits"]\nmethods = ["scratch"]', "unknown hub 'nope' (choose from:"),
    ('hubs = ["mini"]\ntasks = ["nope"]\nmethods = ["scratch"]', "unknown task 'nope'"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["scrach"]', "unknown method 'scrach'"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["finetune[x=1]"]', "has no parameter 'x'"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["scratch"]\nseeds = [1, 1]', "bad seed list"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["scratch"]\nseeds = [-1]', "bad seed list"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = []', "'methods' must be a non-empty list"),
    ('hubs = ["mini"]\ntasks = ["digits"]\nmethods = ["scratch"]\n[protocol]\nlr = "x"', "expects float"),
])
def test_invalid_suites_are_refused_with_reason(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SuiteError, match="^.*" + message.replace("(", r"\(").replace("[", r"\[")):
        Suite.load(str(path))


def test_expand_orders_cells_and_expands_finetune(tiny_hub, tmp_path):
    suite = Suite.load(str(write_suite(tmp_path, seeds=(0, 1))))
    cells = expand(suite)
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids)) == 2 * (1 + len(tiny_hub.sources) + 1)
    assert ids[0] == "tiny/digits/scratch/seed0" and ids[-1] == "tiny/digits/ensemble_i/seed1"
    only = expand(suite, methods=["finetune[model=selfsup]"], seeds=(1,))
    assert [c.id for c in only] == ["tiny/digits/finetune[model=selfsup]/seed1"]
