"""One training process of several, started by `accelerate launch` (see training/launch.py):
`python -m s2distill.training.worker JOB_FOLDER` trains the job in that folder with the same code as
a single process (`training.sft.run_training`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from s2distill.allocator import tune_allocator
from s2distill.errors import S2DistillError, TrainingError
from s2distill.training.launch import ERROR_FILE, read_job


def check_world(config) -> None:
    """Fail when accelerate started another number of processes than `train.processes` asks for
    (an accelerate config of `distributed_type: MULTI_CPU` starts one, unless MPI is set up)."""
    started = int(os.environ.get("WORLD_SIZE", "1"))
    if config.processes > 1 and started != config.processes:
        raise TrainingError(
            f"train.processes={config.processes}, but accelerate started {started} process(es)"
            + (f" with {config.accelerate_config}" if config.accelerate_config else "")
            + ": for data-parallel processes on the CPU without MPI, use `distributed_type: MULTI_GPU` "
            "(it falls back to the gloo backend where there is no CUDA device), or leave out train.accelerate_config")


def main(argv: list[str] | None = None) -> int:
    tune_allocator()
    [folder] = argv if argv is not None else sys.argv[1:]
    folder = Path(folder)
    job = read_job(folder)
    from s2distill.training.sft import run_training

    try:
        check_world(job["config"])
        run_training(job["pairs"], job["model_path"], job["output_dir"], job["config"], init_adapter=job["init_adapter"],
                     soft_loss=job["soft_loss"])
    except S2DistillError as exc:  # the launching process raises it again, as one line
        try:
            with (folder / ERROR_FILE).open("x") as f:  # the first process to fail tells
                f.write(str(exc))
        except FileExistsError:
            pass
        return 1
    finally:
        import torch.distributed

        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
