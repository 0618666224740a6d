import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

from hubbench.logs import to_stderr
from hubbench.stopping import deferred
from hubbench.training import Checkpoint, Schedule, batch_indices, train

SCHED = Schedule(iterations=12, lr=0.1, batch_size=8, milestones=(0.5, 0.75))
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


def test_cosine_schedule_with_warm_up():
    cosine = Schedule(iterations=12, lr=0.1, batch_size=8, lr_schedule="cosine", warmup=0.25)
    assert [cosine.lr_at(i) for i in (0, 1, 2)] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1])  # 3 warm-up steps
    half = [0.05 * (1 + math.cos(math.pi * t / 9)) for t in (0, 4, 8)]  # annealed over the 9 steps after them
    assert [cosine.lr_at(i) for i in (3, 7, 11)] == pytest.approx(half)
    warm_step = Schedule(iterations=12, lr=0.1, batch_size=8, milestones=(0.5,), warmup=0.25)
    assert [warm_step.lr_at(i) for i in (0, 3, 5, 6)] == pytest.approx([0.1 / 3, 0.1, 0.1, 0.01])


def test_the_optimizer_seam_keeps_parameter_groups():
    m = model()
    groups = [{"params": m[0].parameters()}, {"params": m[3].parameters(), "lr_mult": 10.0, "weight_decay": 0.0}]
    adamw = Schedule(iterations=12, lr=0.1, batch_size=8, optimizer="adamw", weight_decay=0.01)
    opt = adamw.build_optimizer(groups)
    assert isinstance(opt, torch.optim.AdamW) and [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    assert isinstance(SCHED.build_optimizer(model().parameters()), torch.optim.SGD)
    a, b = model(), model()
    train(a, loss, batch_at, adamw, seed=1)
    train(b, loss, batch_at, SCHED, seed=1)
    assert any(not torch.equal(v, state(b)[k]) for k, v in state(a).items())


@pytest.mark.parametrize(("field", "value", "must"), [
    ("optimizer", "adam", "one of sgd, adamw"), ("lr_schedule", "linear", "one of step, cosine"),
    ("warmup", 1.0, r"in \[0, 1\)"), ("milestones", (6, 9), r"each in \(0, 1\]")])
def test_schedule_fields_are_checked(field, value, must):
    with pytest.raises(ValueError, match=f"protocol field '{field}' must be .*{must}"):
        Schedule(iterations=12, lr=0.1, batch_size=8, **{field: value})


def test_training_stopped_at_a_step_continues_bit_identically(tmp_path):
    """`stop` trains part of a schedule and checkpoints there: a search's rung. Continued later, the run equals an
    uninterrupted one, weights and curves alike (the learning rate follows the whole schedule throughout)."""
    ref = model()
    ref_curves = train(ref, loss, batch_at, SCHED, seed=1, eval_every=4, evaluate=lambda m: {"x": 1.0})
    ckpt = Checkpoint(tmp_path / "c.ckpt", every=100)
    part = model()
    train(part, loss, batch_at, SCHED, seed=1, checkpoint=ckpt, eval_every=4, evaluate=lambda m: {"x": 1.0}, until=7)
    assert ckpt.load()["iteration"] == 7
    continued = model()
    curves = train(continued, loss, batch_at, SCHED, seed=1, checkpoint=ckpt, eval_every=4,
                   evaluate=lambda m: {"x": 1.0})
    assert curves == ref_curves
    assert all(torch.equal(v, state(continued)[k]) for k, v in state(ref).items())


def test_each_epoch_is_a_permutation():
    epoch = torch.cat([batch_indices(40, 8, it, seed=3) for it in range(5)])
    assert sorted(epoch.tolist()) == list(range(40))
    assert not torch.equal(epoch, torch.cat([batch_indices(40, 8, it, seed=3) for it in range(5, 10)]))


def test_non_finite_loss_is_an_error():
    with pytest.raises(FloatingPointError, match="training loss became nan at step 1$"):
        train(model(), lambda m, x, y: m(x).sum() * float("nan"), batch_at, SCHED, seed=1)


def test_a_diverging_loss_names_the_step_it_broke_at():
    """The landmark cells' case: 0.99, 0.8, then 1 787, 5e8, 3e25 and nan at step 6; a spike that comes back below
    10x the lowest (step 3) is not the break."""
    losses = iter([0.99, 0.8, 9.0, 0.7, 1787.0, 5e8, 3e25, float("nan")] + [1.0] * 4)
    with pytest.raises(FloatingPointError, match=re.escape("training loss became nan at step 8; it broke at step 5, "
                                                           "rising to 1.79e+03 from a lowest of 0.7, and grew from "
                                                           "there: lower the learning rate")):
        train(model(), lambda m, x, y: m(x).sum() * 0 + next(losses), batch_at, SCHED, seed=1)


def test_a_checkpoint_that_does_not_load_restarts_its_stage(tmp_path, capsys):
    ref = model()
    train(ref, loss, batch_at, SCHED, seed=1)
    ckpt = Checkpoint(tmp_path / "c.ckpt", every=3)
    ckpt.path.write_bytes(b"PK\x03\x04 not a checkpoint")
    restarted = model()
    with to_stderr():  # as the command line shows the log
        train(restarted, loss, batch_at, SCHED, seed=1, checkpoint=ckpt)
    assert all(torch.equal(v, state(restarted)[k]) for k, v in state(ref).items())
    assert f"hubbench: warning: checkpoint {ckpt.path} does not load (RuntimeError); its stage starts afresh\n" in (
        capsys.readouterr().err)
    assert ckpt.load()["iteration"] == 12  # and its replacement does


KILLED_ATTEMPT = """
import os, signal, sys, time
import torch
from torch import nn
from hubbench.stopping import deferred
from hubbench.training import Checkpoint, Schedule, batch_indices, train

X, Y = torch.randn(40, 5), torch.randint(0, 3, (40,))
steps = []

def loss(m, x, y):  # steps 4 to 6 take 0.2 s each, after the checkpoint of step 4; step 7 ends the attempt
    steps.append(1)
    if len(steps) == 8:
        os.kill(os.getpid(), signal.SIGKILL) if sys.argv[2] == "sigkill" else sys.exit(-1)  # as submitit's requeue
    if len(steps) > 4:
        time.sleep(0.2)
    return nn.functional.cross_entropy(m(x), y)

torch.manual_seed(0)
checkpoint = Checkpoint(sys.argv[1], every=4, count_every_s=0 if sys.argv[2] == "sigkill" else 1e9)
train(nn.Linear(5, 3), loss, lambda it: (X[batch_indices(40, 8, it, 1)], Y[batch_indices(40, 8, it, 1)]),
      Schedule(iterations=12, lr=0.1, batch_size=8), seed=1, checkpoint=checkpoint)
"""


@pytest.mark.parametrize("how", ["sigkill", "exit"])
def test_a_stage_counts_what_a_killed_attempt_trained_after_its_last_checkpoint(how, tmp_path):
    """A stage's seconds add up all its attempts: those of the steps an attempt trained after its last
    checkpoint count, whether it was killed outright (its seconds are counted as it goes) or exited (as
    submitit's requeue at SLURM's warning signal does: they are counted as it ends)."""
    path = tmp_path / "c.ckpt"
    done = subprocess.run([sys.executable, "-c", KILLED_ATTEMPT, str(path), how], capture_output=True, text=True)
    assert done.returncode == (-signal.SIGKILL if how == "sigkill" else 255), done.stderr
    checkpoint = Checkpoint(path, every=4)
    state = checkpoint.load()
    assert state["iteration"] == 4
    assert checkpoint.carried_s >= state["seconds"] + 3 * 0.2  # steps 4 to 6, trained again by the next attempt
    carried = checkpoint.carried_s
    train(nn.Linear(5, 3), loss, batch_at, SCHED, seed=1, checkpoint=checkpoint)
    assert checkpoint.load()["seconds"] >= carried  # the resumed attempt adds its own
    checkpoint.clear()
    assert not list(tmp_path.iterdir())


def test_a_stop_signal_during_training_waits_for_a_checkpoint_then_resumes_bit_identical(tmp_path):
    """SLURM's warning signal mid-step: the loop ends its step and saves a checkpoint there (not only at its
    periodic ones) before submitit's handler exits; the next attempt resumes from it, bit-identical."""
    ref = model()
    ref_curves = train(ref, loss, batch_at, SCHED, seed=1, eval_every=4, evaluate=lambda m: {"x": 1.0})
    calls = []

    def signalled(m, x, y):
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGUSR2)  # during step 5
        return loss(m, x, y)

    def requeue(signum, frame):  # what submitit's handler does, after requeueing the job
        raise SystemExit(-1)

    ckpt = Checkpoint(tmp_path / "c.ckpt", every=100)
    before = signal.signal(signal.SIGUSR2, requeue)
    try:
        with deferred(signal.SIGUSR2), pytest.raises(SystemExit):
            train(model(), signalled, batch_at, SCHED, seed=1, checkpoint=ckpt, eval_every=4,
                  evaluate=lambda m: {"x": 1.0})
        with deferred(signal.SIGUSR2), pytest.raises(SystemExit):  # outside a training loop: at once
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert ckpt.load()["iteration"] == 6 and len(calls) == 6
    resumed = model()
    assert train(resumed, loss, batch_at, SCHED, seed=1, checkpoint=ckpt, eval_every=4,
                 evaluate=lambda m: {"x": 1.0}) == ref_curves
    assert all(torch.equal(v, state(resumed)[k]) for k, v in state(ref).items())
