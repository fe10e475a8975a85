"""A config class per method: typed settings with bounds, one clear error at load for a bad one,
earlier recipes' and saved prompts' `options:` still read, and a user's program whose source is
part of its identity."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from s2distill.config.base import identity
from s2distill.config.recipe import RecipeError, load_recipe, runs_model_code, validate_recipe
from s2distill.methods import (
    METHODS,
    REGISTRY,
    BSMConfig,
    DirectConfig,
    PALConfig,
    RaRConfig,
    USCConfig,
    UserProgram,
    build_program,
    method_config,
)
from s2distill.student.prompt import RecordingLM, program_from_spec
from s2distill.tasks.coin_flip import CoinFlip
from s2distill.tasks.last_letters import LastLetters
from s2distill.types import Example

PROGRAM = textwrap.dedent('''
    from s2distill.types import Trace

    def shout(example, lm):
        return Trace(example.id, "shout", "ab", [])
''')


def recipe_with(tmp_path, method_yaml: str, side: str = "teacher") -> str:
    path = tmp_path / "r.yaml"
    path.write_text(f"task: {{name: last_letters}}\n{side}:\n  method: {method_yaml}\n")
    return str(path)


def load_error(tmp_path, method_yaml: str, side: str = "teacher") -> str:
    out = tmp_path / "run"
    with pytest.raises(RecipeError) as caught:
        load_recipe(recipe_with(tmp_path, method_yaml, side))
    assert not out.exists()
    return str(caught.value)


@pytest.mark.parametrize(("method", "side", "field", "words"), [
    ("{name: rar, options: {steps: 3}}", "teacher", "teacher.method.steps", "1 or 2"),
    ("{name: rar, steps: 3}", "teacher", "teacher.method.steps", "1 or 2"),
    ("{name: rar, options: {responses_per_rephrasing: 0}}", "teacher", "teacher.method.responses_per_rephrasing",
     "greater than or equal to 1"),
    ("{name: direct, question_suffix: 1}", "student", "student.method.question_suffix", "valid string"),
    ("{name: direct, options: {question_suffix: 1}}", "student", "student.method.question_suffix", "valid string"),
    ("{name: cot, options: {temperature: 0.3}}", "teacher", "teacher.method",
     "method 'cot' has no option 'temperature'"),
    ("{name: cot, temperature: 0.3}", "teacher", "teacher.method.temperature", "unknown key"),
    ("{name: pal, timeout: -1}", "teacher", "teacher.method.timeout", "greater than 0"),
    ("{name: pal, options: {timeout: -1}}", "teacher", "teacher.method.timeout", "greater than 0"),
    ("{name: pal, prompt_format: chat}", "teacher", "teacher.method", "only the fewshot prompt format"),
    ("{name: usc, base: magic}", "teacher", "teacher.method.base", "unknown method 'magic'"),
    ("{name: usc, options: {base: magic}}", "teacher", "teacher.method.base", "unknown method 'magic'"),
    ("{name: bsm, max_tokens: 64}", "teacher", "teacher.method", "merge_tokens"),
    ("{name: twt, family: poetry}", "teacher", "teacher.method.family", "'math'"),
    ("{name: magic}", "teacher", "teacher.method", "unknown method 'magic'; known: bsm, cot, direct"),
])
def test_a_bad_method_setting_is_one_error_at_load_naming_the_field(tmp_path, method, side, field, words):
    message = load_error(tmp_path, method, side)
    lines = message.splitlines()[1:]
    assert len(lines) == 1, message
    assert lines[0].strip().startswith(field + ": ") and words in lines[0], message


@pytest.mark.parametrize("settings", ["options: {steps: 1}", "shots: 2", "max_tokens: 8", "prompt_format: chat"])
def test_a_users_program_takes_no_options(tmp_path, settings):
    (tmp_path / "mine.py").write_text(PROGRAM)
    message = load_error(tmp_path, f"{{name: {tmp_path / 'mine.py'}:shout, {settings}}}")
    assert "teacher.method: a user's program takes no options" in message
    assert settings.split(":")[0] in message


@pytest.mark.parametrize(("source", "words"), [
    ("def shout(example, lm)\n    return None\n", "has a syntax error at line 1"),
    ("raise RuntimeError('no config here')\n", "raised RuntimeError while being imported: no config here"),
    ("import sys\nsys.exit(0)\n", "called sys.exit(0) while being imported"),
    ("import no_such_module_anywhere\n", "raised ModuleNotFoundError while being imported"),
    ("shout = 42\n", "'shout' is int 42, not a function"),
    ("def other(example, lm):\n    pass\n", "has no function 'shout'"),
])
def test_a_broken_user_program_is_one_error_at_load(tmp_path, source, words):
    path = tmp_path / "mine.py"
    path.write_text(source)
    message = load_error(tmp_path, f"{{name: {path}:shout}}")
    assert len(message.splitlines()) == 2 and "teacher.method: " in message, message
    assert words in message, message
    assert "mine.py" in message or "has no function" in message


def test_a_broken_user_module_is_one_error_at_load(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "exits_mod.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "syntax_mod.py").write_text("def f(:\n")
    assert "module 'exits_mod' called sys.exit(0)" in load_error(tmp_path, "{name: 'exits_mod:f'}")
    assert "module 'syntax_mod' has a syntax error" in load_error(tmp_path, "{name: 'syntax_mod:f'}")
    assert "cannot import user program module 'no_such_mod_x'" in load_error(tmp_path, "{name: 'no_such_mod_x:f'}")


def test_a_user_program_that_exits_at_import_stops_the_cli_with_an_error(tmp_path):
    from s2distill.cli.app import app

    (tmp_path / "mine.py").write_text("import sys\nsys.exit(0)\ndef shout(example, lm):\n    pass\n")
    recipe = recipe_with(tmp_path, f"{{name: {tmp_path / 'mine.py'}:shout}}")
    result = CliRunner().invoke(app, ["run", recipe, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "called sys.exit(0) while being imported" in result.output
    assert not (tmp_path / "run").exists()


def test_editing_a_user_program_changes_its_identity(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(PROGRAM)
    spec = f"{path}:shout"
    first = method_config({"name": spec})
    assert isinstance(first, UserProgram) and len(first.source_sha256) == 64
    assert identity(method_config({"name": spec})) == identity(first)  # the same file: the same identity
    path.write_text(PROGRAM.replace('"ab"', '"ba"'))
    second = method_config({"name": spec})
    assert identity(second) != identity(first) and identity(second)["name"] == spec
    with pytest.raises(ValueError, match="changed after the recipe was loaded"):
        first.build(LastLetters())
    assert second.build(LastLetters())(Example("w", {"words": ["Ada", "Bob"]}), RecordingLM()).answer == "ba"


def test_a_user_module_records_its_files_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "hashed_methods.py").write_text(PROGRAM)
    config = method_config({"name": "hashed_methods:shout"})
    import hashlib

    assert config.source_sha256 == hashlib.sha256(PROGRAM.encode()).hexdigest()
    assert not config.runs_model_code and config.factory_options() == {}


def test_each_method_is_a_config_class_with_typed_fields():
    assert set(REGISTRY) == set(METHODS) == {"direct", "cot", "pal", "rar", "s2a", "bsm", "twt", "usc"}
    rar = method_config({"name": "rar", "options": {"steps": 1, "responses_per_rephrasing": 8}})
    assert isinstance(rar, RaRConfig) and rar.steps == 1 and rar.responses_per_rephrasing == 8
    assert identity(rar) == {"name": "rar", "shots": 4, "max_tokens": None, "prompt_format": "fewshot", "steps": 1,
                             "responses_per_rephrasing": 8}
    assert rar.factory_options() == {"shots": 4, "prompt_format": "fewshot", "steps": 1, "responses_per_rephrasing": 8}
    direct = method_config({"name": "direct", "options": {"question_suffix": " Flip means reverse."}})
    assert isinstance(direct, DirectConfig) and direct.question_suffix == " Flip means reverse."
    assert method_config({}) == DirectConfig() and method_config({"name": "cot"}).question_suffix == ""
    pal = method_config({"name": "pal", "prompt_format": "fewshot"})
    assert isinstance(pal, PALConfig) and pal.prompt_format == "fewshot" and pal.runs_model_code
    assert isinstance(method_config({"name": "bsm"}), BSMConfig) and method_config({"name": "bsm"}).max_tokens is None
    for name, entry in REGISTRY.items():  # every default config builds its program
        assert callable(entry.config.model_validate({"name": name}).build(LastLetters())), name


def test_usc_runs_model_code_when_its_base_does():
    assert method_config({"name": "usc", "base": "pal"}).runs_model_code
    assert not method_config({"name": "usc"}).runs_model_code
    assert isinstance(method_config({"name": "usc"}), USCConfig)


def test_runs_model_code_reads_the_methods_and_the_task():
    def recipe(task, teacher):
        return validate_recipe({"task": {"name": task}, "teacher": {"method": teacher}})

    assert runs_model_code(recipe("last_letters", {"name": "pal"}), "last_letters")
    assert not runs_model_code(recipe("last_letters", {"name": "cot"}), "last_letters")
    assert runs_model_code(recipe("last_letters", {"name": "usc", "options": {"base": "pal"}}))
    cot_on_mbpp = recipe("mbpp", {"name": "cot"})
    assert runs_model_code(cot_on_mbpp, "mbpp") and runs_model_code(cot_on_mbpp)
    from s2distill.tasks.mbpp import MBPP

    assert runs_model_code(cot_on_mbpp, MBPP)


def test_an_earlier_recipes_options_override_still_works(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("task: {name: coin_flip}\n"
                    "teacher:\n  method: {name: rar, options: {steps: 2, responses_per_rephrasing: 8}}\n"
                    "evaluate: {system1_prompts: [{name: direct, options: {question_suffix: ' x'}}]}\n")
    recipe = load_recipe(path, ["teacher.method.options.steps=1", "teacher.method.responses_per_rephrasing=2",
                                "evaluate.system1_prompts.0.options.question_suffix=' y'"])
    assert recipe.teachers[0].method.steps == 1 and recipe.teachers[0].method.responses_per_rephrasing == 2
    assert recipe.evaluate.system1_prompts[0].question_suffix == " y"
    with pytest.raises(RecipeError, match=r"teacher.method.steps: Input should be 1 or 2"):
        load_recipe(path, ["teacher.method.options.steps=3"])


def test_every_shipped_recipe_and_seed_loads(recipes_dir):
    for path in sorted(recipes_dir.glob("*.yaml")) + sorted((recipes_dir / "seeds").glob("*.yaml")):
        recipe = load_recipe(path)
        for method in [t.method for t in recipe.teachers] + [recipe.student.method]:
            assert isinstance(identity(method), dict) and "options" not in identity(method), path.name


def test_a_saved_student_prompt_of_an_earlier_version_still_loads(tmp_path):
    """Earlier versions saved `student_method` with `shots`, `max_tokens`, `prompt_format` and `options`
    for every method."""
    spec = {"student_method": {"name": "direct", "shots": 1, "max_tokens": 6, "prompt_format": "fewshot",
                               "options": {"question_suffix": " Flip means reverse."}},
            "multiline": False, "reasoning_max_tokens": 160, "task_prefix": ""}
    recorder = RecordingLM()
    program_from_spec(spec, CoinFlip())(Example("c", {"flips": [["Ada", True]]}), recorder)
    [request] = recorder.requests
    assert request.prompt.count(" Flip means reverse.") == 2 and request.max_tokens == 6
    (tmp_path / "mine.py").write_text(PROGRAM)
    user = {"name": f"{tmp_path / 'mine.py'}:shout", "shots": 0, "max_tokens": None, "prompt_format": "fewshot",
            "options": {}}
    assert program_from_spec({**spec, "student_method": user}, CoinFlip())(Example("c", {}), recorder).answer == "ab"
    assert isinstance(method_config({"name": "bsm", "shots": 4, "max_tokens": None, "prompt_format": "fewshot",
                                     "options": {"merge": "average"}}, saved=True), BSMConfig)
    assert method_config({"name": "pal", "shots": 2, "max_tokens": None, "prompt_format": "fewshot",
                          "options": {"timeout": 3}}, saved=True).timeout == 3


def test_a_saved_student_prompt_of_this_version_round_trips():
    for config in (DirectConfig(shots=2, question_suffix=" x"), RaRConfig(steps=1), PALConfig(timeout=2.0)):
        assert method_config(config.model_dump(mode="json"), saved=True) == config


def test_build_program_keeps_its_behaviour(tmp_path):
    (tmp_path / "mine.py").write_text(PROGRAM)
    with pytest.raises(ValueError, match="takes no options"):
        build_program(LastLetters(), f"{tmp_path / 'mine.py'}:shout", {"shots": 2})
    assert callable(build_program(LastLetters(), "rar", RaRConfig(steps=1).factory_options()))
