import numpy as np
import pytest
import torch

from hubbench.hubs import mini
from hubbench.hubs.sources import SOURCE_TASKS
from hubbench.synthetic import Canvas


def test_mini_hub_covers_the_papers_paradigms():
    from hubbench.hubs import get_hub

    hub = get_hub("mini")
    assert len(hub.sources) >= 5 and hub.homogeneous
    assert {s.name for s in hub.sources} >= {"supervised", "selfsup", "segmentation", "detection", "keypoints"}


@pytest.mark.parametrize("task", SOURCE_TASKS, ids=lambda t: t.name)
def test_source_task_heads_and_losses(task):
    rng = np.random.default_rng(0)
    images, targets = zip(*(task.sample(Canvas(32, rng)) for _ in range(4)), strict=True)
    x = torch.from_numpy(np.stack(images))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 32, 32)
    backbone = mini.MiniResNet(mini.WIDTHS)
    out = task.head(backbone.out_channels)(backbone(x.float() / 255))
    assert torch.isfinite(task.loss(out, torch.from_numpy(np.stack(targets))))


def test_detection_segmentation_and_keypoints_start_from_the_supervised_backbone(cache):
    frozen = mini.Pretraining(images=16, iterations=2, batch_size=8, lr=1e-30)  # nothing moves: the init remains
    hub = mini.mini_hub("lineage", frozen)
    convs = {name: {k: v for k, v in hub.source(name).weights().items() if k.endswith("conv1.weight")}
             for name in hub.names}
    for child in ("detection", "segmentation", "keypoints"):
        assert all(torch.equal(convs[child][k], w) for k, w in convs["supervised"].items()), child
    assert not torch.equal(convs["selfsup"]["conv1.weight"], convs["supervised"]["conv1.weight"])  # its own init


def test_no_specialist_source_is_pretrained_on_a_target_label_set():
    from hubbench.hubs.sources import CATEGORIES
    from hubbench.tasks.synthetic import Clutter

    assert not set(CATEGORIES) & set(Clutter.classes)


def test_the_broad_sources_pretrain_longer_and_their_budget_keys_the_weights():
    from hubbench.hubs.sources import SUPERVISED, Detection, Rotation

    cfg = mini.Pretraining()
    assert cfg.of(SUPERVISED).iterations == 2 * cfg.of(Rotation()).iterations == 8 * cfg.of(Detection()).iterations
    assert cfg.of(SUPERVISED).images == 8 * cfg.images
    cheap = type("Cheap", (Rotation,), {"budget": 1})()
    assert mini.weights_key(cheap, cfg, mini.MINI_RESNET) != mini.weights_key(Rotation(), cfg, mini.MINI_RESNET)


def test_tiny_hub_builds_deterministically_and_caches(tiny_hub, cache, monkeypatch):
    source = tiny_hub.sources[0]
    weights = source.weights()
    assert list(cache.glob("hubs/*.pt"))
    monkeypatch.setattr(mini, "train", lambda *a, **k: pytest.fail("cached hub was retrained"))
    cached = source.weights()
    assert all(torch.equal(weights[k], cached[k]) for k in weights)
    features = source.backbone()(torch.zeros(2, 3, 32, 32))
    assert features.shape == (2, source.backbone().out_channels, 4, 4)


def test_rebuild_in_a_fresh_cache_gives_identical_weights(tiny_hub, tmp_path, monkeypatch):
    source = tiny_hub.sources[1]
    before = source.weights()
    monkeypatch.setenv("HUBBENCH_CACHE", str(tmp_path))
    torch.manual_seed(3)
    rebuilt = source.weights()
    after_build = torch.rand(2)
    torch.manual_seed(3)
    assert torch.equal(torch.rand(2), after_build), "building a hub disturbed the caller's random stream"
    assert list(tmp_path.glob("hubs/*.pt"))
    assert all(torch.equal(before[k], rebuilt[k]) for k in before)
