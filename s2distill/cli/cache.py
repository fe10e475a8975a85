"""`s2distill cache`: the shared completion cache's size and entries per model, and clearing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def register(app: typer.Typer) -> None:
    @app.command()
    def cache(
        path: Annotated[Path | None, typer.Option("--path", help="a cache file (default: the user cache, or a "
                                                  "recipe's `cache:`)")] = None,
        clear: Annotated[bool, typer.Option("--clear", help="delete the entries (all, or --model's)")] = False,
        model: Annotated[str | None, typer.Option("--model", help="only this model's entries, by the name shown")] = None,
    ) -> None:
        """Show the completion cache: its size and entries per model; --clear deletes them."""
        from s2distill.errors import S2DistillError
        from s2distill.lm.cache import cache_summary, clear_cache
        from s2distill.paths import completion_cache

        console = Console()
        target = path or completion_cache()
        try:
            if clear:
                if model is not None and model not in cache_summary(target)["models"]:
                    console.print(f"[red]error:[/red] no entries of model {escape(model)!r} in {target}")
                    raise typer.Exit(2)
                removed = clear_cache(target, model=model)
                console.print(f"removed {removed} entries" + (f" of {escape(model)}" if model else "") + f" from {target}")
                return
            summary = cache_summary(target)
        except S2DistillError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        console.print(f"{target}: {summary['bytes'] / 1e6:.1f} MB, {sum(summary['models'].values())} entries")
        table = Table("model", "entries")
        for name, count in summary["models"].items():
            table.add_row(escape(name), str(count))
        console.print(table)
