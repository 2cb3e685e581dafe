"""fit's learning-rate schedule: the rate each step is taken with, its length under early stopping, and
``"constant"`` leaving training unchanged bit for bit."""
import math

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np.optim import scheduled_lr
from modelcheck import data

TASKS = ("regression", "binary")


class RecordingAdam(mn.Adam):
    """Adam that records the learning rate of every step it takes."""

    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.seen = []

    def step(self, grads):
        self.seen.append(self.lr)
        super().step(grads)


def model_and_data(n=10, seed=0):
    X, Y = data(n, 3, TASKS, seed)
    return mn.MMoE(3, TASKS, n_experts=2, expert_units=(4,), tower_units=(3,), seed=seed), X, Y


def test_cosine_sets_the_rate_of_every_step_and_keeps_the_optimizers_own():
    model, X, Y = model_and_data(n=10)
    opt = RecordingAdam(model.params, lr=0.02)
    mn.fit(model, X, Y, optimizer=opt, epochs=4, batch_size=4, schedule="cosine")  # 3 batches x 4 epochs
    S = 12
    assert len(opt.seen) == S
    assert opt.seen == [scheduled_lr(0.02, s, S, "cosine") for s in range(1, S + 1)]
    assert opt.seen[0] == 0.02                                              # step 1: the full rate
    assert opt.seen[6] == pytest.approx(0.01, rel=1e-15)                    # step 7 = S/2 + 1: half of it
    assert opt.seen[-1] == pytest.approx(0.02 * (1 - math.cos(math.pi / S)) / 2, rel=1e-12)  # nearly 0
    assert all(a > b for a, b in zip(opt.seen, opt.seen[1:]))              # falling all the way
    assert opt.lr == 0.02                                                   # between steps and after: its own


def test_with_early_stopping_the_schedule_is_as_long_as_every_epoch_would_be():
    model, X, Y = model_and_data(n=9)
    opt = RecordingAdam(model.params, lr=0.01)
    scores = iter([1.0, 0.5, 0.4, 0.3] + [0.0] * 20)  # improves once, then never: stops after epoch 2 + patience 2
    history = mn.fit(model, X, Y, optimizer=opt, epochs=10, batch_size=2, schedule="cosine",
                     early_stopping=mn.EarlyStopping(score=lambda m: next(scores), mode="max", patience=2))
    assert history.epochs == 3 and history.stopped.startswith("early stopping")
    S = 10 * 5  # 10 epochs of ceil(9 / 2) = 5 batches, not the 15 steps taken
    assert opt.seen == [scheduled_lr(0.01, s, S, "cosine") for s in range(1, 16)]
    assert opt.seen[-1] > 0.01 / 2  # the run ended before the rate came half-way down


def test_constant_schedule_is_the_default_bit_for_bit():
    runs = []
    for kwargs in ({}, {"schedule": "constant"}):
        model, X, Y = model_and_data(n=20, seed=1)
        opt = RecordingAdam(model.params, lr=0.005)
        history = mn.fit(model, X, Y, optimizer=opt, epochs=3, batch_size=6, validation=(X, Y), **kwargs)
        runs.append((model.params.flat.copy(), history.val_loss, opt.seen))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert runs[0][2] == runs[1][2] == [0.005] * 12


def test_cosine_trains_differently_from_constant_and_deterministically():
    def trained(schedule):
        model, X, Y = model_and_data(n=20, seed=2)
        mn.fit(model, X, Y, optimizer=mn.Adam(model.params, lr=0.01), epochs=3, batch_size=5, schedule=schedule)
        return model.params.flat

    assert np.array_equal(trained("cosine"), trained("cosine"))
    assert not np.array_equal(trained("cosine"), trained("constant"))


def test_the_schedule_works_with_sgd_and_stacked_replicas():
    X, Y = data(8, 3, TASKS, 3)
    model = mn.stack_models([mn.SharedBottom(3, TASKS, bottom_units=(4,), seed=s) for s in range(2)])
    opt = mn.SGD(model.params, lr=0.1)
    seen = []
    original = opt.step
    opt.step = lambda grads: (seen.append(opt.lr), original(grads))
    mn.fit(model, X, Y, optimizer=opt, epochs=2, batch_size=8, schedule="cosine")
    assert seen == [0.1, scheduled_lr(0.1, 2, 2, "cosine")] and seen[1] == pytest.approx(0.05, rel=1e-15)


@pytest.mark.parametrize("schedule", ["linear", "Cosine", None, 1])
def test_a_bad_schedule_names_itself(schedule):
    model, X, Y = model_and_data()
    with pytest.raises(ValueError, match="schedule must be one of"):
        mn.fit(model, X, Y, schedule=schedule)
