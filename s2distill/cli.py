"""The `s2distill` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from s2distill.config import RecipeError, load_recipe
from s2distill.lm.openai_api import BackendError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="System 2 distillation: compile reasoning back into direct answers.")
console = Console(stderr=True, soft_wrap=True)


@app.command()
def run(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML file")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. teacher.samples=4")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="run folder (default runs/RECIPE_NAME)")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Run every stage of RECIPE: System 2 → curation → distillation → training → evaluation → report."""
    from s2distill.pipeline import Pipeline
    from s2distill.report import render_markdown

    try:
        config = load_recipe(recipe, overrides or [])
        folder = out or Path("runs") / recipe.stem
        report = Pipeline(config, folder, console=console, progress=progress).run()
    except (RecipeError, FileNotFoundError, BackendError, ImportError) as exc:  # ImportError: a missing extra
        console.print(f"[red]error:[/red] {exc}")
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


@app.command()
def tasks() -> None:
    """List the tasks a recipe can name (`task: {name: ...}`)."""
    from s2distill.tasks import TASKS

    table = Table("task", "metric", "what it is")
    for name, task in sorted(TASKS.items()):
        table.add_row(name, task.metric, task.description)
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
