"""The heterogeneous hubs: several architecture families, pre-trained by the `mini` machinery."""

import pytest
import torch

from hubbench.hubs import get_hub
from hubbench.hubs.archs import MiniConvNeXt, MiniMobileNet, MiniSwin, SwinBlock


@pytest.fixture(scope="module")
def tiny_hetero(tiny_hub):
    return get_hub("tiny-hetero")  # registered by the tiny plugin that `tiny_hub` loads


def test_mini_hetero_mirrors_the_papers_heterogeneous_hub():
    hub = get_hub("mini-hetero")
    families = [s.family for s in hub.sources]
    assert not hub.homogeneous and len(set(families)) == len(families) >= 3
    assert hub.source("detection").family == get_hub("mini").source("detection").family
    assert hub.describe()["config"]["archs"]["swin"]["arch"] == "MiniSwin"


def test_every_source_builds_and_gives_a_feature_map(tiny_hetero):
    for source in tiny_hetero.sources:
        backbone = source.backbone()
        untrained = source.backbone(pretrained=False).state_dict()
        assert any(not torch.equal(v, untrained[k]) for k, v in backbone.state_dict().items()), source.name
        with torch.no_grad():
            features = backbone.eval()(torch.randn(2, 3, 32, 32))
        assert features.shape == (2, backbone.out_channels, 4, 4) and torch.isfinite(features).all()


def test_sources_are_cached_per_architecture(tiny_hetero, cache):
    for source in tiny_hetero.sources:
        source.weights()
    built = {*tiny_hetero.names, "supervised"}  # detection's starting point
    files = {p.name.rsplit("-", 1)[0] for p in cache.glob("hubs/*.pt") if ".head." not in p.name}
    heads = {p.name.rsplit("-", 1)[0] for p in cache.glob("hubs/*.head.pt")}
    assert files >= built and heads >= built  # every pre-training head is kept; the classifiers' serve LEEP and NCE


def test_detection_source_has_the_mini_hubs_lineage_and_weights(tiny_hetero, tiny_hub):
    ours, theirs = tiny_hetero.source("detection"), tiny_hub.source("detection")
    assert ours.pretrained.shipped_name("backbone") == theirs.pretrained.shipped_name("backbone")  # one file for both
    assert all(torch.equal(ours.weights()[k], w) for k, w in theirs.weights().items())


@pytest.mark.parametrize("arch", [MiniMobileNet, MiniConvNeXt, MiniSwin])
def test_new_architectures_take_other_input_sizes(arch):
    """Swin pads to whole windows and odd maps before merging patches; every net downsamples by 8."""
    with torch.no_grad():
        features = arch().eval()(torch.randn(1, 3, 40, 40))
    assert features.shape[-2:] == (5, 5) and torch.isfinite(features).all()


def test_shifted_windows_keep_wrapped_regions_apart():
    """After the cyclic shift, the bottom-right window holds the four corners of the map, which
    are not adjacent: token (0, 0) may only influence its own corner of that window."""
    torch.manual_seed(0)
    block = SwinBlock(dim=8, heads=1, window=4, shift=2).eval()
    x = torch.randn(1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 0] += torch.randn(8)  # not a constant: LayerNorm would remove it
    with torch.no_grad():
        bx, by = block(x), block(y)
    changed = (bx - by).abs().sum(-1)[0] > 1e-5
    assert changed.nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
