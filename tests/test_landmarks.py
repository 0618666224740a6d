import math

import pytest
import torch

from hubbench import tasks
from hubbench.tasks.base import Protocol
from hubbench.tasks.faces import LANDMARKS, MIRROR, OUTER_EYES
from hubbench.tasks.landmarks import LandmarkTask, decode, encode, normalised_errors, pack, summarise, unpack


class Toy(LandmarkTask):
    """Three points on a 32 px frame, with every augmentation on; point 0 and 1 mirror each other."""

    name, description = "toy-landmarks", "test task"
    num_points, frame, sigma = 3, 32, 1.5
    scale_jitter, max_rotation, flip_permutation = 0.2, 20.0, (1, 0, 2)
    protocol = Protocol(image_size=32, batch_size=4, iterations=1, lr=0.1, crop_padding=3, flip=True)

    def make_splits(self):
        raise NotImplementedError


def augment(task, x, y, g):
    """A batch through the task's training augmentation, as a staged training batch applies it: the parameters
    drawn on the host, the targets moved there, the images on their device."""
    params = task.augmentation(len(x), g)
    return task.augment_images(x, params), task.augment_targets(y, params)


@pytest.mark.parametrize("cells", [32, 16])
def test_heatmap_round_trip_is_within_a_quarter_cell(cells):
    points = torch.rand(64, 5, 2, generator=torch.Generator().manual_seed(0)) * 24 + 4
    maps = encode(points, (cells, cells), 32, sigma=1.5)
    assert maps.shape == (64, 5, cells, cells) and maps.max() <= 1
    error = (decode(maps, 32) - points).abs().max() * cells / 32  # in heatmap cells
    assert error <= 0.25 + 1e-5
    # without the quarter shift the argmax alone is off by up to half a cell
    argmax_only = (maps.flatten(2).argmax(-1) % cells + 0.5) * 32 / cells
    assert (argmax_only - points[..., 0]).abs().max() * cells / 32 > 0.4


def test_decode_shifts_a_quarter_towards_the_higher_neighbour_and_not_at_the_border():
    maps = torch.zeros(1, 2, 8, 8)
    maps[0, 0, 3, 5], maps[0, 0, 3, 6], maps[0, 0, 2, 5] = 1.0, 0.5, 0.2  # right and up are higher
    maps[0, 1, 0, 7] = 1.0  # corner: no neighbours on two sides
    pts = decode(maps, frame=16)  # 2 px per cell
    assert pts[0, 0].tolist() == [(5 + 0.5 + 0.25) * 2, (3 + 0.5 - 0.25) * 2]
    assert pts[0, 1].tolist() == [7.5 * 2, 0.5 * 2]


def test_peak_is_one_at_a_cell_centre():
    maps = encode(torch.tensor([[[10.5, 3.5]]]), (32, 32), 32, sigma=1.0)
    assert maps[0, 0, 3, 10] == 1 and maps[0, 0, 3, 11] == pytest.approx(math.exp(-0.5))


def test_metrics_on_a_hand_computed_example():
    task = Toy(Toy.protocol.replace(flip=False))
    truth = torch.tensor([[[4.5, 4.5], [14.5, 4.5], [9.5, 20.5]]]).repeat(3, 1, 1)
    pred = truth.clone()
    pred[:2, 0, 0] += 3.0  # images 0 and 1: errors 3, 0, 0 -> mean 1
    pred[2, :, 0] += 6.0  # image 2: mean 6
    targets = pack(truth, torch.tensor([20.0, 1 / 0.09, 10.0]))  # NMEs 0.05, 0.09, 0.6
    metrics = task.evaluate(encode(pred, (32, 32), 32, 1.5), targets)  # predictions at cell centres decode exactly
    assert metrics["nme"] == pytest.approx((0.05 + 0.09 + 0.6) / 3 * 100)
    assert metrics["fr8"] == pytest.approx(200 / 3) and metrics["fr10"] == pytest.approx(100 / 3)
    assert metrics["auc10"] == pytest.approx((0.05 + 0.01 + 0) / 3 / 0.1 * 100)
    assert metrics["loss"] > 0 and task.evaluate(encode(truth, (32, 32), 32, 1.5), targets)["loss"] < 1e-12


def test_auc_is_the_area_under_the_cumulative_error_curve():
    errors = torch.rand(200, generator=torch.Generator().manual_seed(1)) * 0.15
    t = torch.linspace(0, 0.1, 20001, dtype=torch.float64)
    ced = (errors.double()[None] <= t[:, None]).double().mean(1)
    assert summarise(errors)["auc10"] == pytest.approx(torch.trapezoid(ced, t).item() / 0.1 * 100, abs=0.01)


def test_normalised_errors_and_pack_round_trip():
    points, norm = torch.rand(4, 3, 2), torch.rand(4) + 1
    assert torch.equal(unpack(pack(points, norm))[0], points) and torch.equal(unpack(pack(points, norm))[1], norm)
    shifted = points + torch.tensor([3.0, 4.0])
    assert torch.allclose(normalised_errors(shifted, points, norm), 5 / norm)


def test_head_maps_the_mini_feature_map_to_one_32px_heatmap_per_point():
    head = Toy(Toy.protocol.replace(flip=False)).head(128)
    assert head(torch.randn(2, 128, 4, 4)).shape == (2, 3, 32, 32)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in head.modules()) == 3


def test_combine_is_a_weighted_mean_of_heatmaps():
    task = Toy(Toy.protocol.replace(flip=False))
    a, b = torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8)
    assert torch.allclose(task.combine([a, b]), (a + b) / 2)
    assert torch.allclose(task.combine([a, b], torch.tensor([[1.0, 0.0]] * 4)), a)
    w = torch.tensor([[1.0, 3.0]] * 4)
    assert torch.allclose(task.combine([a, b], w), (a + 3 * b) / 4)
    assert torch.allclose(task.combine([a, b], 10 * w), task.combine([a, b], w))


def test_distillation_is_zero_at_the_teacher_and_does_not_train_the_teacher():
    task = Toy(Toy.protocol.replace(flip=False))
    teacher = torch.rand(2, 3, 8, 8, requires_grad=True)
    assert task.distillation(teacher, teacher, 4.0) == 0
    student = torch.rand(2, 3, 8, 8, requires_grad=True)
    loss = task.distillation(student, teacher, 4.0)
    loss.backward()
    assert loss > 0 and student.grad.abs().sum() > 0 and teacher.grad is None
    assert loss == task.distillation(student, teacher, 1.0)  # temperature is unused


def test_augmentation_moves_image_and_points_together_and_mirrors_point_identities():
    task = Toy()
    g = torch.Generator().manual_seed(0)
    points = torch.rand(16, 3, 2, generator=g) * 12 + 10
    x = encode(points, (32, 32), 32, sigma=1.5)  # each point drawn as a blob in its own channel
    x_aug, y_aug = augment(task, x, pack(points, torch.full((16,), 8.0)), torch.Generator().manual_seed(1))
    moved, norm = unpack(y_aug)
    blobs = decode(x_aug, 32)  # where channel c's blob (original point c) went
    plain = (blobs - moved).norm(dim=-1).amax(-1)
    swapped = (blobs - moved[:, list(Toy.flip_permutation)]).norm(dim=-1).amax(-1)
    assert torch.minimum(plain, swapped).max() < 0.6 and 0 < (swapped < plain).sum() < 16
    assert not torch.allclose(moved, points)
    scale = (moved[:, 0] - moved[:, 1]).norm(dim=-1) / (points[:, 0] - points[:, 1]).norm(dim=-1)
    assert torch.allclose(norm / 8, scale)  # the normaliser scales with the image


def test_augmentation_is_the_identity_when_switched_off():
    task = Toy(Toy.protocol.replace(flip=False, crop_padding=0))
    task.scale_jitter = task.max_rotation = 0.0
    x, y = torch.randn(4, 3, 32, 32), pack(torch.rand(4, 3, 2) * 32, torch.ones(4))
    x2, y2 = augment(task, x, y, torch.Generator().manual_seed(0))
    assert torch.allclose(x2, x, atol=1e-5) and torch.allclose(y2, y)


def test_flip_needs_a_permutation():
    class NoMirror(Toy):
        flip_permutation = None

    with pytest.raises(ValueError, match="no flip_permutation"):
        NoMirror()
    assert NoMirror(Toy.protocol.replace(flip=False)).protocol.flip is False


def test_faces_are_deterministic_and_well_formed():
    task = tasks.TASKS.get("faces")()
    assert (task.kind, task.metric, task.higher_is_better) == ("landmarks", "nme", False)
    assert len(LANDMARKS) == task.num_points >= 9 and sorted(MIRROR) == list(range(len(LANDMARKS)))
    splits = task.splits
    train = splits["train"]
    assert 100 <= len(train) <= 1000 and len(splits["val"]) > 0 and len(splits["test"]) > 0
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(train.targets, type(task).make_splits(task)["train"].targets)
    points, iod = unpack(train.targets)
    assert torch.allclose(iod, (points[:, OUTER_EYES[0]] - points[:, OUTER_EYES[1]]).norm(dim=-1))
    assert iod.min() > 4 and ((points >= 0) & (points < 32)).float().mean() > 0.99
    left, right = points[:, [0, 1, 4, 7]], points[:, [3, 2, 5, 8]]  # image-left points, then their mirrors
    assert ((left - right)[..., 0] < 0).float().mean() > 0.95  # "left" is left in the image, roll aside
    x, y = task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))
    assert torch.equal(x, task.train_batch(torch.arange(8), torch.Generator().manual_seed(0))[0])
    assert x.shape == (8, 3, 32, 32) and y.shape == train.targets[:8].shape
