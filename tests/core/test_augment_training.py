"""Augmentation in training: the project's ``training.augmentation`` reaches every training batch
(of either engine) and never the validation split; runs stay reproducible and resumable."""
import json

import numpy as np
import pytest

from netbuilder.core.augment import Augmentation
from netbuilder.core.checkpoint import load_checkpoint, save_checkpoint
from netbuilder.core.errors import ProjectError
from netbuilder.core.inference import infer
from netbuilder.core.project import parse_project
from netbuilder.core.trainer import Trainer
from tests.core.test_trainer import blobs, conv_project

AUG = {"shift": 1, "flip": 0.5, "noise": 0.05}


def trained(augmentation, epochs=2, data=None):
    trainer = Trainer(conv_project(augmentation=augmentation), data or blobs(n=80))
    trainer.fit(epochs=epochs)
    assert trainer.history.status == "finished"
    return trainer


def test_every_training_batch_is_augmented_and_the_validation_split_never(monkeypatch):
    seen = []
    original = Augmentation.augment

    def spy(self, x, rng):
        seen.append(np.array(x))
        return original(self, x, rng)

    monkeypatch.setattr(Augmentation, "augment", spy)
    trainer = Trainer(conv_project(augmentation=AUG), blobs(n=80))
    validated = []
    real = trainer._evaluate
    trainer._evaluate = lambda x, y: (validated.append(np.array(x)), real(x, y))[1]
    trainer.fit(epochs=2)
    batches = sum(len(b) for b in trainer.history.batch_losses)
    assert len(seen) == batches == 2 * int(np.ceil(len(trainer.train_idx) / trainer.batch_size))
    np.testing.assert_array_equal(np.concatenate(validated[:1]), trainer._x[trainer.val_idx])  # raw images


def test_the_same_seed_gives_the_same_run_and_augmentation_changes_it_but_not_the_start():
    a, b, plain = trained(AUG), trained(AUG), trained(None)
    for name, value in a.network.state_dict().items():
        np.testing.assert_array_equal(value, b.network.state_dict()[name])
    assert a.history.train_loss != plain.history.train_loss
    first = Trainer(conv_project(augmentation=AUG), blobs(n=80)).network.state_dict()
    start = Trainer(conv_project(augmentation=None), blobs(n=80)).network.state_dict()
    assert all(np.array_equal(first[k], start[k]) for k in first)  # its own random stream


def test_a_checkpoint_resumes_an_augmented_run_exactly(tmp_path):
    unbroken = trained(AUG, epochs=3)
    first = trained(AUG, epochs=1)
    save_checkpoint(tmp_path / "ck.npz", first.checkpoint())
    resumed = Trainer.from_checkpoint(load_checkpoint(tmp_path / "ck.npz"), blobs(n=80))
    resumed.fit(epochs=2)
    assert resumed.history.train_loss == unbroken.history.train_loss
    for name, value in unbroken.network.state_dict().items():
        np.testing.assert_array_equal(value, resumed.network.state_dict()[name])


def test_both_engines_train_on_the_same_augmented_batches():
    torch = pytest.importorskip("torch")
    from netbuilder.core.torch_engine import TorchTrainer

    torch.set_num_threads(1)
    data = blobs(n=80)
    a = Trainer(conv_project(augmentation=AUG), data)
    b = TorchTrainer(conv_project(augmentation=AUG), data, device="cpu")
    for trainer in (a, b):
        trainer.fit(epochs=1)
    np.testing.assert_allclose(b.history.batch_losses[0], a.history.batch_losses[0], rtol=5e-5)


def test_the_setting_is_saved_checked_and_left_out_when_absent():
    project = conv_project(augmentation=AUG)
    again = parse_project(project.to_json())
    assert again.training.augmentation == AUG
    assert "augmentation" not in json.loads(conv_project().to_json())["training"]
    project.training.augmentation = {"rotate": 400}
    errors = [p for p in infer(project).errors if p.field == "training.augmentation"]
    assert len(errors) == 1 and errors[0].message.startswith("training.augmentation.rotate must be")
    bad = json.loads(conv_project().to_json())
    bad["training"]["augmentation"] = "flip"
    with pytest.raises(ProjectError, match="training.augmentation must be an object"):
        parse_project(json.dumps(bad))
