"""One of the processes tests/core/test_distributed.py starts with torchrun: trains each project
given for one epoch as a DistributedTorchTrainer and writes what this process ended with (its
weights, batch losses, epoch metrics) under OUTDIR, named by rank, for the test to compare. Then it
trains the first project again, in float64 for three epochs, and once more, stopped from rank 1
alone after its third batch.

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/core/distributed_worker.py OUTDIR PROJECT...
"""
import json
import sys
from pathlib import Path

import numpy as np

from netbuilder.core.datasets import load_project_dataset
from netbuilder.core.project import load_project
from netbuilder.core.torch_distributed import (
    launched_by_torchrun,
    make_distributed_trainer,
    process_device,
    process_group,
)
from netbuilder.core.trainer import BatchEnd


def main(outdir: Path, projects: list[Path]) -> None:
    import torch

    torch.set_num_threads(1)
    launch = launched_by_torchrun()
    device = process_device(launch, "cpu")
    with process_group(device):
        for path in projects:
            project = load_project(path)
            trainer = make_distributed_trainer(project, load_project_dataset(project, base_dir=path.parent), device)
            history = trainer.fit(epochs=1)
            name = f"{path.stem}.rank{launch.rank}"
            np.savez(outdir / f"{name}.npz", **trainer.network.state_dict())
            e = history.epochs[-1]
            (outdir / f"{name}.json").write_text(json.dumps({
                "status": history.status, "batch_losses": history.batch_losses[0], "train_loss": e.train_loss,
                "train_accuracy": e.train_accuracy, "val_loss": e.val_loss, "val_accuracy": e.val_accuracy,
                "world": trainer.world, "notes": trainer.notes}))

        project = load_project(projects[0])  # in float64, three epochs
        trainer = make_distributed_trainer(project, load_project_dataset(project, base_dir=projects[0].parent), device,
                                           dtype=np.float64)
        history = trainer.fit(epochs=3)
        np.savez(outdir / f"float64.rank{launch.rank}.npz", **trainer.network.state_dict())
        (outdir / f"float64.rank{launch.rank}.json").write_text(json.dumps({
            "status": history.status, "batch_losses": sum(history.batch_losses, [])}))

        project = load_project(projects[0])
        trainer = make_distributed_trainer(project, load_project_dataset(project, base_dir=projects[0].parent), device)

        def stop_from_rank_1(event):
            if launch.rank == 1 and isinstance(event, BatchEnd) and event.batch == 3:
                trainer.stop()

        history = trainer.fit(stop_from_rank_1, epochs=1)
        np.savez(outdir / f"stopped.rank{launch.rank}.npz", **trainer.network.state_dict())
        (outdir / f"stopped.rank{launch.rank}.json").write_text(json.dumps({
            "status": history.status, "batches": len(history.batch_losses[0])}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]])
