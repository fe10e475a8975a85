"""Training in several processes (training/launch.py): `accelerate launch` with two CPU processes
(gloo) saves the adapter once, the loss falls, and failures come back as one clear error."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from s2distill.config.recipe import TrainConfig
from s2distill.errors import TrainingError, TrainingLaunchError
from s2distill.lm import build_lm
from s2distill.lm.configs import TinyModel
from s2distill.lm.tiny import tiny_model_dir
from s2distill.training.sft import train_student
from s2distill.training.launch import launch_command, wants_launch
from s2distill.training.log import read_history
from s2distill.types import Request

PAIRS = [
    {"prompt": "Q: Take the last letters of the words in \"Ada Bob\" and concatenate them.\nA:", "completion": " ab\n"},
    {"prompt": "Q: Take the last letters of the words in \"Eve Tom\" and concatenate them.\nA:", "completion": " em\n"},
]
SMALL = {"batch_size": 2, "lora_r": 4, "lora_alpha": 8}


def leftovers(output_dir):
    """What a finished training must not leave behind."""
    return sorted(p.name for p in output_dir.iterdir() if p.name not in ("weights", "train_log.jsonl"))


def test_the_settings_are_checked(tmp_path):
    with pytest.raises(ValidationError):
        TrainConfig(processes=0)
    with pytest.raises(ValidationError, match="accelerate config file not found"):
        TrainConfig(accelerate_config=str(tmp_path / "missing.yaml"))
    (tmp_path / "ds.yaml").write_text("distributed_type: DEEPSPEED\n")
    assert wants_launch(TrainConfig(accelerate_config=str(tmp_path / "ds.yaml")))
    assert wants_launch(TrainConfig(processes=2)) and not wants_launch(TrainConfig())


def test_the_launch_command(tmp_path):
    command = launch_command(TrainConfig(processes=2), tmp_path)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in command and command[command.index("--num_processes") + 1] == "2"
    assert "--cpu" not in command  # accelerate would start one process (or want MPI)
    assert command[-3:] == ["-m", "s2distill.training.worker", str(tmp_path)]
    (tmp_path / "fsdp.yaml").write_text("distributed_type: FSDP\n")
    command = launch_command(TrainConfig(accelerate_config=str(tmp_path / "fsdp.yaml")), tmp_path)
    assert command[command.index("--config_file") + 1] == str(tmp_path / "fsdp.yaml")
    assert not {"--multi_gpu", "--num_processes", "--main_process_port"} & set(command)  # the file decides


def test_one_process_trains_in_this_process(tmp_path, monkeypatch):
    def no_subprocess(*args, **kwargs):
        raise AssertionError("a single process must not start a subprocess")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    monkeypatch.setattr(subprocess, "run", no_subprocess)
    weights = train_student(PAIRS * 2, tiny_model_dir(), tmp_path, TrainConfig(epochs=1, **SMALL))
    assert (weights / "adapter_config.json").exists() and leftovers(tmp_path) == []


def test_a_bad_accelerate_config_gives_a_clear_error(tmp_path):
    config_file = tmp_path / "bad.yaml"
    config_file.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: NOT_A_TYPE\nnum_processes: 2\n")
    out = tmp_path / "stage"
    with pytest.raises(TrainingLaunchError, match="NOT_A_TYPE") as failure:
        train_student(PAIRS, tiny_model_dir(), out, TrainConfig(accelerate_config=str(config_file), processes=2))
    assert "accelerate launch" in str(failure.value) and str(config_file) in str(failure.value)
    assert leftovers(out) == []  # the job folder is removed


def test_a_worker_error_comes_back_as_one_line(tmp_path):
    """accelerate starts one process for a MULTI_CPU config without MPI: the worker says so."""
    config_file = tmp_path / "cpu.yaml"
    config_file.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_CPU\nnum_machines: 1\n"
                           "num_processes: 2\nmixed_precision: 'no'\n")
    with pytest.raises(TrainingError, match="accelerate started 1 process") as failure:
        train_student(PAIRS, tiny_model_dir(), tmp_path / "stage", TrainConfig(accelerate_config=str(config_file), processes=2))
    assert not isinstance(failure.value, TrainingLaunchError)  # s2distill's own message, not a traceback's tail


def test_two_cpu_processes_save_the_adapter_once_and_the_loss_falls(tmp_path):
    """Not marked slow: 9 to 26 s measured on two shared cores (two processes each import
    transformers and load the model; the 16 training steps take about 1 s)."""
    config = TrainConfig(processes=2, epochs=8, learning_rate=1e-2, batch_size=2, lora_r=8, lora_alpha=16)
    weights = train_student(PAIRS * 4, tiny_model_dir(), tmp_path, config)
    assert weights == tmp_path / "weights" and (weights / "adapter_config.json").exists()
    assert leftovers(tmp_path) == []  # no weights.partial, checkpoints or job folder
    history = read_history(tmp_path)
    losses = [row["loss"] for row in history if "loss" in row]
    steps = [row["step"] for row in history if "loss" in row]
    # 8 pairs, 2 per process, 2 processes: 2 steps an epoch, each logged once (by process 0)
    assert steps == list(range(1, 17)) and sum("train_runtime" in row for row in history) == 1
    # the untrained model's loss is near ln 260 (its byte vocabulary), not that over the 2 processes
    assert losses[0] > 4.5, losses
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < first - 0.3, losses  # one process falls by about 0.8 on this job
    tuned = build_lm(TinyModel(), adapter=weights)
    [[completion]] = tuned.generate([Request(prompt=PAIRS[0]["prompt"], temperature=0.0, max_tokens=4)])
    assert completion.usage.completion_tokens >= 1
