"""The `s2distill` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from s2distill.allocator import tune_allocator
from s2distill.cli.cache import register as register_cache_command
from s2distill.cli.student import register as register_student_commands
from s2distill.config.recipe import load_recipe
from s2distill.errors import S2DistillError, explain_os_error

console = Console(stderr=True, soft_wrap=True)
# The exit code of an internal error (sysexits' EX_SOFTWARE): not 2, the code of an error in the
# user's input, folder or machine that the message explains, nor click's 2 for a usage error.
INTERNAL_ERROR = 70


def _clicks_own() -> tuple[type[BaseException], ...]:
    """What click and typer raise to end a command on purpose (usage errors, exits, Ctrl-C): from
    click and from the copy of click that newer typer releases carry (`typer._click`)."""
    kinds: list[type[BaseException]] = [typer.Exit, typer.Abort]
    modules = [click]
    try:
        from typer import _click as vendored

        modules.append(vendored)
    except ImportError:
        pass
    for module in modules:
        kinds += [kind for name in ("ClickException", "Exit", "Abort", "TyperException")
                  if isinstance(kind := getattr(module.exceptions, name, None), type)]
    return tuple(kinds)


_CLICKS_OWN = _clicks_own()


class _NoTracebacks(TyperGroup):
    """Every command runs inside this: an error s2distill explains (`S2DistillError`) not caught by
    its command is still one line (exit 2), and an unexpected exception is never a traceback for
    the user: one line naming it and a file holding the full traceback (exit `INTERNAL_ERROR`)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except _CLICKS_OWN:
            raise  # usage errors, a command's own exit, and Ctrl-C: handled as they always were
        except S2DistillError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except Exception as exc:  # noqa: BLE001 - the last resort: a bug of ours, reported as one
            saved = save_traceback(exc)
            lines = str(exc).strip().splitlines()
            what = f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__
            where = f"the traceback is saved in {saved}" if saved else "the traceback could not be saved"
            console.print(f"[red]error:[/red] internal error ({escape(what)}); {escape(where)}; please report it")
            raise typer.Exit(INTERNAL_ERROR) from None


def save_traceback(exc: BaseException) -> Path | None:
    """Write the full traceback of `exc` (with the command line and versions) to a new file under
    the user cache (`paths.cache_home()/errors`, else the temporary folder); None if neither is writable."""
    import os
    import sys
    import tempfile
    import time
    import traceback

    try:
        from importlib.metadata import version

        release = version("s2distill")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        release = "unknown"
    text = (f"s2distill {release}, Python {sys.version.split()[0]}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
            f"command: {' '.join(sys.argv)}\n\n" + "".join(traceback.format_exception(exc)))
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{type(exc).__name__}.txt"

    def cache_errors() -> Path:
        from s2distill.paths import cache_home

        return cache_home() / "errors"

    for folder in (cache_errors, lambda: Path(tempfile.gettempdir()) / "s2distill-errors"):
        try:
            target = folder()
            target.mkdir(parents=True, exist_ok=True)
            path = target / name
            path.write_text(text, encoding="utf-8")
            return path
        except Exception:  # noqa: BLE001 - try the next place
            continue
    return None


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=_NoTracebacks,
                  help="System 2 distillation: compile reasoning back into direct answers.")


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. teacher.samples=4")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run folder (default runs/RECIPE_NAME)")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
    redo: Annotated[list[str] | None, typer.Option("--redo", help="redo a stage even if current: a kind (samples, "
                                                   "curation, distill, compress, train, eval) or one stage by name "
                                                   "(train:distilled/stage1); repeatable")] = None,
    estimate: Annotated[int | None, typer.Option("--estimate", min=1, help="instead of the run: a pilot of N training "
                                                 "inputs (samples and curation, teachers called live) and the full "
                                                 "run's projected tokens and cost")] = None,
) -> None:
    """Run every stage of RECIPE: System 2 → curation → distillation → training → evaluation → report.

    A rerun keeps every stage whose inputs did not change and redoes the others, saying why. With a
    batched teacher (`batch:`) a run may stop after submitting its requests (exit code 75): run the
    same command again to collect them."""
    from s2distill.lm.batch import BatchSubmitted
    from s2distill.pipeline import Pipeline
    from s2distill.report.summary import render_markdown

    try:
        config = load_recipe(recipe, overrides or [])
        folder = out or Path("runs") / recipe.stem
        if estimate is not None:
            from s2distill.estimate import estimate as run_estimate

            run_estimate(config, folder, inputs=estimate, console=console, progress=progress)
            return
        report = Pipeline(config, folder, console=console, progress=progress, redo=redo or ()).run()
    except BatchSubmitted as exc:  # not an error: a batched teacher's answers come later
        console.print(f"[yellow]{escape(str(exc))}[/yellow]")
        raise typer.Exit(BatchSubmitted.EXIT_CODE) from None
    except (S2DistillError, FileNotFoundError, ImportError) as exc:  # ImportError: a missing extra
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except OSError as exc:  # the disk: full, read-only, a file where a folder should be
        console.print(f"[red]error:[/red] {escape(explain_os_error(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]: run the same command again to resume; finished work is kept")
        raise typer.Exit(130) from None
    print(render_markdown(report))  # plain stdout: the markdown table stays copy-pasteable
    console.print(f"[green]done[/green]: {folder / 'report.md'}, {folder / 'report.json'}")


@app.command()
def methods() -> None:
    """List the System 1 and System 2 methods a recipe can name."""
    from s2distill.methods import METHODS

    table = Table("method", "what it does")
    for name, (_, description) in sorted(METHODS.items()):
        table.add_row(name, description)
    Console().print(table)


@app.command("mt-bench-answers")
def mt_bench_answers(
    out: Annotated[Path, typer.Argument(help="JSONL file to write")],
    model: Annotated[list[str] | None, typer.Argument(help="model key=value, e.g. backend=openai base_url=... model=...")] = None,
    temperature: Annotated[float, typer.Option(help="sampling temperature of the two answers")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="tokens per answer at most")] = 256,
) -> None:
    """Answer MT-bench's 80 first-turn questions twice (the pairs `judging` with source mt_bench reads)."""
    from pydantic import ValidationError

    from s2distill.config.recipe import apply_override
    from s2distill.lm import model_config
    from s2distill.scoring.mt_bench import generate_answers

    fields: dict = {}  # the embedded model unless the arguments say otherwise
    try:
        for item in model or []:
            apply_override(fields, item)
        count = generate_answers(model_config(fields), out, temperature=temperature, max_tokens=max_tokens)
    except (S2DistillError, ValidationError, FileNotFoundError, ImportError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"[green]done[/green]: two answers to each of {count} questions in {out}")


@app.command()
def tasks() -> None:
    """List the tasks a recipe can name (`task: {name: ...}`)."""
    from s2distill.tasks import TASKS

    table = Table("task", "metric", "what it is")
    for name, task in sorted(TASKS.items()):
        table.add_row(name, task.metric, task.description)
    Console().print(table)


register_student_commands(app)  # predict, export, export-data: s2distill/cli/student.py
register_cache_command(app)  # cache: s2distill/cli/cache.py


def main() -> None:
    tune_allocator()  # before any thread or tensor: memory freed goes back (s2distill/allocator.py)
    app()


if __name__ == "__main__":
    main()
