"""Your own data and models without Python: tasks from folders and CSV files, hubs of torchvision, timm and
checkpoint sources, declared in TOML, through the runner, profiler, leaderboard and `hubbench rank`."""

import json
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hubbench import record as records
from hubbench.benchmark.cli import main
from hubbench.benchmark.declarations import declare, gather, read
from hubbench.benchmark.suites import Suite
from hubbench.hubs.base import get_hub, made_hub
from hubbench.hubs.checkpoints import BadCheckpoint
from hubbench.methods import METHODS
from hubbench.rankers import RANKERS
from hubbench.tasks import TASKS
from hubbench.tasks.paper_cls import PAPER_PROTOCOL

TINY = {"image_size": 32, "resize": 36, "batch_size": 4, "iterations": 2, "eval_every": 0, "eval_batch_size": 8,
        "checkpoint_every": 2, "test_views": 1}
COLOURS = {"cat": (200, 30, 30), "dog": (30, 200, 30), "owl": (30, 30, 200)}


def picture(path: Path, colour, side: int = 40, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(0, 60, (side, side, 3))
    Image.fromarray((noise + np.array(colour)).clip(0, 255).astype(np.uint8)).save(path)


def write_data(root: Path) -> None:
    """A one-split class folder, CSV splits of path,label lines, landmark CSVs with boxes."""
    for label, colour in COLOURS.items():
        for i in range(7):
            picture(root / "pets" / label / f"{i}.png", colour, seed=i)
    for split in ("train", "test"):
        rows = ["path,label"]
        for label in ("a", "b"):
            for i in range(5):
                picture(root / "csv" / split / f"{label}{i}.jpg", COLOURS["cat" if label == "a" else "dog"], seed=i)
                rows.append(f"{split}/{label}{i}.jpg,{label}")
        (root / "csv" / f"{split}.csv").write_text("\n".join(rows) + "\n")
        rng, rows = np.random.default_rng(len(split)), []
        for i in range(10 if split == "train" else 4):
            picture(root / "faces" / split / f"{i}.png", (120, 120, 120), 48, seed=i)
            points = ",".join(f"{v:.1f}" for v in rng.uniform(10, 38, 6))
            rows.append(f"{split}/{i}.png,{points},4,4,44,44")
        (root / "faces" / f"{split}.csv").write_text("\n".join(rows) + "\n")


def tasks_toml(prefix: str) -> str:
    return f"""
[task.{prefix}-pets]
folder = "pets"
[task.{prefix}-csv]
train = "csv/train.csv"
test = "csv/test.csv"
[task.{prefix}-abc]
train = "csv/train.csv"
test = "csv/test.csv"
classes = ["a", "b", "c"]
[task.{prefix}-faces]
kind = "landmarks"
train = "faces/train.csv"
test = "faces/test.csv"
points = 3
mirror = [[0, 1]]
normaliser = "box"
frame = 32
"""


def save_checkpoint(path: Path, arch: str, prefix: str, seed: int) -> None:
    """A whole torchvision model's state, its keys under `prefix` (as a DataParallel training script saves it)."""
    import torchvision

    torch.manual_seed(seed)
    state = torchvision.models.get_model(arch, weights=None).state_dict()
    torch.save({f"{prefix}{k}": v for k, v in state.items()}, path)


def suite_toml(hub: str, tasks: list[str], methods: list[str], rankers: list[str]) -> str:
    protocol = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    return (f'include = ["data.toml"]\nhubs = ["{hub}"]\ntasks = {json.dumps(tasks)}\nmethods = {json.dumps(methods)}\n'
            f"rankers = {json.dumps(rankers)}\n[protocol]\n{protocol}\n")


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A folder of data and a unique name prefix (registries are per process); real weights unless a test
    sets HUBBENCH_RANDOM_WEIGHTS, and no published weights on this machine (whatever its caches hold)."""
    monkeypatch.delenv("HUBBENCH_RANDOM_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    monkeypatch.setenv("HUBBENCH_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    made_hub.cache_clear()
    write_data(tmp_path)
    return tmp_path, "t" + uuid.uuid4().hex[:8]


def run_suite(root: Path, suite: str, *extra: str) -> list:
    (root / "suite.toml").write_text(suite)
    assert main(["run", "--suite", str(root / "suite.toml"), "--results", str(root / "results"), "--device", "cpu",
                 *extra]) == 0
    return [records.read(p, records.RankingRecord if "/rank/" in p.as_posix() else records.Record)
            for p in sorted((root / "results").rglob("seed0.json"))]


def assert_ok_or_inapplicable(found: list) -> None:
    for r in found:
        assert r.status in (records.OK, records.INAPPLICABLE), (r.hub, r.task, r.status, r.reason)
        if r.status == records.INAPPLICABLE:
            assert r.reason
        elif isinstance(r, records.Record):
            assert r.complexity is not None and r.complexity.params.total > 0
            assert np.isfinite(r.metric.value)


def test_every_method_and_ranker_on_checkpoint_sources_and_declared_tasks(fresh, tmp_path):
    """Two resnet18 checkpoint files saved with key prefixes (a homogeneous hub: Zoo-Tuning and soups apply), a
    folder task and a landmark task, every method and ranker, through the runner, profiler and leaderboard."""
    root, p = fresh
    save_checkpoint(root / "a.pth", "resnet18", "module.", 1)
    save_checkpoint(root / "b.pt", "resnet18", "backbone.", 2)
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-ckpt]
sources = [
  {{ name = "a", model = "torchvision:resnet18", checkpoint = "a.pth", prefix = "module.", classifier = true }},
  {{ name = "b", model = "torchvision:resnet18", checkpoint = "b.pt", prefix = "backbone." }},
]
""")
    found = run_suite(root, suite_toml(f"{p}-ckpt", [f"{p}-pets", f"{p}-faces"], METHODS.names(), RANKERS.names()))
    assert_ok_or_inapplicable(found)
    ok = {(r.task, r.method.name) for r in found if isinstance(r, records.Record) and r.status == records.OK}
    for method in ("finetune", "ensemble_i", "zoo_tuning", "hub_pathway", "soup", "kflow", "b_tuning"):
        assert (f"{p}-pets", method) in ok
    pets = [r for r in found if r.task == f"{p}-pets" and isinstance(r, records.Record)]
    assert pets[0].config.task["declared"]["split_made"] == ["val", "test"]
    leep = next(r for r in found if r.task == f"{p}-pets" and isinstance(r, records.RankingRecord)
                and r.ranker.name == "leep")
    assert set(leep.scores) == {"a"} and "no image classifier" in leep.reasons["b"]  # b's file: a backbone
    assert main(["leaderboard", "--suite", str(root / "suite.toml"), "--results", str(root / "results"),
                 "--out", str(root / "board")]) == 0
    assert (root / "board" / "suite" / "results.csv").is_file()


def test_backbone_is_the_last_feature_map_holding_the_checkpoint(fresh):
    root, p = fresh
    save_checkpoint(root / "a.pth", "resnet18", "module.", 1)
    (root / "data.toml").write_text(f"""
[hub.{p}-ckpt]
sources = [{{ name = "a", model = "torchvision:resnet18", checkpoint = "a.pth", prefix = "module." }}]
""")
    declare(gather(read(root / "data.toml"), root))
    backbone = get_hub(f"{p}-ckpt").source("a").backbone()
    assert backbone(torch.zeros(1, 3, 64, 64)).shape == (1, 512, 2, 2) and backbone.out_channels == 512  # layer4's
    state = torch.load(root / "a.pth", weights_only=True)
    assert torch.equal(backbone.state_dict()["layer4.1.conv2.weight"], state["module.layer4.1.conv2.weight"])


def test_one_folder_is_split_per_class(fresh):
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p))
    declare(gather(read(root / "data.toml"), root))
    splits = TASKS.get(f"{p}-pets")().splits
    for name, per_class in (("train", 5), ("val", 1), ("test", 1)):  # 7 images per class, 70 / 15 / 15
        assert splits[name].targets.bincount().tolist() == [per_class] * 3, name
    assert not set(splits["train"].items) & set(splits["val"].items + splits["test"].items)


def test_a_declared_task_gets_a_protocol_sized_to_its_data_stated_in_its_records(fresh):
    """40-px images, 15 training images (70% of 7 per class, 3 classes): image_size 40 (their median side), the
    papers' squash ratio, a batch of at most a quarter of the training set (8 at least), 10 epochs but 50 steps at
    least, five evaluations, one test view; the rest is the papers' recipe."""
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p))
    declare(gather(read(root / "data.toml"), root))
    cls = TASKS.get(f"{p}-pets")
    expected = PAPER_PROTOCOL.replace(image_size=40, resize=46, batch_size=8, iterations=50, eval_every=10,
                                      checkpoint_every=10, eval_batch_size=32, test_views=1)
    assert cls.protocol == expected and cls().protocol == expected
    assert cls().config()["protocol_sized_to"] == {"from": "15 training images, median side 40 px",
                                                   "train_images": 15, "side": 40, "sampled": 15, "epochs": 26.7}
    assert cls.review(expected)[0].startswith("protocol sized to its data (15 training images, median side 40 px)")


def test_a_crop_of_a_small_fraction_is_refused_and_an_image_size_far_above_the_datas_is_warned(fresh, capsys):
    """The issue's case: image_size 32 under the papers' 256-px squash tests on 1.6% of each image; refused, with the
    fix. 128 px from 40-px images: warned, with the fix (it is not wrong: ImageNet weights may like it)."""
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [{{ name = "r18", model = "torchvision:resnet18", weights = "DEFAULT" }}]
""")
    (root / "suite.toml").write_text(f'include = ["data.toml"]\nhubs = ["{p}-tv"]\ntasks = ["{p}-pets"]\n'
                                     'methods = ["finetune"]\n')
    run = ["run", "--suite", str(root / "suite.toml"), "--results", str(root / "results"), "--random-weights",
           "--dry-run"]
    assert main([*run, "--set", "image_size=32", "--set", "resize=256"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"task '{p}-pets': image_size 32 keeps 1.6% of the images, a centre crop of " \
        "their 256-px squash: set resize with it, e.g. --set resize=37 (the papers' ratio) or 0 (no squash)" in err
    assert main([*run, "--set", "image_size=128", "--set", "resize=146"]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warning == [f"{p}-pets: warning: image_size 128 is 3.2x the images' median side (40 px): each step costs "
                       "10x the pixels of their size for no more detail; --set image_size=40 --set resize=46 trains at "
                       "their size"]
    assert not (root / "results").exists()


def write_faces(root: Path, side: int, counts=(60, 20)) -> None:
    """The mini suite's synthetic 12-point faces as files of `side` px, and a CSV of their points per split."""
    from hubbench.synthetic import Canvas
    from hubbench.tasks.faces import draw_face

    rng = np.random.default_rng(side)
    for split, n in zip(("train", "test"), counts, strict=True):
        (root / "small" / split).mkdir(parents=True)
        rows = []
        for i in range(n):
            canvas = Canvas(side, rng)
            points = draw_face(canvas) - 0.5  # continuous pixels -> pixel indices
            Image.fromarray(canvas.finish().transpose(1, 2, 0)).save(root / "small" / split / f"{i}.png")
            rows.append(f"{split}/{i}.png," + ",".join(f"{v:.2f}" for v in points.ravel()))
        (root / "small" / f"{split}.csv").write_text("\n".join(rows) + "\n")


def test_a_landmark_task_of_small_faces_trains_at_its_derived_protocol(fresh, monkeypatch, capsys):
    """48-px images (faces of about 27 px): frame and image size 32 from the faces' crops, the papers' lr, 50 steps;
    the fine-tune's loss falls and it ends with a finite NME (the issue's landmark cells diverged at a
    classification suite's protocol)."""
    root, p = fresh
    write_faces(root, 48)
    (root / "data.toml").write_text(f"""
[task.{p}-small]
kind = "landmarks"
train = "small/train.csv"
test = "small/test.csv"
points = 12
mirror = [[0, 3], [1, 2], [4, 5], [7, 8]]
normaliser = [0, 3]
[hub.{p}-r18]
sources = [{{ name = "r18", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" }}]
""")
    (root / "suite.toml").write_text(f'include = ["data.toml"]\nhubs = ["{p}-r18"]\ntasks = ["{p}-small"]\n'
                                     'methods = ["finetune"]\n')
    assert main(["run", "--suite", str(root / "suite.toml"), "--results", str(root / "results"), "--device", "cpu",
                 "--random-weights"]) == 0
    assert "protocol sized to its data (54 training faces, median crop side 27 px): image_size 32, batch 13, 50 " \
           "iterations" in capsys.readouterr().err
    r = records.read(next((root / "results").rglob("seed0.json")))
    assert r.status == records.OK and np.isfinite(r.metric.value), r.reason
    assert r.config.task["protocol"]["lr"] == 0.01 and r.config.task["protocol_sized_to"]["frame"] == 32
    loss = [v for _, v in r.curves["train_loss"]]
    assert loss[-1] < loss[0]


def test_a_suite_unpickled_in_a_fresh_process_declares_its_hubs_and_tasks(fresh):
    """What a worker process or a cluster job gets: the pickled suite of its cells, and nothing registered."""
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [{{ name = "r18", model = "torchvision:resnet18", weights = "DEFAULT" }}]
""")
    (root / "suite.toml").write_text(suite_toml(f"{p}-tv", [f"{p}-pets"], ["finetune"], []))
    (root / "suite.pkl").write_bytes(pickle.dumps(Suite.load(str(root / "suite.toml"))))
    code = ("import pickle, sys; from hubbench.hubs import get_hub; from hubbench.tasks import TASKS; "
            "suite = pickle.load(open(sys.argv[1], 'rb')); "
            "print(get_hub(suite.hubs[0]).names, TASKS.get(suite.tasks[0])().num_classes)")
    out = subprocess.run([sys.executable, "-c", code, str(root / "suite.pkl")], capture_output=True, text=True,
                         cwd="/", check=True).stdout
    assert out.split() == ["['r18']", "3"]


def test_torchvision_hub_random_weights_heterogeneous(fresh, monkeypatch):
    """torchvision sources of two families with --random-weights on a CSV task: Zoo-Tuning and soups say why not;
    LEEP reads the models' own classifiers."""
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [
  {{ name = "r18", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" }},
  {{ name = "mnv3", model = "torchvision:mobilenet_v3_small", weights = "DEFAULT" }},
]
""")
    found = run_suite(root, suite_toml(f"{p}-tv", [f"{p}-csv"], ["finetune", "ensemble_i", "zoo_tuning", "soup",
                                                                 "hub_pathway"], ["logme", "leep"]),
                      "--random-weights")
    assert_ok_or_inapplicable(found)
    status = {r.method.name if isinstance(r, records.Record) else r.ranker.name: r.status for r in found}
    assert status["zoo_tuning"] == status["soup"] == records.INAPPLICABLE
    assert status["hub_pathway"] == status["logme"] == status["leep"] == records.OK  # torchvision's classifiers
    assert found[0].config.hub["config"]["weights"] == {"r18": "random", "mnv3": "random"}


def test_random_weights_stand_in_only_for_sources_whose_weights_are_missing(fresh, monkeypatch, capsys):
    """A checkpoint file beside a torchvision source whose weights are not here: --random-weights keeps the file's
    weights (and checks its keys) and gives the other source seeded random ones; the record says which is which."""
    root, p = fresh
    save_checkpoint(root / "a.pth", "resnet18", "module.", 1)
    (root / "data.toml").write_text(f"""
[hub.{p}-mixed]
sources = [
  {{ name = "mine", model = "torchvision:resnet18", checkpoint = "a.pth", prefix = "module." }},
  {{ name = "tv", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" }},
]
""")
    monkeypatch.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")
    declare(gather(read(root / "data.toml"), root))
    hub = get_hub(f"{p}-mixed")
    assert hub.config["weights"] == {"mine": "pretrained", "tv": "random"}
    state = torch.load(root / "a.pth", weights_only=True)
    assert torch.equal(hub.source("mine").backbone().state_dict()["layer4.1.conv2.weight"],
                       state["module.layer4.1.conv2.weight"])
    assert not torch.equal(hub.source("tv").backbone().state_dict()["layer4.1.conv2.weight"],
                           state["module.layer4.1.conv2.weight"])
    del state["module.layer4.1.bn2.running_var"]
    torch.save(state, root / "a.pth")
    with pytest.raises(BadCheckpoint, match="1 missing keys: layer4.1.bn2.running_var"):
        hub.check()  # the real checkpoint is checked as without --random-weights


def test_timm_sources_keep_their_classifier(fresh, monkeypatch):
    pytest.importorskip("timm", reason="timm is an optional extra (pip install hubbench[timm])")
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-timm]
sources = [
  {{ name = "r10a", model = "timm:resnet10t" }},
  {{ name = "r10b", model = "timm:resnet10t" }},
]
""")
    found = run_suite(root, suite_toml(f"{p}-timm", [f"{p}-pets", f"{p}-faces"], ["finetune", "zoo_tuning"],
                                       ["logme", "leep"]), "--random-weights")
    assert_ok_or_inapplicable(found)
    status = {(r.task, r.method.id if isinstance(r, records.Record) else r.ranker.name): r.status for r in found}
    assert status[f"{p}-pets", "leep"] == status[f"{p}-pets", "zoo_tuning"] == records.OK


def test_a_timm_vision_transformer_ranks_and_fine_tunes_beside_a_resnet(fresh, monkeypatch, capsys):
    """A ViT's tokens have no spatial map: its pooled features (timm's own pooling) serve the rankers, its own
    classifier LEEP, and fine-tunes on a folder task; a landmark head, which decodes a map, does not apply to it, nor
    does Zoo-Tuning to a hub of ViTs (nothing to aggregate but one convolution)."""
    pytest.importorskip("timm", reason="timm is an optional extra (pip install hubbench[timm])")
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-vr]
sources = [
  {{ name = "vit", model = "timm:vit_tiny_patch16_224" }},
  {{ name = "r18", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" }},
]
[hub.{p}-vits]
sources = [
  {{ name = "a", model = "timm:vit_tiny_patch16_224" }},
  {{ name = "b", model = "timm:vit_tiny_patch16_224" }},
]
""")
    args = ["rank", "--declare", str(root / "data.toml"), "--hub", f"{p}-vr", "--task", f"{p}-pets", "--device", "cpu",
            "--random-weights", "--json", "--tune", "--by", "leep", *(f"--set={k}={v}" for k, v in TINY.items())]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["rankers"]["logme"]["scores"]) == set(result["rankers"]["leep"]["scores"]) == {"vit", "r18"}
    assert result["tuned"]["status"] == "ok" and result["tuned"]["method"].startswith("finetune[model=")
    found = run_suite(root, suite_toml(f"{p}-vr", [f"{p}-pets", f"{p}-faces"], ["finetune", "ensemble_i"], []),
                      "--random-weights")
    status = {(r.task[len(p) + 1:], r.method.id): (r.status, r.reason) for r in found}
    assert {k for k, (s, _) in status.items() if s == records.OK} == {
        ("pets", "finetune[model=vit]"), ("pets", "finetune[model=r18]"), ("pets", "ensemble_i"),
        ("faces", "finetune[model=r18]")}
    assert status["faces", "ensemble_i"] == (records.INAPPLICABLE, "a landmarks head decodes a spatial map; vit gives "
                                                                   "a transformer's pooled features, none")
    vits = get_hub(f"{p}-vits")
    assert METHODS.get("zoo_tuning")().applicable(vits, None) == (
        False, "Zoo-Tuning aggregates convolution kernels; timm:vit_tiny_patch16_224 is a transformer, its weights "
               "in linear layers")


def test_timm_pretrained_weights_come_from_the_hugging_face_cache(fresh, monkeypatch, tmp_path):
    """timm's own loader reads the cached file (a stand-in, saved by the test in the cache's layout)."""
    timm = pytest.importorskip("timm", reason="timm is an optional extra (pip install hubbench[timm])")
    from safetensors.torch import save_file

    root, p = fresh
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    repo = tmp_path / "hf" / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    torch.manual_seed(3)
    state = timm.create_model("resnet10t").state_dict()
    save_file(state, repo / "snapshots" / ("0" * 40) / "model.safetensors")
    (root / "data.toml").write_text(f'[hub.{p}-timm]\nsources = [{{ name = "r", model = "timm:resnet10t" }}]\n')
    declare(gather(read(root / "data.toml"), root))
    get_hub(f"{p}-timm").check()
    source = get_hub(f"{p}-timm").source("r")
    assert torch.equal(source.backbone().state_dict()["layer4.0.conv1.weight"], state["layer4.0.conv1.weight"])
    assert torch.equal(source.classifier().model.fc.weight, state["fc.weight"])


def test_rank_prints_a_table_and_json_and_tunes_the_pick(fresh, monkeypatch, capsys):
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [
  {{ name = "r18", model = "torchvision:resnet18", weights = "DEFAULT" }},
  {{ name = "mnv3", model = "torchvision:mobilenet_v3_small", weights = "DEFAULT" }},
]
""")
    overrides = [f"--set={k}={v}" for k, v in TINY.items()]
    write_board(root / "boards", f"{p}-tv", f"{p}-other")
    args = ["rank", "--declare", str(root / "data.toml"), "--hub", f"{p}-tv", "--task", f"{p}-pets", "--device",
            "cpu", "--random-weights", "--boards", str(root / "boards"), *overrides]
    monkeypatch.chdir(root)
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{p}-pets: protocol sized to its data (15 training images, median side 40 px): "
                             "image_size 40, resize 46, batch 8, 50 iterations (26.7 epochs), evaluated every 10, 1 "
                             "test view; the papers' recipe otherwise; overridden: iterations=2, batch_size=4, "
                             "image_size=32, resize=36, eval_every=0, eval_batch_size=8, checkpoint_every=2")
    head = out.index(next(line for line in out if line.startswith("source")))
    assert out[head].split() == ["source", *sorted(RANKERS.names(), key=lambda n: n != "logme")]
    assert out[head + 2].split()[0] == "r18" and out[head + 3].split()[0] == "mnv3"
    assert out[head + 4].split()[0] == "pick" and out[head + 5].split()[:2] == ["scoring", "s"]
    assert out[head + 6].split()[:4] == ["τw", "here", "1.00", "(1/1"]  # logme ordered the board's fine-tunes right
    assert out[head + 7].startswith("features of the 2 sources: ")
    ranked = sorted((Path(os.environ["HUBBENCH_CACHE"]) / "records").rglob(f"{p}-pets/rank/*/seed0.json"))
    assert len(ranked) == len(RANKERS.names()) and not (root / "results").exists()  # the cache, not the cwd
    assert main([*args, "--json", "--tune", "--random-weights"]) == 0
    result = json.loads(capsys.readouterr().out)
    pick = result["rankers"]["logme"]["pick"]
    assert pick in ("r18", "mnv3") and result["tuned"]["method"] == f"finetune[model={pick}]"
    assert result["tuned"]["status"] == "ok" and result["rankers"]["logme"]["measured"]["tau_w"] == 1.0
    assert sorted(result["reused"]) == sorted(RANKERS.names())  # the rankings of the first run, said


def write_board(results: Path, hub: str, task: str) -> None:
    """A suite's records of `hub` on another task: fine-tunes of r18 (60) and mnv3 (40), and a LogME ranking that
    orders them right."""
    for source, value in (("r18", 60.0), ("mnv3", 40.0)):
        folder = results / "board" / hub / task
        made = {"schema": "hubbench.record/3", "suite": "board", "hub": hub, "task": task, "kind": "classification",
                "method": {"id": f"finetune[model={source}]", "name": "finetune", "params": {"model": source}},
                "seed": 0, "status": "ok", "metric": {"name": "top1", "higher_is_better": True, "value": value},
                "cost": {"total_s": 10.0}}
        (folder / f"finetune@model={source}").mkdir(parents=True)
        (folder / f"finetune@model={source}" / "seed0.json").write_text(json.dumps(made))
    ranking = {"schema": "hubbench.ranking/2", "suite": "board", "hub": hub, "task": task, "kind": "classification",
               "ranker": {"id": "logme", "name": "logme", "params": {}}, "seed": 0, "status": "ok",
               "scores": {"r18": -0.5, "mnv3": -0.9}, "order": ["r18", "mnv3"]}
    (folder / "rank" / "logme").mkdir(parents=True)
    (folder / "rank" / "logme" / "seed0.json").write_text(json.dumps(ranking))


def test_profile_reads_declarations(fresh, monkeypatch, capsys):
    root, p = fresh
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [{{ name = "mnv3", model = "torchvision:mobilenet_v3_small", weights = "DEFAULT" }}]
""")
    assert main(["profile", "--declare", str(root / "data.toml"), "--hub", f"{p}-tv", "--task", f"{p}-pets",
                 "--method", "finetune", "--random-weights", "--device", "cpu", "--out", str(root / "p.json")]) == 0
    assert json.loads((root / "p.json").read_text())["complexity"]["params"]["total"] > 0


# -- bad input: one line, exit 2, before any compute, nothing written ------------------------------------------
def break_empty_class(root: Path) -> None:
    for f in (root / "pets" / "owl").iterdir():
        f.unlink()
    (root / "pets" / "owl" / "notes.txt").write_text("no images here")


def break_image(root: Path) -> None:
    (root / "pets" / "dog" / "3.png").write_bytes(b"not a png at all")


def break_csv_path(root: Path) -> None:
    with (root / "csv" / "train.csv").open("a") as f:
        f.write("train/gone.jpg,a\n")


def break_csv_label(root: Path) -> None:
    with (root / "csv" / "test.csv").open("a") as f:
        f.write("test/a0.jpg,zebra\n")


def break_landmark_row(root: Path) -> None:
    with (root / "faces" / "train.csv").open("a") as f:
        f.write("train/0.png,1,2,3,4,5\n")


def break_to_one_class(root: Path) -> None:
    for label in ("dog", "owl"):
        for f in (root / "pets" / label).iterdir():
            f.unlink()
        (root / "pets" / label).rmdir()


def break_csv_duplicate(root: Path) -> None:
    with (root / "csv" / "test.csv").open("a") as f:
        f.write("train/a0.jpg,a\n")  # also a training image


def break_csv_outside(root: Path) -> None:
    picture(root / "elsewhere.png", COLOURS["cat"])
    with (root / "csv" / "train.csv").open("a") as f:
        f.write("../elsewhere.png,a\n")


def break_csv_absolute(root: Path) -> None:
    with (root / "csv" / "train.csv").open("a") as f:
        f.write(f"{root / 'pets' / 'cat' / '0.png'},a\n")


def break_landmark_nan(root: Path) -> None:
    with (root / "faces" / "train.csv").open("a") as f:
        f.write("train/0.png,10,10,nan,20,30,30,4,4,44,44\n")


def break_landmark_duplicate(root: Path) -> None:
    first = (root / "faces" / "train.csv").read_text().splitlines()[0]
    with (root / "faces" / "train.csv").open("a") as f:
        f.write(first + "\n")


def break_landmark_outside(root: Path) -> None:
    picture(root / "elsewhere.png", COLOURS["cat"], 48)
    with (root / "faces" / "train.csv").open("a") as f:
        f.write("../elsewhere.png,10,10,20,20,30,30,4,4,44,44\n")


BAD_DATA = [
    (break_empty_class, "pets", "owl: a class folder of split 'train' with no images"),
    (break_image, "pets", "3.png: not a readable image"),
    (break_csv_path, "csv", "gone.jpg: missing image"),
    (break_csv_label, "csv", "label 'zebra' is not in the class list (a, b)"),
    (break_landmark_row, "faces", "5 values after the path, expected 10 (3 points and the box)"),
    (break_to_one_class, "pets", "1 class, 1 with training images: a classifier needs at least two classes"),
    (lambda root: None, "abc", "3 classes, 2 with training images: a classifier needs at least two classes, each "
                               "with a training image (none of 'c')"),
    (break_csv_duplicate, "csv", "test.csv:12: a duplicate of the row at"),
    (break_csv_outside, "csv", "train.csv:12: image path '../elsewhere.png' leaves the CSV file's folder"),
    (break_csv_absolute, "csv", "train.csv:12: image path '/"),
    (break_landmark_nan, "faces", "train.csv:11: a coordinate is nan: every value must be a finite number"),
    (break_landmark_duplicate, "faces", "train.csv:11: a duplicate of the row at"),
    (break_landmark_outside, "faces", "train.csv:11: image path '../elsewhere.png' leaves the CSV file's folder"),
]


@pytest.mark.parametrize("breaks, task, message", BAD_DATA,
                         ids=[b[0].__name__.replace("<lambda>", "class_without_training_images") for b in BAD_DATA])
def test_bad_data_is_one_line_exit_2_before_compute(fresh, capsys, breaks, task, message):
    root, p = fresh
    breaks(root)
    (root / "data.toml").write_text(tasks_toml(p) + f"""
[hub.{p}-tv]
sources = [{{ name = "r18", model = "torchvision:resnet18", weights = "DEFAULT" }}]
""")
    (root / "suite.toml").write_text(suite_toml(f"{p}-tv", [f"{p}-{task}"], ["finetune"], []))
    assert main(["run", "--suite", str(root / "suite.toml"), "--results", str(root / "results"), "--device", "cpu",
                 "--random-weights"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not (root / "results").exists()


BAD_HUBS = [
    ('{ name = "x", model = "torchvision:resnet81", weights = "DEFAULT" }', "unknown torchvision model 'resnet81' "
                                                                            "(close: resnet18"),
    ('{ name = "x", model = "timm:resnet10q" }', "unknown timm model 'resnet10q'"),
    ('{ name = "x", model = "torchvision:resnet18", weights = "DEFAULT" }, '
     '{ name = "x", model = "torchvision:resnet18", weights = "DEFAULT" }', "declares source 'x' twice"),
    ('{ name = "x", model = "torchvision:resnet18", checkpoint = "wrong.pth" }',
     "does not match the backbone: 1 missing keys: layer4.1.bn2.num_batches_tracked"),
    ('{ name = "x", model = "torchvision:resnet18", checkpoint = "absent.pth" }',
     "absent.pth does not exist"),
    ('{ name = "x", model = "torchvision:resnet18", weights = "IMAGENET1K_V1" }',
     "resnet18-f37072fd.pth is missing: download https://download.pytorch.org/models/resnet18-f37072fd.pth into"),
    ('{ name = "x", model = "timm:resnet10t" }', "source 'x': timm weights of resnet10t (Hugging Face repo "
                                                "timm/resnet10t.c3_in1k) are not in the Hugging Face cache"),
]


@pytest.mark.parametrize("sources, message", BAD_HUBS, ids=["torchvision-name", "timm-name", "twice", "keys",
                                                           "absent-file", "offline", "timm-offline"])
def test_bad_hub_is_one_line_exit_2_before_compute(fresh, capsys, monkeypatch, tmp_path, sources, message):
    if "timm:" in sources:
        pytest.importorskip("timm", reason="timm is an optional extra (pip install hubbench[timm])")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    root, p = fresh
    monkeypatch.setenv("HUBBENCH_WEIGHTS_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-home"))
    save_checkpoint(root / "wrong.pth", "resnet18", "", 0)
    state = torch.load(root / "wrong.pth", weights_only=True)
    del state["layer4.1.bn2.num_batches_tracked"]
    torch.save(state, root / "wrong.pth")
    (root / "data.toml").write_text(tasks_toml(p) + f"[hub.{p}-bad]\nsources = [{sources}]\n")
    (root / "suite.toml").write_text(suite_toml(f"{p}-bad", [f"{p}-pets"], ["finetune"], []))
    args = ["run", "--suite", str(root / "suite.toml"), "--results", str(root / "results"), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    weights = "does not exist" in message or "is missing" in message or "cache" in message
    lines = 2 if weights else 1  # missing weights: a line per source lacking them, after the hub's
    assert len(err.strip().splitlines()) == lines and message in err, err
    assert not (root / "results").exists()
