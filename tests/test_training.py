import pytest
import torch
from torch import nn

from hubbench.training import Checkpoint, Schedule, batch_indices, train

SCHED = Schedule(iterations=12, lr=0.1, batch_size=8, milestones=(6, 9))
X, Y = torch.randn(40, 5), torch.randint(0, 3, (40,))


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))


def loss(m, x, y):
    return nn.functional.cross_entropy(m(x), y)


def batch_at(it, seed=1):
    idx = batch_indices(len(X), SCHED.batch_size, it, seed)
    return X[idx], Y[idx]


def state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_same_seed_same_weights_other_seed_differs():
    a, b, c = model(), model(), model()
    train(a, loss, batch_at, SCHED, seed=1)
    train(b, loss, batch_at, SCHED, seed=1)
    train(c, loss, batch_at, SCHED, seed=2)
    for k in state(a):
        assert torch.equal(state(a)[k], state(b)[k])
    assert any(not torch.equal(state(a)[k], state(c)[k]) for k in state(a))


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    ref = model()
    ref_curves = train(ref, loss, batch_at, SCHED, seed=1, eval_every=4, evaluate=lambda m: {"x": 1.0})

    def dying(it):
        if it == 7:
            raise KeyboardInterrupt
        return batch_at(it)

    ckpt = Checkpoint(tmp_path / "c.ckpt", every=3)
    with pytest.raises(KeyboardInterrupt):
        train(model(), loss, dying, SCHED, seed=1, checkpoint=ckpt, eval_every=4, evaluate=lambda m: {"x": 1.0})
    assert ckpt.load()["iteration"] == 6
    resumed = model()
    curves = train(resumed, loss, batch_at, SCHED, seed=1, checkpoint=ckpt, eval_every=4,
                   evaluate=lambda m: {"x": 1.0})
    assert curves == ref_curves
    for k, v in state(ref).items():
        assert torch.equal(v, state(resumed)[k])


def test_lr_schedule_steps_at_milestones():
    assert [SCHED.lr_at(i) for i in (0, 5, 6, 8, 9, 11)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])


def test_each_epoch_is_a_permutation():
    epoch = torch.cat([batch_indices(40, 8, it, seed=3) for it in range(5)])
    assert sorted(epoch.tolist()) == list(range(40))
    assert not torch.equal(epoch, torch.cat([batch_indices(40, 8, it, seed=3) for it in range(5, 10)]))


def test_non_finite_loss_is_an_error():
    with pytest.raises(FloatingPointError, match="iteration 0"):
        train(model(), lambda m, x, y: m(x).sum() * float("nan"), batch_at, SCHED, seed=1)


def test_a_checkpoint_that_does_not_load_restarts_its_stage(tmp_path, capsys):
    ref = model()
    train(ref, loss, batch_at, SCHED, seed=1)
    ckpt = Checkpoint(tmp_path / "c.ckpt", every=3)
    ckpt.path.write_bytes(b"PK\x03\x04 not a checkpoint")
    restarted = model()
    train(restarted, loss, batch_at, SCHED, seed=1, checkpoint=ckpt)
    assert all(torch.equal(v, state(restarted)[k]) for k, v in state(ref).items())
    assert f"hubbench: warning: checkpoint {ckpt.path} does not load (RuntimeError); its stage starts afresh\n" in (
        capsys.readouterr().err)
    assert ckpt.load()["iteration"] == 12  # and its replacement does
