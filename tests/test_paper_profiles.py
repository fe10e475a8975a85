"""The seed recipes' `paper` profiles (issue 25, items 1 and 6): every seed recipe has two sizes of
setup, the embedded model's (as it was) and `profile=paper` (the papers' budgets, chat prompts, sample
counts and training), for chat models named on the command line.

Tested without a large model: a scripted OpenAI-compatible chat server answers like a chat model
(whole responses, some that never end and are cut at the request's budget: tests/chat_server.py),
and the student is the tiny model with a chat template, made terse (most tokens end its turn) so
that the paper's budgets of 1,024 and 2,048 tokens cost nothing. The runs check the budgets in the
requests, the truncated counts in report.json, that nothing truncated is kept, and the too-small
budget's warning naming the setting. docs/fidelity.md's settings tables are checked against the
recipes, both profiles, value by value.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from s2distill.artifacts import read_jsonl
from s2distill.config.base import dump, identity
from s2distill.config.recipe import RecipeError, load_recipe
from s2distill.curation.filters import USCFilter
from s2distill.methods import DirectConfig
from s2distill.tasks.judging import JudgingConfig
from tests.chat_server import chat_server, rambles
from tests.conftest import ROOT

SEEDS = sorted((ROOT / "recipes" / "seeds").glob("*.yaml"))
FIDELITY = ROOT / "docs" / "fidelity.md"
# A chat template whose generation prompt is a prefix of prompt + answer, as real ones are (test_chat_student's).
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'assistant' %}<|assistant|>\n{{ m['content'] }}{{ eos_token }}"
                 "{% else %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endif %}{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


@pytest.fixture(scope="module")
def chat_student(tmp_path_factory) -> Path:
    """The tiny model with a chat template, terse: half of its tokens end its turn, so a reply is a
    few tokens whatever its budget (the random model would otherwise write all 2,048)."""
    from transformers import AutoTokenizer, GenerationConfig

    from s2distill.lm.tiny import tiny_model_dir

    folder = tmp_path_factory.mktemp("models") / "tiny-chat"
    shutil.copytree(tiny_model_dir(), folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = GenerationConfig.from_pretrained(folder)
    config.eos_token_id = [tokenizer.eos_token_id] + list(range(4, len(tokenizer), 2))
    config.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server():
    with chat_server() as running:
        yield running


def models(path: Path, url: str, student: Path | str) -> list[str]:
    """The overrides naming the chat models: each teacher a model of the scripted server (one name
    each, as TwT's three teachers are three models), the student a local folder."""
    data = yaml.safe_load(path.read_text())
    server_model = "{backend: openai, base_url: %s, model: chat-%d, max_retries: 0}"
    if "teacher" in data:
        teachers = [f"teacher.model={server_model % (url, 0)}"]
    else:
        teachers = [f"teachers.{i}.model={server_model % (url, i)}" for i in range(len(data["teachers"]))]
    return teachers + [f"student.model={{backend: hf, path: {student}, dtype: float32}}"]


# -- the settings --------------------------------------------------------------------------------

def test_settings_added_for_the_profiles_leave_earlier_fingerprints_alone():
    """`response`, the judging `prompt` and `usc_max_tokens` are left out of identities (and of the
    saved prompt a train spec reads) at their defaults, so no earlier run is redone; set, they count."""
    for config, name, other in ((DirectConfig(), "response", "full"), (JudgingConfig(), "prompt", "figure13"),
                                (USCFilter(), "usc_max_tokens", 1024)):
        assert name not in identity(config) and name not in dump(config)
        changed = config.model_copy(update={name: other})
        assert identity(changed)[name] == other and dump(changed)[name] == other


def test_an_unknown_profile_names_the_profiles_a_recipe_has():
    with pytest.raises(RecipeError, match=r"profile 'papers' is not defined .* \(defined: paper\)"):
        load_recipe(SEEDS[0], ["profile=papers"])
    with pytest.raises(RecipeError, match=r"\(defined: none\)"):
        load_recipe(ROOT / "recipes" / "smoke.yaml", ["profile=paper"])


def test_the_paper_profile_refuses_models_without_a_chat_template(tmp_path):
    """The embedded Gemma 3 270M (and any folder without a chat template) would be asked a plain
    'user: ... assistant:' rendering: the paper profile fails at load, naming each model and saying
    how to name a chat model."""
    path = ROOT / "recipes" / "seeds" / "rar_last_letters.yaml"
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, ["profile=paper"])
    message = str(caught.value)
    assert "teacher.model (the embedded Gemma 3 270M, a pretrained model), student.model (the embedded" in message
    assert "no chat template" in message and "teacher.model='{backend: openai" in message
    bare = tmp_path / "base-model"
    bare.mkdir()
    (bare / "tokenizer_config.json").write_text("{}")
    overrides = models(path, "http://127.0.0.1:9/v1", bare)
    with pytest.raises(RecipeError, match=f"student.model \\({re.escape(str(bare))}\\): no chat template"):
        load_recipe(path, ["profile=paper", *overrides])
    (bare / "chat_template.jinja").write_text("{{ messages }}")
    assert load_recipe(path, ["profile=paper", *overrides]).require_chat_models
    assert not load_recipe(path).require_chat_models  # the embedded profile asks nothing of its models


def test_the_command_line_wins_over_the_profile_and_the_profile_over_its_size(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "t"}')
    path = ROOT / "recipes" / "seeds" / "twt_gsm8k.yaml"
    overrides = models(path, "http://127.0.0.1:9/v1", tmp_path)
    small = load_recipe(path, ["profile=paper", "size=small", *overrides])
    assert small.task.train_size == 32 and small.distill.reasoning_max_tokens == 2048  # the profile's own small
    assert [t.method.max_tokens for t in small.teachers] == [2048] * 3 and small.train.lora_r == 8
    mine = load_recipe(path, ["profile=paper", "size=small", "teachers.1.method.max_tokens=64", *overrides])
    assert [t.method.max_tokens for t in mine.teachers] == [2048, 64, 2048]
    embedded = load_recipe(path, ["size=small"])  # without the profile: the recipe as it was
    assert embedded.distill.reasoning_max_tokens == 128 and embedded.teachers[0].method.prompt_format == "fewshot"


# -- the settings tables of docs/fidelity.md ---------------------------------------------------------

def settings_tables() -> dict[str, list[tuple[str, str, str]]]:
    """Per seed recipe: (setting, embedded value, paper value) of each row of the tables under
    docs/fidelity.md's settings section (a table's heading names its recipes in backticks)."""
    text = FIDELITY.read_text()
    section = text.split("## Settings: the embedded profile and the paper profile", 1)[1].split("\n## ", 1)[0]
    tables: dict[str, list[tuple[str, str, str]]] = {}
    for block in section.split("\n### ")[1:]:
        heading, _, body = block.partition("\n")
        names = re.findall(r"`([a-z0-9_]+)`", heading)
        rows = []
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 4 and cells[0].startswith("`"):
                value = [re.findall(r"`([^`]*)`", c) for c in cells]
                rows.append((value[0][0], value[2][0], value[3][0]))
        for name in names:  # a recipe's rows may come from several tables (shared ones, then its own)
            tables.setdefault(name, []).extend(rows)
    return tables


def setting(recipe, path: str):
    """The value a recipe runs with at `path` as the tables spell it (`teacher.X` for every teacher,
    `curation.X` for a filter's setting, a budget left unset as its method's default)."""
    from s2distill.report.truncation import _in_effect
    from s2distill.tasks import TASKS

    if path.startswith("teacher."):
        values = {repr(setting_of(t, path.removeprefix("teacher."))) for t in recipe.teachers}
        assert len(values) == 1, f"{path}: the teachers differ ({values})"
        return setting_of(recipe.teachers[0], path.removeprefix("teacher."))
    if path.startswith("curation.") and path != "curation.filter":
        key = path.removeprefix("curation.")
        return next(getattr(f, key) for f in recipe.curation.filter if key in type(f).model_fields)
    node, parts = recipe, path.split(".")
    for i, part in enumerate(parts):
        parent, node = node, node[int(part)] if part.isdigit() else getattr(node, part)
        if node is None and part.endswith("_tokens") and i == len(parts) - 1:
            return _in_effect(parent, part, TASKS[recipe.task.name]())
    return node


def setting_of(teacher, rest: str):
    """A teacher's setting at `rest` (`method.max_tokens`), an unset budget at its method's default."""
    from s2distill.report.truncation import _in_effect

    node = teacher
    for part in rest.split("."):
        parent, node = node, getattr(node, part)
    if node is None and rest.endswith("_tokens"):
        return _in_effect(parent, rest.split(".")[-1], None)
    return node


def same(value, cell: str) -> bool:
    """A recipe's value against a table cell (YAML); a mapping in a cell lists the settings it checks."""
    wanted = yaml.safe_load(cell)
    plain = [v.model_dump(mode="json") if hasattr(v, "model_dump") else v for v in value] \
        if isinstance(value, list) else value
    if isinstance(wanted, list) and all(isinstance(w, dict) for w in wanted) and wanted:
        return len(plain) == len(wanted) and all(all(p.get(k) == v for k, v in w.items()) for p, w in zip(plain, wanted))
    return plain == wanted


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.stem)
def test_every_seed_recipe_runs_the_values_its_settings_table_gives(path, tmp_path):
    """Each row of the recipe's table: the embedded value without a profile, the paper value with
    profile=paper; with profile=paper size=small every row the small size does not resize keeps
    the paper value (the budgets, prompts and training settings)."""
    tables = settings_tables()
    assert path.stem in tables, f"docs/fidelity.md has no settings table for {path.stem}"
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "t"}')
    overrides = ["profile=paper", *models(path, "http://127.0.0.1:9/v1", tmp_path)]
    embedded, paper = load_recipe(path), load_recipe(path, overrides)
    small = load_recipe(path, [*overrides, "size=small"])
    profile = yaml.safe_load(path.read_text())["profiles"]["paper"]
    resized = set(profile["sizes"]["small"])
    rows = {key for key, _, _ in tables[path.stem]}
    for key in set(profile) - {"sizes", "require_chat_models"}:  # every setting the profile sets has its row
        spelled = re.sub(r"^teachers\.\d+\.(?!temperature)", "teacher.", key)
        assert spelled in rows or (key == "train" and any(r.startswith("train.") for r in rows)), \
            f"docs/fidelity.md's table for {path.stem} has no row for {spelled}"
    wrong = []
    for key, embedded_cell, paper_cell in tables[path.stem]:
        for recipe, cell, label in ((embedded, embedded_cell, "embedded"), (paper, paper_cell, "paper")):
            if not same(setting(recipe, key), cell):
                wrong.append(f"{key} ({label}): the recipe has {setting(recipe, key)!r}, the table {cell!r}")
        if not any(key == r or key.startswith(r + ".") for r in resized) and not same(setting(small, key), paper_cell):
            wrong.append(f"{key} (paper, size=small): {setting(small, key)!r}")
    assert not wrong, "\n".join(wrong)


# -- whole runs against the scripted chat server -----------------------------------------------------

def paper_run(path: Path, out: Path, url: str, student: Path, *extra: str):
    """A paper-profile run, size=small with fewer inputs, against the scripted server; returns the
    report and every request the student's model got."""
    from s2distill.lm.hf import HFLM
    from s2distill.pipeline import Pipeline

    recipe = load_recipe(path, ["profile=paper", "size=small", *models(path, url, student), *extra])
    asked = []
    original = HFLM._prompt_text
    mp = pytest.MonkeyPatch()
    mp.setattr(HFLM, "_prompt_text", lambda self, request: asked.append(request) or original(self, request))
    try:
        report = Pipeline(recipe, out, progress=False).run()
    finally:
        mp.undo()
    return report, asked


def cut_samples(path: Path) -> set[tuple[str, int]]:
    return {(r["example_id"], r["sample"]) for r in read_jsonl(path)
            if any(c.get("finish_reason") == "length" for c in r["calls"])}


def assert_nothing_cut_is_kept(out: Path, teachers: list[str]) -> None:
    """No verdict keeps, and no training pair comes from, a sample with a call cut at its budget."""
    cut = {(name, *key) for name in teachers for key in cut_samples(out / "samples" / f"{name}.jsonl")}
    for verdict in read_jsonl(out / "curation" / "verdicts.jsonl"):
        kept = {(ref["teacher"], verdict["example_id"], ref["sample"]) for ref in verdict["kept_outputs"]}
        assert not kept & cut, verdict
    for pairs in (out / "distill").rglob("*.jsonl"):
        if not pairs.name.endswith(".rewrites.jsonl"):
            assert not {(p["teacher"], p["id"], p["sample"]) for p in read_jsonl(pairs)} & cut, pairs


@pytest.fixture(scope="module")
def yu_run(server, chat_student, tmp_path_factory):
    out = tmp_path_factory.mktemp("yu") / "rar_last_letters"
    start = len(server.received)
    report, asked = paper_run(ROOT / "recipes" / "seeds" / "rar_last_letters.yaml", out, server.url, chat_student,
                              "task.train_size=6", "task.test_size=2")
    return out, report, server.received[start:], asked


def test_a_yu_paper_run_asks_with_the_papers_budgets_and_counts_what_was_cut(yu_run):
    out, report, bodies, asked = yu_run
    # The teacher (RaR, Figure 4's prompts as chat messages): every request at the profile's budget.
    assert bodies and {b["max_tokens"] for b in bodies} == {1024} and all("messages" in b for b in bodies)
    assert {b["model"] for b in bodies} == {"chat-0"}
    assert any("could you kindly rephrase the question" in b["messages"][-1]["content"] for b in bodies)
    # System 1 and the distilled student (the tiny chat model): the bare question, within 1,024 tokens.
    assert asked and {r.max_tokens for r in asked} == {1024}
    assert all(r.prompt is None and len(r.messages) == 1 and r.messages[0][0] == "user" for r in asked)
    # What was cut: the samples whose call the server stopped at 1,024 words, counted in report.json.
    cut = cut_samples(out / "samples" / "rar.jsonl")
    written = json.loads((out / "report.json").read_text())
    [curation] = written["curation"]
    assert curation["per_teacher"]["rar"]["outputs"] == 24 and curation["per_teacher"]["rar"]["truncated"] == len(cut)
    assert 0 < len(cut) < 24
    expected = sum(1 for b in bodies if rambles(b))  # the server's never-ending replies, one request each
    assert expected >= len(cut) > 0
    assert written["budgets"] == ["teacher.method.max_tokens = 1024", "student.method.max_tokens = 1024"]
    assert ("Token budgets: `teacher.method.max_tokens = 1024`; `student.method.max_tokens = 1024`."
            in (out / "report.md").read_text())
    system2 = next(r for r in written["rows"] if r["system"] == "system2")
    assert system2["truncated"] == sum(r["truncated"] for r in read_jsonl(out / "eval" / "system2-rar.jsonl"))
    assert_nothing_cut_is_kept(out, ["rar"])
    # Distilled on whole responses (Section 3.2), one per input, the student read as it answers.
    pairs = read_jsonl(out / "distill" / "distilled" / "stage1-full_response.jsonl")
    assert pairs and len({p["id"] for p in pairs}) == len(pairs)
    assert all(p["completion"][0]["content"].endswith(".") and "The answer is" in p["completion"][0]["content"]
               for p in pairs)
    assert written["rows"][[r["system"] for r in written["rows"]].index("distilled")]["train_pairs"] == len(pairs)


@pytest.fixture(scope="module")
def twt_run(server, chat_student, tmp_path_factory):
    out = tmp_path_factory.mktemp("twt") / "twt_gsm8k"
    start = len(server.received)
    report, asked = paper_run(ROOT / "recipes" / "seeds" / "twt_gsm8k.yaml", out, server.url, chat_student,
                              "task.train_size=6", "task.test_size=2")
    return out, report, server.received[start:], asked


def test_twt_paper_teachers_and_student_are_asked_within_2048_tokens(server, chat_student, tmp_path):
    """The fast part of a TwT paper run: System 1 and each teacher's System 2 on the test inputs
    (the whole curriculum is the slow test below)."""
    start = len(server.received)
    report, asked = paper_run(ROOT / "recipes" / "seeds" / "twt_gsm8k.yaml", tmp_path / "twt", server.url,
                              chat_student, "task.train_size=2", "task.test_size=3", "evaluate.systems=[system1,system2]")
    bodies = server.received[start:]
    assert {b["model"] for b in bodies} == {"chat-0", "chat-1", "chat-2"}
    assert {b["max_tokens"] for b in bodies} == {2048} and {b["temperature"] for b in bodies} == {0.0}
    assert all(b["messages"][-1]["content"].startswith("You are a helpful assistant. Your task is to answer a math")
               for b in bodies)
    assert asked and {r.max_tokens for r in asked} == {2048} and all(r.messages for r in asked)
    rows = {r["teacher"]: r for r in report["rows"] if r["system"] == "system2"}
    for i, name in enumerate(["t-cool", "t-warm", "t-hot"]):
        cut = sum(rambles(b) for b in bodies if b["model"] == f"chat-{i}")
        assert rows[name]["truncated"] == cut
        if cut:
            assert any(line.startswith(f"{100 * cut / 3:.0f}% of system2 {name}'s answers were cut at their budget "
                                       f"(teachers.{i}.method.max_tokens = 2048)") for line in report["truncation"])


@pytest.mark.slow
def test_a_twt_paper_run_asks_with_2048_tokens_everywhere_and_keeps_nothing_cut(twt_run):
    """The whole TwT curriculum on the scripted server (about a minute on two busy cores)."""
    out, report, bodies, asked = twt_run
    teaching = [b for b in bodies if b["messages"][-1]["content"].startswith("You are a helpful assistant.")]
    refining = [b for b in bodies if "Please compare your previous thinking" in b["messages"][-1]["content"]]
    assert {b["model"] for b in teaching} == {"chat-0", "chat-1", "chat-2"}
    assert {b["max_tokens"] for b in teaching} == {2048} and {b["temperature"] for b in teaching} == {0.0}
    assert refining and {b["max_tokens"] for b in refining} == {2048}  # distill.rewrite_max_tokens
    assert asked and {r.max_tokens for r in asked} == {2048}  # System 1 and every stage's student
    written = json.loads((out / "report.json").read_text())
    [curation] = written["curation"]
    names = ["t-cool", "t-warm", "t-hot"]
    for name in names:
        cut = cut_samples(out / "samples" / f"{name}.jsonl")
        assert curation["per_teacher"][name].get("truncated", 0) == len(cut)
    assert sum(curation["per_teacher"][n].get("truncated", 0) for n in names) > 0
    assert_nothing_cut_is_kept(out, names)
    assert written["budgets"] == [f"teachers.{i}.method.max_tokens = 2048" for i in range(3)] + [
        "student.method.max_tokens = 2048", "distill.reasoning_max_tokens = 2048", "distill.rewrite_max_tokens = 2048"]
    stages = [r["stage"] for r in written["rows"] if r["system"] == "distilled"]
    assert stages == ["1/3 full_reasoning", "2/3 compressed_reasoning", "3/3 answer_only"]


def test_a_budget_too_small_for_a_chat_teacher_is_reported_naming_the_setting(server, chat_student, tmp_path):
    out = tmp_path / "cut"
    report, _ = paper_run(ROOT / "recipes" / "seeds" / "rar_last_letters.yaml", out, server.url, chat_student,
                          "task.train_size=4", "task.test_size=2", "teacher.method.max_tokens=8")
    [curation] = report["curation"]
    assert curation["per_teacher"]["rar"]["truncated"] == curation["per_teacher"]["rar"]["outputs"] == 16
    assert curation["kept"] == 0
    assert "100% of rar's samples were cut at their budget (teacher.method.max_tokens = 8): raise it" \
        in report["truncation"]
    assert "100% of system2 rar's answers were cut at their budget (teacher.method.max_tokens = 8): raise it" \
        in report["truncation"]
    markdown = (out / "report.md").read_text()
    assert "**Truncated**: 100% of rar's samples were cut at their budget (teacher.method.max_tokens = 8)" in markdown
    assert_nothing_cut_is_kept(out, ["rar"])


# -- the pieces the profiles use -------------------------------------------------------------------

def test_system1_reads_a_chat_models_whole_response_when_asked_to():
    """`response: full`: the answer is read from the whole reply (the papers' System 1), not cut at
    its first line; the default reads the first line, as before."""
    from s2distill.lm import FakeLM
    from s2distill.methods.direct import direct
    from s2distill.tasks.last_letters import LastLetters
    from s2distill.types import Example

    reply = "Sure! Let me look at each word.\nThe last letters are a and b.\nThe answer is ab."
    example, lm = Example("x", {"words": ["Xa", "Yb"]}), FakeLM(default=reply)
    assert direct(LastLetters(), shots=0, prompt_format="chat", response="full")(example, lm).answer == "ab"
    assert direct(LastLetters(), shots=0, prompt_format="chat")(example, lm).answer is None  # "sure!" is no answer
    recorder = []

    class Asked(FakeLM):
        def generate(self, requests):
            recorder.extend(requests)
            return super().generate(requests)

    direct(LastLetters(), shots=0, response="full")(example, Asked(default=reply))
    assert recorder[0].stop == ("\n\n", "\nQ:")  # fewshot: several lines, up to a blank line


def test_a_full_response_set_trains_on_whole_replies_and_needs_a_student_that_reads_them():
    from s2distill.config.recipe import validate_recipe
    from s2distill.distill.pairs import completion_for
    from s2distill.distill.variants import variant_stages
    from s2distill.types import Call, Trace, Usage

    rar = Trace("x", "rar2", "ab", [Call("p", "rephrased", Usage()), Call("p", "It is a then b.\n\nThe answer is ab.", Usage())])
    assert completion_for("full_response", rar) == " It is a then b.\nThe answer is ab.\n"
    assert completion_for("answer_only", rar) == " ab\n"  # as before
    s2a = Trace("x", "s2a", "paris", [Call("p", "o", Usage())], final_response="It is Paris.")
    assert completion_for("full_response", s2a) == " It is Paris.\n"
    assert variant_stages("distill_system1", ["full_response"]) == ("full_response",)
    assert variant_stages("distill_system1", ["answer_only"]) == ("answer_only",)
    data = yaml.safe_load((ROOT / "recipes" / "smoke.yaml").read_text())
    data["distill"] = {"stages": ["full_response"]}
    with pytest.raises(RecipeError, match="set student.method.response=full"):
        validate_recipe(data)
    data["student"]["method"]["response"] = "full"
    assert validate_recipe(data).distill.stages == ["full_response"]


def test_a_usc_composition_cut_at_its_budget_is_reported_naming_curation_usc_max_tokens():
    from s2distill.config.recipe import validate_recipe
    from s2distill.report.truncation import truncation_lines

    data = yaml.safe_load((ROOT / "recipes" / "smoke.yaml").read_text())
    data["curation"] = {"filter": "usc", "usc_max_tokens": 64}
    recipe = validate_recipe(data)
    summary = {"variant": "distilled", "inputs": 10, "compositions_truncated": 4, "usc_max_tokens": 64,
               "per_teacher": {"pal": {"outputs": 40, "parseable": 40, "kept": 6}}}
    assert truncation_lines(recipe, [summary], []) == [
        "40% of distilled's USC compositions were cut at their budget (curation.usc_max_tokens = 64): raise it"]
