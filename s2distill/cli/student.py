"""Commands on a finished run: `predict`, `export`, `export-data` (`register` adds them to the CLI app)."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, soft_wrap=True)


def _fail(exc: Exception) -> None:
    from s2distill.errors import explain_os_error

    message = explain_os_error(exc) if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) else str(exc)
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2) from None


def predict(
    run_dir: Annotated[Path, typer.Argument(help="a run folder with a trained student")],
    input: Annotated[Path | None, typer.Option("--input", help="JSONL: one input per line (an object of the task's "
                                               "fields, or a string: the question's text)")] = None,
    text: Annotated[str | None, typer.Option("--text", help="one question, as text")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="JSONL file to write (default: stdout)")] = None,
    variant: Annotated[str, typer.Option(help="distilled, or a baseline's name")] = "distilled",
    batch: Annotated[int, typer.Option(help="inputs answered together")] = 16,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    cascade: Annotated[bool, typer.Option("--cascade", help="the distilled cascade: System 2 (the run's teacher, "
                                          "program and sandbox) answers where the student's confidence is under "
                                          "the run's threshold (evaluate.cascade)")] = False,
) -> None:
    """Answer with the run's distilled student (the last training stage of the run's recipe), through
    exactly its training prompt; with --cascade, System 2 answers where the student is unsure.

    Writes one JSON line per input: {"input", "answer", "tokens", "output", "confidence"}, and with
    --cascade "answered_by" (student or system2) and, where System 2 answered, "student_answer".
    RUN_DIR may also be a folder `s2distill export` wrote with its cascade.json (--cascade)."""
    from s2distill.artifacts import atomic_write_bytes
    from s2distill.progress import ProgressBar
    from s2distill.scoring.cascade import threshold_text
    from s2distill.student.cascade import load_cascade, summarize
    from s2distill.student.predict import StudentError, load_student, predict_to_jsonl, read_inputs

    if (input is None) == (text is None):
        _fail(ValueError("give exactly one of --input FILE.jsonl or --text \"...\""))
    if out is not None and out.is_dir():
        _fail(ValueError(f"--out {out} is a folder: name the JSONL file to write (e.g. {out / 'predictions.jsonl'})"))
    try:
        student = load_cascade(run_dir, variant=variant) if cascade else load_student(run_dir, variant=variant)
        own = student.student if cascade else student
        console.print(escape(f"student: {own.weights} ({own.where})"))
        if cascade:
            console.print(escape(f"cascade: System 2 ({student.settings['system2']['teacher']}) answers where the "
                                 f"student's confidence is under {threshold_text(student.threshold)}"))
        items = read_inputs(input) if input is not None else [text]
        handle = io.StringIO() if out is not None else sys.stdout
        try:
            with ProgressBar(f"predict ({own.weights.parent.name})", len(items), console, enabled=progress) as advance:
                results = predict_to_jsonl(student, items, handle, workers=batch, progress=advance,
                                           source=str(input) if input is not None else None)
            if cascade:
                console.print(escape(summarize(results)))
        finally:
            student.close()
        if out is not None:  # whole or not at all
            atomic_write_bytes(out, handle.getvalue().encode("utf-8"))
    except (StudentError, ImportError, ValueError, OSError) as exc:
        _fail(exc)
    if out is not None:
        console.print(f"[green]done[/green]: {len(items)} answers in {out}")


def export(
    run_dir: Annotated[Path, typer.Argument(help="a run folder with a trained student")],
    to: Annotated[Path, typer.Option("--to", help="folder to write the model into")],
    variant: Annotated[str, typer.Option(help="distilled, or a baseline's name")] = "distilled",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16")] = "float32",
    gguf: Annotated[bool, typer.Option("--gguf", help="also write model.gguf and an Ollama Modelfile (llama.cpp's converter, "
                                                  "except for students of the embedded model)")] = False,
    llama_cpp: Annotated[Path | None, typer.Option("--llama-cpp", help="a llama.cpp checkout (for --gguf)")] = None,
    gguf_type: Annotated[str, typer.Option(help="GGUF tensor type: f16 or f32 (also bf16, q8_0 with llama.cpp)")] = "f16",
) -> None:
    """Write the distilled student as a plain Hugging Face model (adapter merged), with its
    tokenizer, prompt template and a model card."""
    from s2distill.student.export import ExportError, export_model
    from s2distill.student.gguf import GGUFExportError
    from s2distill.student.predict import StudentError, locate_student

    if dtype not in ("float32", "bfloat16", "float16"):
        _fail(ValueError(f"--dtype {dtype!r}: one of float32, bfloat16, float16"))
    try:
        weights, where = locate_student(run_dir, variant)
        console.print(escape(f"student: {weights} ({where})"))
        folder = export_model(run_dir, to, variant=variant, dtype=dtype, gguf=gguf, llama_cpp=llama_cpp, gguf_type=gguf_type)
    except (ExportError, GGUFExportError, StudentError, ImportError, OSError) as exc:
        _fail(exc)
    console.print(f"[green]done[/green]: {folder}" + (" (model.gguf, Modelfile: `ollama create NAME -f Modelfile`)" if gguf else ""))


def export_data(
    run_dir: Annotated[Path, typer.Argument(help="a run folder")],
    to: Annotated[Path, typer.Option("--to", help="folder to write the data into")],
    variant: Annotated[str, typer.Option(help="distilled, or a baseline's name")] = "distilled",
) -> None:
    """Write the distillation sets and curation verdicts as a datasets folder and JSONL, with a card."""
    from s2distill.student.export import export_data as write
    from s2distill.student.predict import StudentError

    try:
        counts = write(run_dir, to, variant=variant)
    except (StudentError, OSError) as exc:
        _fail(exc)
    console.print("[green]done[/green]: " + ", ".join(f"{k} {v} rows" for k, v in counts.items()) + f" in {to}")


def register(app: typer.Typer) -> None:
    """Add the commands to the `s2distill` app."""
    app.command()(predict)
    app.command()(export)
    app.command("export-data")(export_data)
