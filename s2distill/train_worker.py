"""One training process of several, started by `accelerate launch` (see train_launch.py):
`python -m s2distill.train_worker JOB_FOLDER` trains the job in that folder with the same code as
a single process (`train.run_training`)."""

from __future__ import annotations

import sys
from pathlib import Path

from s2distill.errors import S2DistillError
from s2distill.train_launch import ERROR_FILE, read_job


def main(argv: list[str] | None = None) -> int:
    [folder] = argv if argv is not None else sys.argv[1:]
    folder = Path(folder)
    job = read_job(folder)
    from s2distill.train import run_training

    try:
        run_training(job["pairs"], job["model_path"], job["output_dir"], job["config"], init_adapter=job["init_adapter"])
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
