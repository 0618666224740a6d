import pytest
import torch

from hubbench import tasks
from hubbench.tasks.base import Protocol

TASK_NAMES = [n for n in tasks.TASKS.names() if not tasks.TASKS.get(n).external_data]  # real data: test_paper_*
CLASSIFICATION = [n for n in TASK_NAMES if tasks.TASKS.get(n).kind == "classification"]  # landmarks: test_landmarks


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_splits_are_deterministic_balanced_and_well_formed(name):
    cls = tasks.TASKS.get(name)
    task = cls()
    splits = task.splits
    again = cls.make_splits(task)
    assert set(splits) == {"train", "val", "test"}
    for split, data in splits.items():
        assert data.images.dtype == torch.uint8 and data.images.shape[1:] == (3, 32, 32)
        assert torch.equal(data.images, again[split].images) and torch.equal(data.targets, again[split].targets)
        assert data.targets.min() >= 0 and data.targets.max() < task.num_classes
    counts = torch.bincount(splits["train"].targets, minlength=task.num_classes)
    assert counts.min() == counts.max() > 0 and 100 <= len(splits["train"]) <= 2000


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_train_batch_is_normalised_and_seeded(name):
    task = tasks.TASKS.get(name)()
    idx = torch.arange(8)
    x1, y1 = task.train_batch(idx, torch.Generator().manual_seed(0))
    x2, _ = task.train_batch(idx, torch.Generator().manual_seed(0))
    assert x1.shape == (8, 3, task.protocol.image_size, task.protocol.image_size)
    assert torch.equal(x1, x2) and torch.equal(y1, task.splits["train"].targets[:8])
    assert -3 < x1.mean() < 3


def test_protocol_overrides_are_validated():
    p = Protocol(image_size=32, batch_size=8, iterations=10, lr=0.1)
    assert p.replace(iterations=20, lr=1).lr == 1.0
    assert [p.replace(iterations=100).lr_at(i) for i in (39, 40, 80)] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(ValueError, match="unknown protocol field 'itrations'"):
        p.replace(itrations=3)
    with pytest.raises(ValueError, match="expects int"):
        p.replace(iterations="many")
    with pytest.raises(ValueError, match="expects bool"):
        p.replace(flip=1)


def test_classification_combine():
    task = tasks.TASKS.get("digits")()
    a, b = torch.randn(4, 10), torch.randn(4, 10)
    assert torch.allclose(task.combine([a, a]), a.log_softmax(-1), atol=1e-5)
    one_hot = torch.tensor([[1.0, 0.0]] * 4)
    assert task.combine([a, b], one_hot).shape == a.shape == task.combine([a, b]).shape
    assert torch.allclose(task.combine([a, b], one_hot), a.log_softmax(-1), atol=1e-5)
    weighted = (0.25 * a.softmax(-1) + 0.75 * b.softmax(-1)).log()
    assert torch.allclose(task.combine([a, b], torch.tensor([[1.0, 3.0]] * 4)), weighted, atol=1e-5)
    mean = (a.softmax(-1) + b.softmax(-1)) / 2
    assert torch.allclose(task.combine([a, b]).exp(), mean, atol=1e-6)


def test_classification_distillation_is_zero_at_the_teacher_and_positive_elsewhere():
    task = tasks.TASKS.get("digits")()
    teacher = torch.randn(4, 10)
    assert task.distillation(teacher, teacher, 4.0).abs() < 1e-6
    assert task.distillation(torch.randn(4, 10), teacher, 4.0) > 0
