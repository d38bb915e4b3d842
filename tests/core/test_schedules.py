"""Learning-rate schedules: the rate of every batch against a hand computation and against
torch.optim.lr_scheduler, a rate set by hand scaling the schedule, and resuming exactly."""
import math

import numpy as np
import pytest

from netbuilder.core.checkpoint import load_checkpoint, save_checkpoint
from netbuilder.core.inference import infer
from netbuilder.core.schedules import Schedule
from netbuilder.core.trainer import BatchEnd, Trainer
from tests.core.test_trainer import blobs, conv_project

LR = 0.01


def rates(schedule, epochs=4, data=None, **training):
    """The learning rate of every batch of a run with ``schedule`` (and the trainer)."""
    trainer = Trainer(conv_project(schedule=schedule, learning_rate=LR, optimizer="sgd", **training),
                      data or blobs(n=80))
    seen = [e.learning_rate for e in trainer.run(epochs) if isinstance(e, BatchEnd)]
    assert trainer.history.status == "finished"
    return seen, trainer


def test_constant_step_cosine_and_warmup_by_hand():
    seen, trainer = rates(None)
    bpe = trainer.history.epochs and len(trainer.history.batch_losses[0])
    assert set(seen) == {LR}
    seen, _ = rates({"kind": "step", "every": 2, "gamma": 0.5})
    assert seen == [LR * 0.5 ** ((i // bpe) // 2) for i in range(len(seen))]
    seen, _ = rates({"kind": "cosine", "floor": 0.1})
    total = 4 * bpe
    assert seen == pytest.approx([LR * (0.1 + 0.9 * (1 + math.cos(math.pi * i / total)) / 2) for i in range(total)])
    seen, _ = rates({"kind": "cosine", "warmup": 1})
    warm = bpe
    assert seen[:warm] == pytest.approx([LR * (i + 1) / warm for i in range(warm)])
    rest = 3 * bpe
    assert seen[warm:] == pytest.approx([LR * (1 + math.cos(math.pi * i / rest)) / 2 for i in range(rest)])


def test_the_schedules_torch_has_give_its_rates():
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler

    def torch_rates(make, steps):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=LR)
        sched = make(opt)
        out = []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    seen, trainer = rates({"kind": "cosine", "floor": 0.2})
    steps = len(seen)
    assert seen == pytest.approx(torch_rates(lambda o: lr_scheduler.CosineAnnealingLR(o, steps, eta_min=0.2 * LR),
                                             steps), rel=1e-12)
    seen, _ = rates({"kind": "constant", "warmup": 2})
    warm = 2 * steps // 4
    assert seen[:warm] == pytest.approx(torch_rates(
        lambda o: lr_scheduler.LinearLR(o, start_factor=1 / warm, end_factor=1.0, total_iters=warm - 1), warm))
    # step: per epoch, as StepLR stepped at each epoch's end
    seen, _ = rates({"kind": "step", "every": 1, "gamma": 0.3})
    per_epoch = seen[::steps // 4]
    assert per_epoch == pytest.approx(torch_rates(lambda o: lr_scheduler.StepLR(o, 1, gamma=0.3), 4))


def test_plateau_reduces_as_torchs_reduce_on_plateau():
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler

    losses = [1.0, 0.9, 0.95, 0.91, 0.92, 0.89, 0.9, 0.9, 0.9, 0.5, 0.6, 0.6]
    ours = Schedule.from_spec({"kind": "plateau", "patience": 1, "factor": 0.5, "min_delta": 0.02})
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=0.02, threshold_mode="abs")
    for loss in losses:
        ours.epoch_ended(loss)
        theirs.step(loss)
        assert ours.scale == pytest.approx(opt.param_groups[0]["lr"])


def test_a_rate_set_by_hand_is_used_at_once_and_the_schedule_goes_on_from_it():
    trainer = Trainer(conv_project(schedule={"kind": "cosine"}, learning_rate=LR, optimizer="sgd"), blobs(n=80))
    seen = []
    for event in trainer.run(3):
        if isinstance(event, BatchEnd):
            seen.append((trainer._factor, event.learning_rate))
            if len(seen) == 4:
                trainer.control.set_learning_rate(0.05)
    factor, lr = seen[4]
    assert lr == pytest.approx(0.05)  # the very next batch trains at the rate set
    later_factor, later = seen[6]
    assert later == pytest.approx(0.05 * later_factor / factor)  # and the cosine carries on from it


def test_resume_continues_the_schedule_and_plateaus_state_exactly(tmp_path):
    spec = {"kind": "plateau", "patience": 0, "factor": 0.5, "warmup": 1}
    data = blobs(n=80)
    unbroken, unbroken_trainer = rates(spec, epochs=5, data=data)
    first = Trainer(conv_project(schedule=spec, learning_rate=LR, optimizer="sgd"), data)
    first_rates = [e.learning_rate for e in first.run(2) if isinstance(e, BatchEnd)]
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    resumed = Trainer.from_checkpoint(load_checkpoint(tmp_path / "ck.npz"), data)
    rest = [e.learning_rate for e in resumed.run(3) if isinstance(e, BatchEnd)]
    assert first_rates + rest == unbroken
    for name, value in unbroken_trainer.network.state_dict().items():
        np.testing.assert_array_equal(value, resumed.network.state_dict()[name])


@pytest.mark.parametrize("spec,words", [
    ({"kind": "exponential"}, "schedule.kind must be one of constant, step, cosine, plateau"),
    ({"kind": "step", "gamma": 1.5}, "schedule.gamma must be a number between 0 and 1"),
    ({"kind": "cosine", "every": 2}, "'every' is not a setting of a cosine schedule"),
    ({"kind": "plateau", "warmup": -1}, "schedule.warmup must be a whole number of epochs"),
    ("cosine", "schedule must be an object"),
])
def test_bad_schedules_are_one_line_naming_the_setting(spec, words):
    project = conv_project()
    project.training.schedule = spec
    messages = [p.message for p in infer(project).errors if p.field == "training.schedule"]
    assert len(messages) == 1 and words.replace("'", '"') in messages[0].replace("'", '"')
