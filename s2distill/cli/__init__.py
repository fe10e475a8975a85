"""The `s2distill` command line: `app.py` (run, and the app), `cache.py`, `student.py` (predict, export).

`s2distill.cli:main` stays the console entry point."""


def __getattr__(name: str):
    if name in ("main", "app"):
        import importlib

        return getattr(importlib.import_module("s2distill.cli.app"), name)
    from s2distill._moved import forward_names

    return forward_names(__name__, "s2distill.cli.app")(name)
