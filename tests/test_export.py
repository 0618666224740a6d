"""`hubbench export --tensorboard`: one run per ok record, read back with TensorBoard's own event reader."""

import pytest
from test_leaderboard import full, record, write

from hubbench.benchmark.cli import main

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                        reason="tensorboard is the `export` extra")


def test_export_writes_curves_metrics_and_hparams_per_cell(tmp_path, capsys):
    ok = full("shapes", "finetune[model=a]", 1, 60.0)
    ok["metrics"] = {"test": {"top1": 60.0}, "val": {"top1": 59.0}}
    ok["method"]["params"] = {"model": "a"}
    write(tmp_path / "r", [ok, record("shapes", "broken", 0, None, status="failed", reason="boom")])
    assert main(["export", "--tensorboard", str(tmp_path / "tb"), "--results", str(tmp_path / "r")]) == 0
    runs = sorted(p.relative_to(tmp_path / "tb").as_posix() for p in (tmp_path / "tb").glob("*/*/*/*/*"))
    assert runs == ["s/h/shapes/finetune@model=a/seed1"]  # the failed record has nothing to plot
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb" / runs[0]))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    # one tag per metric: its curve, the record's final value at the last iteration (val: 59, not the curve's 60)
    assert scalars == {"train/loss": [(10, 2.0), (20, 1.0)], "val/top1": [(10, 59.0), (20, 59.0)],
                       "test/top1": [(10, 61.0), (20, 60.0)]}
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hp = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in start.hparams.items()}
    assert hp["method"] == "finetune" and hp["param/model"] == "a" and hp["seed"] == 1
    assert hp["protocol/iterations"] == 20 and hp["protocol/lr"] == pytest.approx(0.1)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert sorted(m.name.tag for m in experiment.metric_infos) == ["test/top1", "val/top1"]
    # a second export into the same folder is refused, before writing anything
    assert main(["export", "--tensorboard", str(tmp_path / "tb"), "--results", str(tmp_path / "r")]) == 2
    assert "exists: export to a new folder" in capsys.readouterr().err
