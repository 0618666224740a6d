"""The real hubs: architectures, checkpoint layouts, and refusal of bad or unsafe files.

No weights can be downloaded here, so checkpoint files are written in the layout of the published
ones (key prefixes, wrappers, heads, FrozenBatchNorm's missing counters) from random weights.
A file whose published name carries a hash prefix is saved under that name with its own true
prefix, so the positive tests run the same hash check as real files.
"""

import builtins
import hashlib
import urllib.error
from dataclasses import replace

import pytest
import torch
import torchvision.models as tvm

from hubbench.hubs import checkpoints, zoo
from hubbench.hubs.base import HUBS
from hubbench.hubs.checkpoints import BadCheckpoint, DownloadFailed, MissingWeights
from hubbench.registry import UnknownName

MODELS = {m.name: m for m in zoo.RESNET50_ZOO + zoo.HETERO_ZOO}
DETECTION, MOCO = MODELS["detection"], MODELS["selfsup"]


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    """An empty $HUBBENCH_WEIGHTS_DIR and an empty torch download dir, pretrained mode."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HUBBENCH_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.delenv("HUBBENCH_RANDOM_WEIGHTS", raising=False)
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


@pytest.fixture(scope="module")
def resnet_state():
    torch.manual_seed(0)
    return zoo.RESNET50().state_dict()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def publish(obj, directory, real_name, legacy=False):
    """Save `obj` under the published file name, with the file's true sha256 prefix where the name has one."""
    tmp = directory / "unnamed"
    torch.save(obj, tmp, _use_new_zipfile_serialization=not legacy)
    prefix = checkpoints.sha256_prefix(real_name)
    name = real_name if prefix is None else real_name.replace(f"-{prefix}.", f"-{sha256(tmp)[:len(prefix)]}.")
    tmp.rename(directory / name)
    return name


def named(model, file):
    """The model, its checkpoint looked for under another file name (the URL's last part)."""
    return replace(model, checkpoint=replace(model.checkpoint, weights=f"https://example.invalid/{file}"))


def source_of(model):
    """The model as the only source of a pretrained-mode hub."""
    return zoo.zoo_hub("test-zoo", "one model", (model,)).sources[0]


def torchvision_layout(builder, prefix, state, **kw):
    """Every key of the real torchvision model (built on the meta device): the backbone's tensors under
    `prefix`, one-element stand-ins for the heads (only their names matter: they are dropped)."""
    with torch.device("meta"):
        keys = builder(weights=None, **kw).state_dict().keys()
    stand_in = torch.zeros(1)
    return {k: state.get(k.removeprefix(prefix), stand_in) if k.startswith(prefix) else stand_in for k in keys}


def moco_layout(state):
    """MoCo's training checkpoint: the DataParallel-wrapped model with both encoders and the queue."""
    keys = [*state, "fc.weight", "fc.bias"]
    model = {f"module.encoder_q.{k}": state.get(k, torch.zeros(1)) for k in keys}
    model |= {f"module.encoder_k.{k}": torch.zeros(1) for k in keys}
    model |= {"module.queue": torch.zeros(128, 4), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    optimizer = {"state": {}, "param_groups": [{"lr": 0.03, "momentum": 0.9, "params": list(range(len(keys)))}]}
    return {"epoch": 200, "arch": "resnet50", "state_dict": model, "optimizer": optimizer}


def no_counters(state):
    """Without BatchNorm's num_batches_tracked: files from before it existed, and FrozenBatchNorm2d bodies."""
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


LAYOUTS = {  # source -> (file contents from the backbone state, saved in the legacy (pre-1.6) format)
    "supervised": (lambda s: no_counters(torchvision_layout(tvm.resnet50, "", s)), True),
    "selfsup": (moco_layout, True),
    "segmentation": (lambda s: torchvision_layout(tvm.segmentation.deeplabv3_resnet50, "backbone.", s,
                                                  weights_backbone=None, aux_loss=True), False),
    # untrained builders use nn.BatchNorm2d; the published detection files froze it
    "detection": (lambda s: no_counters(torchvision_layout(tvm.detection.maskrcnn_resnet50_fpn, "backbone.body.", s,
                                                           weights_backbone=None)), False),
    "keypoints": (lambda s: no_counters(torchvision_layout(tvm.detection.keypointrcnn_resnet50_fpn, "backbone.body.",
                                                           s, weights_backbone=None)), False),
}


def all_sources():
    return [(hub, m) for hub, (_, models) in zoo.ZOOS.items() for m in models]


@pytest.mark.parametrize(("hub_name", "model"), all_sources(), ids=lambda x: getattr(x, "name", x))
def test_random_weight_sources_give_their_last_feature_map(hub_name, model, monkeypatch):
    monkeypatch.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")
    hub = HUBS.get(hub_name)()
    backbone = hub.source(model.name).backbone().eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, backbone.out_channels, 2, 2)  # output stride 32 for every family


def test_random_weights_are_seeded_per_checkpoint_and_spare_the_callers_rng(monkeypatch):
    monkeypatch.setenv("HUBBENCH_RANDOM_WEIGHTS", "1")
    homo, hetero = HUBS.get("resnet50-zoo")(), HUBS.get("hetero-zoo")()
    assert homo.config["weights"] == hetero.config["weights"] == "random"
    torch.manual_seed(1)
    expected_next = torch.rand(1)
    torch.manual_seed(1)
    first = homo.source("detection").weights()
    assert torch.equal(torch.rand(1), expected_next)
    again = hetero.source("detection").weights()  # the same model in the other hub
    other = homo.source("supervised").weights()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])


def test_families_and_weights_mode_in_config(weights_dir):
    homo, hetero = HUBS.get("resnet50-zoo")(), HUBS.get("hetero-zoo")()
    assert homo.homogeneous and len(homo.sources) == 5
    assert not hetero.homogeneous and len({s.family for s in hetero.sources}) == 5
    assert homo.config["weights"] == "pretrained"
    assert homo.config["checkpoints"]["detection"] == hetero.config["checkpoints"]["detection"]


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_resnet50_checkpoint_layouts_load_to_identical_backbones(name, resnet_state, weights_dir):
    layout, legacy = LAYOUTS[name]
    model = MODELS[name]
    file = publish(layout(resnet_state), weights_dir, model.checkpoint.file, legacy=legacy)
    loaded = source_of(named(model, file)).backbone().state_dict()  # strict, into nn.BatchNorm2d
    assert loaded.keys() == resnet_state.keys()
    assert all(torch.equal(loaded[k], resnet_state[k]) for k in loaded)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b3", "swin_t", "convnext_tiny"])
def test_torchvision_classifier_files_load_without_their_head(name, weights_dir):
    torch.manual_seed(0)
    full = getattr(tvm, name)(weights=None).state_dict()
    model = MODELS[name]
    file = publish(full, weights_dir, model.checkpoint.file)
    loaded = source_of(named(model, file)).weights()
    assert all(torch.equal(v, full[k]) for k, v in loaded.items())
    head = {k.split(".")[0] for k in full.keys() - loaded.keys()}
    assert head == {"head" if name == "swin_t" else "classifier"}


def test_a_file_whose_hash_differs_from_its_name_is_refused(weights_dir):
    torch.save({"backbone.body.conv1.weight": torch.zeros(1)}, weights_dir / DETECTION.checkpoint.file)
    with pytest.raises(BadCheckpoint, match=r"sha256 [0-9a-f]{64} does not start with bf2d0c1e"):
        source_of(DETECTION).weights()


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupted_file_is_refused(damage, weights_dir):
    path = weights_dir / MOCO.checkpoint.file  # no hash in the name: torch.load itself must fail cleanly
    torch.save({"state_dict": {"module.encoder_q.conv1.weight": torch.zeros(64, 3, 7, 7)}}, path)
    path.write_bytes(path.read_bytes()[:-200] if damage == "truncated" else b"<html>404 Not Found</html>")
    with pytest.raises(BadCheckpoint, match="refused, it does not load as plain tensors with weights_only=True"):
        source_of(MOCO).weights()


class Payload:
    """Unpickling this runs code (here: it would create a file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


@pytest.mark.parametrize("model", [MOCO, DETECTION], ids=["no-hash", "true-hash"])
def test_a_pickle_that_runs_code_is_refused_even_with_a_true_hash(model, weights_dir, tmp_path):
    marker = tmp_path / "code-ran"
    file = publish({"state_dict": Payload(marker)}, weights_dir, model.checkpoint.file)
    with pytest.raises(BadCheckpoint, match="Unsupported global: GLOBAL exec"):
        source_of(named(model, file)).weights()
    assert not marker.exists()


def test_mismatched_keys_are_reported_including_missing_frozen_batchnorm_layers(resnet_state):
    with torch.device("meta"):
        reference = zoo.RESNET50().state_dict()
    obj = {f"backbone.body.{k}": v for k, v in no_counters(resnet_state).items()}
    del obj["backbone.body.layer4.2.bn3.weight"]
    obj["backbone.body.layer5.0.conv1.weight"] = torch.zeros(1)
    obj["backbone.body.fc.weight"] = torch.zeros(1)  # fc is dropped for classifiers, not for detection bodies
    obj["backbone.body.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    obj["backbone.body.bn1.bias"] = [0.0] * 64
    with pytest.raises(BadCheckpoint) as e:
        DETECTION.checkpoint.backbone_state(obj, reference)
    message = str(e.value)
    assert "1 missing keys: layer4.2.bn3.weight;" in message
    assert "2 unexpected keys: layer5.0.conv1.weight, fc.weight" in message
    assert "2 shape mismatches" in message and "conv1.weight (64, 3, 3, 3) vs (64, 3, 7, 7)" in message
    assert "bn1.bias <list> vs (64,)" in message
    assert "num_batches_tracked" not in message and DETECTION.checkpoint.file in message


def test_a_file_without_the_expected_prefix_or_wrapper_is_refused(resnet_state):
    unprefixed = {"state_dict": {f"encoder_q.{k}": v for k, v in resnet_state.items()}}
    with pytest.raises(BadCheckpoint, match=r"no key starts with 'module.encoder_q.' \(keys start with: encoder_q."):
        MOCO.checkpoint.backbone_state(unprefixed, resnet_state)
    unwrapped = {f"module.encoder_q.{k}": v for k, v in resnet_state.items()}
    with pytest.raises(BadCheckpoint, match="no state dict under key 'state_dict'"):
        MOCO.checkpoint.backbone_state(unwrapped, resnet_state)


@pytest.mark.parametrize("hub_name", list(zoo.ZOOS))
def test_missing_weights_is_one_error_listing_every_file_and_directory(hub_name, weights_dir, tmp_path):
    hub = HUBS.get(hub_name)()
    models = zoo.ZOOS[hub_name][1]
    (weights_dir / models[0].checkpoint.file).write_bytes(b"")  # one present: the error still lists all
    with pytest.raises(MissingWeights) as e:
        hub.sources[-1].weights()
    message = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    assert all(m.checkpoint.file in message for m in models)
    assert f"{len(models) - 1} missing" in message and message.count("MISSING") == len(models) - 1
    assert str(weights_dir) in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    with pytest.raises(MissingWeights):
        zoo.require_weights(hub_name, models)


def test_weights_dir_comes_before_torch_download_dir(weights_dir, tmp_path):
    torch_dir = tmp_path / "torch" / "hub" / "checkpoints"
    torch_dir.mkdir(parents=True)
    for d in (weights_dir, torch_dir):
        (d / "a.pth").write_bytes(b"")
    (torch_dir / "b.pth").write_bytes(b"")
    assert checkpoints.find("a.pth") == weights_dir / "a.pth"
    assert checkpoints.find("b.pth") == torch_dir / "b.pth"
    assert checkpoints.find("c.pth") is None


@pytest.mark.parametrize(("file", "prefix"), [
    ("resnet50-19c8e357.pth", "19c8e357"), ("efficientnet_b3_rwightman-b3899882.pth", "b3899882"),
    ("moco_v1_200ep_pretrain.pth.tar", None), ("swin-v1.pth", None), ("deadbeef.pth", None)])
def test_hash_prefix_is_the_hex_after_the_last_dash(file, prefix):
    assert checkpoints.sha256_prefix(file) == prefix


def test_download_fetches_missing_files_with_their_hash_check(weights_dir, monkeypatch):
    calls = []

    def fake_download(url, dst, hash_prefix=None):
        calls.append((url, hash_prefix))
        open(dst, "wb").close()

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    files = zoo.files(zoo.RESNET50_ZOO)
    (weights_dir / files[0]).write_bytes(b"already here")
    paths = zoo.download("resnet50-zoo")
    assert paths == [weights_dir / f for f in files] and all(p.is_file() for p in paths)
    assert (weights_dir / files[0]).read_bytes() == b"already here"
    assert dict(calls) == {m.checkpoint.url: checkpoints.sha256_prefix(m.checkpoint.file)
                           for m in zoo.RESNET50_ZOO[1:]}
    assert dict(calls)[zoo.MOCO_URL] is None
    assert checkpoints.missing_weights("resnet50-zoo", files) is None  # all present now


def test_download_offline_is_one_clear_error(tmp_path, monkeypatch):
    def offline(url, dst, hash_prefix=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(DownloadFailed, match=r"cannot download https://\S+/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"):
        zoo.download("hetero-zoo", tmp_path / "dest")
    with pytest.raises(UnknownName, match="resnet50-zoo"):
        zoo.download("mini", tmp_path)


@pytest.mark.parametrize("name", ["supervised", "mobilenet_v3_large", "swin_t", "convnext_tiny"])
def test_imagenet_classifiers_keep_their_heads_and_give_the_full_models_logits(name, weights_dir):
    builder = {"supervised": "resnet50"}.get(name, name)
    torch.manual_seed(0)
    full = getattr(tvm, builder)(weights=None).eval()
    model = MODELS[name]
    source = source_of(named(model, publish(full.state_dict(), weights_dir, model.checkpoint.file)))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(source.classifier()(source.backbone().eval()(x)), full(x), atol=1e-4)


def test_sources_without_an_image_classifier_offer_none():
    hub = zoo.zoo_hub("test-zoo", "", (MOCO, DETECTION, MODELS["segmentation"]))
    assert all(s.classifier is None for s in hub.sources)
