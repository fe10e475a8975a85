"""Training in several processes: `train_student` hands the job to `accelerate launch` when the
recipe asks for more than one process (`train.processes`) or names an accelerate config file
(`train.accelerate_config`, e.g. DeepSpeed or FSDP written by `accelerate config`).

The pairs and the settings go to a folder inside the stage's output folder; `accelerate launch`
starts `python -m s2distill.training.worker FOLDER` in every process, and each runs the same training
code as a single process does (`training.sft.run_training`): DDP keeps the replicas in step, the main
process alone writes the weights and renames `weights.partial` into `weights`. Without a config
file the processes are data-parallel on the GPUs, or on the CPU (torchrun with the gloo backend)
where there is no CUDA device. A failed launch raises `TrainingLaunchError` with the end of the
launcher's error output; an s2distill error in a worker (a too-short `max_length`, a NaN loss)
comes back as the same one-line `TrainingError` a single process gives.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from s2distill.errors import TrainingError, TrainingLaunchError
from s2distill.training.trl_pairs import TOKENISED_COLUMNS

JOB_FILE = "job.json"
PAIRS_FILE = "pairs.jsonl"
ERROR_FILE = "error.txt"  # a worker's s2distill error message, passed back to the launching process
TAIL_CHARS = 4000  # how much of the launcher's error output a failure carries


def wants_launch(config) -> bool:
    """Whether training runs in processes of its own (otherwise in this one, as always)."""
    return config.processes > 1 or config.accelerate_config is not None


def write_job(folder: Path, pairs: Sequence[dict], model_path: Path, output_dir: Path, config,
              init_adapter: Path | None, soft_loss: dict | None = None) -> None:
    with (folder / PAIRS_FILE).open("w") as f:
        for pair in pairs:
            f.write(json.dumps({k: pair[k] for k in ("prompt", "completion", *TOKENISED_COLUMNS) if k in pair}) + "\n")
    job = {"model_path": str(model_path), "output_dir": str(output_dir), "config": config.model_dump(mode="json"),
           "init_adapter": str(init_adapter) if init_adapter is not None else None, "soft_loss": soft_loss}
    (folder / JOB_FILE).write_text(json.dumps(job, indent=1))


def read_job(folder: Path) -> dict:
    """The job `write_job` wrote: its pairs, paths and `TrainConfig`."""
    from s2distill.config.recipe import TrainConfig

    job = json.loads((folder / JOB_FILE).read_text())
    pairs = [json.loads(line) for line in (folder / PAIRS_FILE).read_text().splitlines() if line.strip()]
    return {"pairs": pairs, "model_path": Path(job["model_path"]), "output_dir": Path(job["output_dir"]),
            "config": TrainConfig.model_validate(job["config"]),
            "init_adapter": Path(job["init_adapter"]) if job["init_adapter"] else None,
            "soft_loss": job.get("soft_loss")}


def free_port() -> int:
    """A free TCP port on this machine's loopback: the training processes' rendezvous (accelerate's
    default, 29500, clashes with any other run on it; a config file keeps its own, which every
    machine must share), and benchmarks/llama_server.py's server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(config, job_folder: Path) -> list[str]:
    """The `accelerate launch` command line that trains the job in `job_folder`."""
    from s2distill.hardware import resolve_dtype

    command = [sys.executable, "-m", "accelerate.commands.launch"]
    if config.accelerate_config is not None:  # the file decides the distributed type (DeepSpeed, FSDP, ...)
        command += ["--config_file", str(Path(config.accelerate_config).expanduser())]
        if config.processes > 1:
            command += ["--num_processes", str(config.processes)]
    else:  # DDP through torchrun: on the GPUs, or on the CPU with gloo where there is no CUDA device
        # (`--cpu` would not do: accelerate then starts one process, or needs MPI for more)
        command += ["--multi_gpu", "--num_processes", str(config.processes), "--num_machines", "1",
                    "--main_process_port", str(free_port())]
    # the same precision training/sft.py gives TrainingArguments (bf16 where the hardware has it natively)
    bf16 = resolve_dtype(config.precision) == "bfloat16"
    command += ["--mixed_precision", "bf16" if bf16 else "no", "--dynamo_backend", "no",
                "-m", "s2distill.training.worker", str(job_folder)]
    return command


def _stream(process: subprocess.Popen) -> str:
    """Copy the process's error output (TRL's progress bars, warnings) to ours as it comes, and
    return its last TAIL_CHARS characters."""
    tail = b""
    fd = process.stderr.fileno()
    while chunk := os.read(fd, 65536):
        tail = (tail + chunk)[-4 * TAIL_CHARS:]
        try:
            sys.stderr.write(chunk.decode(errors="replace"))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
    return tail.decode(errors="replace")[-TAIL_CHARS:]


def launch_training(pairs: Sequence[dict], model_path: Path, output_dir: Path, config, *,
                    init_adapter: Path | None = None, soft_loss: dict | None = None) -> Path:
    """Train in processes of their own through `accelerate launch`; return `output_dir/weights`."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    job_folder = Path(tempfile.mkdtemp(prefix="launch-", dir=output_dir))
    try:
        write_job(job_folder, pairs, Path(model_path).resolve(), output_dir.resolve(), config,
                  Path(init_adapter).resolve() if init_adapter is not None else None, soft_loss)
        command = launch_command(config, job_folder)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        package_root = str(Path(__file__).resolve().parents[2])  # the workers import this same s2distill
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        process = subprocess.Popen(command, stdout=None, stderr=subprocess.PIPE, env=env)
        try:
            tail = _stream(process)
            code = process.wait()
        except BaseException:  # Ctrl-C or an error here: never leave the workers training
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            raise
        error = job_folder / ERROR_FILE
        if error.exists():
            raise TrainingError(error.read_text().strip())
        weights = output_dir / "weights"
        if code != 0 or not weights.is_dir():
            reason = f"exited with code {code}" if code != 0 else "finished without writing the weights"
            raise TrainingLaunchError(
                f"training in {config.processes} process(es) through `accelerate launch` {reason}"
                + (f" (train.accelerate_config: {config.accelerate_config})" if config.accelerate_config else "")
                + f"; the end of its error output:\n{tail.strip()}")
        return weights
    finally:
        shutil.rmtree(job_folder, ignore_errors=True)
