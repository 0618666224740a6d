"""A suite's protocol per task and task kind, and its search table: what they mean and every way to get them wrong
(one line, exit 2, nothing written, before any compute)."""

import pytest

from hubbench.benchmark.cli import main
from hubbench.benchmark.suites import Suite, SuiteError
from hubbench.search import Range

HEAD = 'description = "x"\nhubs = ["mini"]\ntasks = ["digits", "shapes", "faces"]\nmethods = ["scratch", "b_tuning"]\n'


def suite(tmp_path, text, name="s"):
    path = tmp_path / f"{name}.toml"
    path.write_text(HEAD + text)
    return Suite.load(str(path))


def test_per_task_and_per_kind_tables_override_the_suites_protocol(tmp_path):
    s = suite(tmp_path, "[protocol]\nlr = 0.05\niterations = 40\n[protocol.classification]\nlr = 0.1\n"
                        "[protocol.shapes]\nlr = 0.2\n[protocol.faces]\nlr = 0.01\nbatch_size = 16\n")
    assert [s.protocol_for(t).lr for t in ("digits", "shapes", "faces")] == [0.1, 0.2, 0.01]
    assert s.protocol_for("faces").batch_size == 16 and s.protocol_for("digits").batch_size == 32
    assert {s.protocol_for(t).iterations for t in s.tasks} == {40}
    assert s.recorded("shapes") == {"lr": 0.2, "iterations": 40}  # what the records state
    varied = s.overridden({"lr": 0.3})  # the command line has the last word, over every table
    assert varied.name == "s@lr=0.3" and {varied.protocol_for(t).lr for t in s.tasks} == {0.3}
    assert varied.protocol_for("faces").batch_size == 16


def test_a_search_applies_per_task_where_a_task_has_its_own(tmp_path):
    s = suite(tmp_path, "[protocol.search]\nlr = [0.01, 0.03, 0.1]\n[protocol.faces.search]\nlr = [0.003, 0.01]\n"
                        "pruner = \"none\"\n[protocol.search.b_tuning]\ntradeoff = [10, 100]\n")
    assert s.spaces["digits"].protocol == {"lr": (0.01, 0.03, 0.1)} and s.spaces["digits"].pruner == "halving"
    assert s.spaces["digits"].methods == {"b_tuning": {"tradeoff": (10.0, 100.0)}}  # typed as the field
    assert s.spaces["faces"].protocol == {"lr": (0.003, 0.01)} and s.spaces["faces"].rungs(300) == [300]
    assert s.recorded("faces")["search"] == {"lr": [0.003, 0.01], "pruner": "none"}
    space = s.spaces["digits"]
    assert space.applied(trains=True, method="b_tuning") == {"lr": (0.01, 0.03, 0.1),
                                                             "b_tuning.tradeoff": (10.0, 100.0)}
    assert space.applied(trains=False, method="soup") == {}  # nothing of its own to tune
    assert space.rungs(300) == [75, 225, 300] and space.round_sizes(6) == [6]


def test_a_grid_of_lists_names_its_trials_as_variants_are_named(tmp_path):
    from hubbench.search import grid, setting_id

    s = suite(tmp_path, "[protocol.search]\nmilestones = [[0.5, 0.9], [0.8]]\nnesterov = [true, false]\n")
    settings = grid(s.spaces["digits"].protocol)
    assert [setting_id(x) for x in settings] == [
        "milestones=0.5+0.9,nesterov=true", "milestones=0.5+0.9,nesterov=false", "milestones=0.8,nesterov=true",
        "milestones=0.8,nesterov=false"]


def test_a_sampler_takes_ranges_and_splits_its_budget_over_rounds(tmp_path):
    s = suite(tmp_path, '[protocol.search]\nsampler = "tpe"\ntrials = 7\nrounds = 2\n'
                        "lr = {low = 0.001, high = 0.1, log = true}\nweight_decay = [0, 5e-4]\n")
    space = s.spaces["shapes"]
    assert space.protocol["lr"] == Range(0.001, 0.1, True) and space.round_sizes(0) == [4, 3]


@pytest.mark.parametrize("text, message", [
    ("[protocol.nope]\nlr = 0.1\n", "protocol.nope: not a task or task kind of this suite, nor 'search' "
                                    "(choose from: search, digits, shapes, faces, classification, landmarks)"),
    ("[protocol.faces]\nlrr = 0.1\n", "protocol.faces: unknown protocol field 'lrr'"),
    ('[protocol.faces]\nlr = "fast"\n', "protocol.faces: protocol field 'lr' expects float"),
    ("[protocol.landmarks]\nlr = -1\n", "protocol.landmarks: protocol field 'lr' must be a positive number"),
    ("[protocol.faces.more]\nlr = 1\n", "protocol.faces.more: a task's table holds protocol fields and its 'search'"),
    ("[protocol.search]\n", "protocol.search declares no field to search"),
    ("[protocol.search]\nlr = 0.1\n", "protocol.search.lr must be a non-empty list of values"),
    ("[protocol.search]\nlr = []\n", "protocol.search.lr must be a non-empty list of values"),
    ("[protocol.search]\nlr = [0.1, 0.1]\n", "protocol.search.lr lists a value twice"),
    ("[protocol.search]\nlr = [0.1, -1]\n", "protocol.search.lr: protocol field 'lr' must be a positive number"),
    ('[protocol.search]\noptimizer = ["sgd", "adam"]\n', "protocol.search.optimizer: protocol field 'optimizer' "
                                                        "must be one of sgd, adamw"),
    ("[protocol.search]\nimage_size = [16, 32]\n", "protocol.search: unknown key 'image_size': a search tunes"),
    ("[protocol.search]\nlrr = [0.1]\n", "protocol.search: unknown key 'lrr'"),
    ("[protocol.search]\nlr = [0.1]\neta = 1\n", "protocol.search.eta must be at least 2, got 1"),
    ("[protocol.search]\nlr = [0.1]\nfirst_rung = 1.5\n", "protocol.search.first_rung must be a fraction"),
    ('[protocol.search]\nlr = [0.1]\nretrain = "all"\n', "protocol.search.retrain must be one of train, train+val"),
    ('[protocol.search]\nlr = [0.1]\nsampler = "tpe"\n', "protocol.search: sampler 'tpe' needs a trial budget "
                                                         "(trials = N)"),
    ('[protocol.search]\nlr = [0.1]\nsampler = "bayes"\ntrials = 3\n', "protocol.search.sampler must be one of"),
    ("[protocol.search]\nlr = [0.1]\ntrials = 3\n", "'trials' and 'rounds' go with a sampler"),
    ('[protocol.search]\nsampler = "random"\ntrials = 0\nlr = [0.1]\n', "protocol.search.trials must be a number of"),
    ("[protocol.search]\nlr = {low = 0.1, high = 1}\n", "protocol.search.lr: a range goes with a sampler"),
    ('[protocol.search]\nsampler = "random"\ntrials = 2\nlr = {low = 1, high = 0.1}\n', "needs low < high"),
    ('[protocol.search]\nsampler = "random"\ntrials = 2\nmilestones = [[0.5], [0.8]]\n', "a sampler chooses "
                                                                                      "numbers, booleans and names"),
    ("[protocol.search.b_tuning]\ntradeof = [1, 2]\n", "protocol.search.b_tuning: method 'b_tuning' has no "
                                                       "parameter 'tradeof'"),
    ('[protocol.search.b_tuning]\ntradeoff = ["x"]\n', "protocol.search.b_tuning.tradeoff: b_tuning "
                                                       "parameter 'tradeoff' expects float"),
    ("[protocol.search.distill]\ntemperature = [1, 2]\n", "protocol.search: unknown key 'distill'"),  # not in suite
    ("[protocol.faces.search]\nlr = [0]\n", "protocol.faces.search.lr: protocol field 'lr' must be a positive"),
])
def test_bad_protocol_tables_and_searches_are_one_line_exit_2_before_any_compute(text, message, tmp_path, capsys,
                                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text(HEAD + text)
    with pytest.raises(SuiteError, match="^invalid suite file .*bad.toml: "):
        Suite.load("bad.toml")
    assert main(["run", "--suite", "bad.toml", "--results", "r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hubbench: error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]
