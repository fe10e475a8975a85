"""Take a run's results elsewhere: `s2distill export` (the model) and `s2distill export-data` (the data).

`export_model` writes the last stage's student as one plain Hugging Face model folder: the LoRA
adapter merged into the base weights (safetensors; transformers and vLLM load it without PEFT),
its tokenizer, the prompt template (`s2distill_prompt.json`: the literal prompt with a
`{question}` placeholder, stop strings, token budget; a chat student's chat messages, for its
model's chat template) and a model card with the recipe, what
curation kept and every system's score and tokens. With `gguf=True` it also runs llama.cpp's own
converter (`convert_hf_to_gguf.py`, which is not a PyPI library: pass its folder) on that folder
and writes an Ollama `Modelfile` holding the template. A student of the embedded model needs no
llama.cpp: its GGUF is written from the base's own GGUF file (`student/gguf.py`).

`export_data` writes the distillation sets and the curation verdicts as a `datasets` folder and as
JSONL, with a card that says what each holds. Both refuse a `--to` that is an existing file, and
a student's weights or a set that no longer matches its seal (`artifacts.sealed`): a damaged part
is named, never exported in part.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from s2distill.student.predict import StudentError, load_spec, student_weights
from s2distill.artifacts import read_json, read_jsonl, write_json, write_jsonl
from s2distill.report.row import rows_of
from s2distill.student.prompt import PROMPT_FILE, plain_chat_spec
from s2distill.types import Verdict

CONVERTER = "convert_hf_to_gguf.py"


class ExportError(ValueError):
    """An export that cannot be made; the message says what is missing and how to get it."""


# -- the model ---------------------------------------------------------------------------------------
def merged_model(weights: Path, spec: dict[str, Any], *, dtype: str = "float32"):
    """(model, tokenizer): the base model with the trained adapter merged in, or the fully
    fine-tuned model as it is."""
    import torch
    from transformers import AutoTokenizer

    from s2distill.lm.weights import load_causal_lm

    if (weights / "config.json").exists():  # train.mode full: already a whole model
        return (load_causal_lm(weights, getattr(torch, dtype)),
                AutoTokenizer.from_pretrained(weights))
    from peft import PeftModel

    from s2distill.lm import model_config

    base = model_config(spec["student_model"], saved=True).weights_dir()
    model = load_causal_lm(base, torch.float32)
    model = PeftModel.from_pretrained(model, str(weights)).merge_and_unload()  # merged in float32, then cast
    return model.to(getattr(torch, dtype)), AutoTokenizer.from_pretrained(base)


def export_model(run_dir: str | Path, to: str | Path, *, variant: str = "distilled", dtype: str = "float32",
                 gguf: bool = False, llama_cpp: str | Path | None = None, gguf_type: str = "f16") -> Path:
    """Write the merged student, tokenizer, prompt template and model card into `to`."""
    run_dir, to = Path(run_dir), Path(to)
    check_destination(to, ExportError)  # before the slow part
    weights = student_weights(run_dir, variant)
    spec = load_spec(run_dir, weights, variant)
    template = converter = None
    if gguf:  # fail before the slow part
        from s2distill.student.gguf import embedded_template

        if spec["student_model"]["backend"] == "embedded" and llama_cpp is None:
            template = embedded_template()  # the base's own GGUF: metadata and tokenizer come from it
        converter = None if template else find_converter(llama_cpp)
    model, tokenizer = merged_model(weights, spec, dtype=dtype)
    if spec.get("prompt") is None and spec.get("messages") and not getattr(tokenizer, "chat_template", None):
        spec = plain_chat_spec(spec)  # a chat student of a model with no chat template: its plain-text prompt
    to.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(to, safe_serialization=True)
    tokenizer.save_pretrained(to)
    write_json(to / PROMPT_FILE, spec)
    if (run_dir / "cascade" / f"{variant}-{weights.parent.name}.json").is_file():  # to rebuild the cascade elsewhere
        from s2distill.student.cascade import CASCADE_FILE, cascade_settings

        write_json(to / CASCADE_FILE, cascade_settings(run_dir, variant))
    (to / "README.md").write_text(model_card(run_dir, weights, spec, variant=variant))
    if template is not None:
        from s2distill.student.gguf import write_gguf_from_template

        write_gguf_from_template(model, template, to / "model.gguf", tensor_type=gguf_type)
    elif converter is not None:
        write_gguf(to, converter, gguf_type=gguf_type)
    if gguf:
        (to / "Modelfile").write_text(ollama_modelfile(spec))
    return to


def check_destination(to: Path, error: type[Exception]) -> None:
    """`--to` must be a folder, or not exist yet: an existing file is refused (never replaced)."""
    if to.exists() and not to.is_dir():
        raise error(f"--to {to} is an existing file: name a folder to write into (a new one, or an existing folder)")
    for parent in to.parents:
        if parent.exists():
            if not parent.is_dir():
                raise error(f"--to {to}: {parent} is a file, not a folder; name another --to")
            break


def check_sealed(path: Path) -> None:
    """Refuse a run's artifact that no longer matches its seal: exporting it would give part of it."""
    from s2distill.artifacts import sealed

    if not sealed(path):
        raise StudentError(f"{path} is damaged: it does not match its seal (cut short or edited since its stage wrote "
                           "it), so nothing was exported; `s2distill run` on the run's recipe will redo its stage")


def find_converter(llama_cpp: str | Path | None = None) -> Path:
    """llama.cpp's convert_hf_to_gguf.py: in `llama_cpp` (a llama.cpp checkout), `LLAMA_CPP_DIR`, or on PATH."""
    candidates = [Path(p) / CONVERTER for p in (llama_cpp, os.environ.get("LLAMA_CPP_DIR")) if p]
    if llama_cpp and Path(llama_cpp).is_file():
        candidates.insert(0, Path(llama_cpp))
    on_path = shutil.which(CONVERTER)
    candidates += [Path(on_path)] if on_path else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ExportError(
        "--gguf needs llama.cpp's converter, convert_hf_to_gguf.py (it is not a PyPI library, and transformers "
        "cannot write GGUF): `git clone https://github.com/ggml-org/llama.cpp && pip install -r "
        "llama.cpp/requirements/requirements-convert_hf_to_gguf.txt`, then pass --llama-cpp llama.cpp (or set "
        "LLAMA_CPP_DIR). Without --gguf the merged model folder is written, and the converter can be run on it later."
    )


def write_gguf(folder: Path, converter: Path, *, gguf_type: str = "f16") -> Path:
    """Run llama.cpp's converter on the merged model folder; the GGUF lands beside it as model.gguf."""
    out = folder / "model.gguf"
    result = subprocess.run([sys.executable, str(converter), str(folder), "--outfile", str(out), "--outtype", gguf_type],
                            capture_output=True, text=True)
    if result.returncode != 0 or not out.exists():
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise ExportError(f"{converter} failed (exit {result.returncode}):\n" + "\n".join(tail))
    return out


def ollama_modelfile(spec: dict[str, Any]) -> str:
    """An Ollama Modelfile for model.gguf whose template is the student's prompt, greedy.

    A chat student's prompt is its model's chat template (a model without one has a raw prompt,
    `student.prompt.plain_chat_spec`), a Jinja template that Ollama's Go
    templates cannot be written from here: the Modelfile has no TEMPLATE, so Ollama takes the chat
    template stored in model.gguf (`tokenizer.chat_template`) where it recognises it, and says so
    (`ollama show --template`); exemplar turns become MESSAGE lines, and a comment gives the text
    to send around each question (a task prefix or question suffix)."""
    if spec.get("prompt") is None and spec.get("messages"):
        return _chat_modelfile(spec)
    if spec.get("prompt") is None:
        raise ExportError("the student's prompt comes from a user program: write the Modelfile's TEMPLATE by hand")
    template = spec["prompt"].replace("{{", '{{"{{"}}').replace(spec["placeholder"], "{{ .Prompt }}")
    lines = ["FROM ./model.gguf", f'TEMPLATE """{template}"""', "PARAMETER temperature 0"]
    if spec.get("max_tokens"):
        lines.append(f"PARAMETER num_predict {spec['max_tokens']}")
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in spec.get("stop") or []]
    return "\n".join(lines) + "\n"


def _chat_modelfile(spec: dict[str, Any]) -> str:
    """The Modelfile of a chat student (see `ollama_modelfile`)."""
    *earlier, last = spec["messages"]
    lines = ["# A chat student: no TEMPLATE here. Ollama uses the chat template in model.gguf's metadata when it",
             "# recognises it (check `ollama show --template`); otherwise write TEMPLATE by hand from the model's",
             "# chat template (tokenizer_config.json / chat_template.jinja).", "FROM ./model.gguf"]
    if last["content"] != spec["placeholder"]:
        lines.insert(3, f"# Send each question as the text {json.dumps(last['content'])}, the question in place of "
                        f"{spec['placeholder']}.")
    lines += [f'MESSAGE {m["role"]} """{m["content"]}"""' for m in earlier]
    lines.append("PARAMETER temperature 0")
    if spec.get("max_tokens"):
        lines.append(f"PARAMETER num_predict {spec['max_tokens']}")
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in spec.get("stop") or []]
    return "\n".join(lines) + "\n"


# The model card's usage snippets begin alike: load the exported model and its saved prompt template.
_LOAD_MODEL_AND_SPEC = (
    "```python",
    "import json",
    "from transformers import AutoModelForCausalLM, AutoTokenizer",
    "model, tok = AutoModelForCausalLM.from_pretrained('.'), AutoTokenizer.from_pretrained('.')",
    f"spec = json.load(open('{PROMPT_FILE}'))",
)


def _prompt_lines(spec: dict[str, Any]) -> list[str]:
    """The model card's "Prompt" section: the raw prompt, or a chat student's messages, and how to use them."""
    if spec.get("prompt") is None and spec.get("messages"):
        return [
            ("It is a chat model: it was trained on, and must be given, exactly these chat messages, with the "
             "question in place of `{question}`, rendered by its own chat template (saved with its tokenizer) "
             f"with the generation prompt; generate greedily, at most {spec.get('max_tokens')} tokens, to the end "
             "of the assistant turn. A one-line answer is the reply's first non-empty line. "
             f"The same template is in `{PROMPT_FILE}`."), "",
            "```json", json.dumps(spec["messages"], indent=1, ensure_ascii=False), "```", "",
            *_LOAD_MODEL_AND_SPEC,
            "messages = [{**m, 'content': m['content'].replace('{question}', 'YOUR QUESTION')} for m in spec['messages']]",
            "text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)",
            "ids = tok(text, return_tensors='pt', add_special_tokens=False)",
            "out = model.generate(**ids, max_new_tokens=spec['max_tokens'], do_sample=False)",
            "print(tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True).strip())",
            "```", "",
        ]
    return [
        ("It was trained on, and must be given, exactly this prompt, with the question in place of `{question}`; "
         "generate greedily and cut at the first stop string "
         f"({', '.join(json.dumps(s) for s in spec.get('stop') or []) or 'none'}; at most {spec.get('max_tokens')} "
         f"tokens). The same template is in `{PROMPT_FILE}`."), "",
        "```text", str(spec.get("prompt")), "```", "",
        *_LOAD_MODEL_AND_SPEC,
        "ids = tok(spec['prompt'].replace('{question}', 'YOUR QUESTION'), return_tensors='pt')",
        "out = model.generate(**ids, max_new_tokens=spec['max_tokens'], do_sample=False)",
        "text = tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)",
        "print(text.split(spec['stop'][0])[0] if spec['stop'] else text.strip())",
        "```", "",
    ]


def model_card(run_dir: Path, weights: Path, spec: dict[str, Any], *, variant: str) -> str:
    """README.md of an exported model: what it is, how to prompt it, what it scored, the recipe."""
    report = read_json(run_dir / "report.json") if (run_dir / "report.json").exists() else None
    recipe = (run_dir / "recipe.yaml").read_text() if (run_dir / "recipe.yaml").exists() else "(not found)"
    stage = weights.parent.name
    name = report["name"] if report else run_dir.name
    lines = [
        "---", "library_name: transformers", "tags: [s2distill, system-2-distillation]", "---", "",
        f"# {name}: distilled System 1 student ({variant}, {stage})", "",
        f"Distilled by s2distill from the System 2 outputs of run `{run_dir.name}`: "
        f"the student ({spec['student_model']['backend']} model"
        + (f" `{spec['student_model'].get('path')}`" if spec["student_model"].get("path") else "")
        + f", {spec['train_mode']} fine-tuning, adapter merged into the weights) answers directly, without "
        "the intermediate reasoning its teachers wrote. Load it with plain transformers (no PEFT needed).", "",
        "## Prompt", "",
        *_prompt_lines(spec),
    ]
    if report:
        lines += ["## Results", "", f"Task `{report['task']}`; teachers: {report['teachers']}.", "",
                  "| system | teacher / stage | method | score | metric | n | generated tokens / example |",
                  "|---|---|---|---:|---|---:|---:|"]
        for row in rows_of(report["rows"]):
            score = "—" if row.score is None else f"{100 * row.score:.1f}%"
            tokens = "—" if row.tokens_per_example is None else f"{row.tokens_per_example:.1f}"
            detail = row.teacher or row.stage or ""
            lines.append(f"| {row.system} | {detail} | {row.method} | {score} | {row.metric} | {row.n} | {tokens} |")
        lines += ["", *[f"Note: {note}" for note in report.get("notes") or []], "", "## Curation", ""]
        for cur in report.get("curation") or []:
            per = "; ".join(f"{t}: {c['kept']} of {c['outputs']} outputs kept" for t, c in cur["per_teacher"].items())
            lines.append(f"- {cur['variant']}: filter `{cur['filter']}` kept {cur['kept']} of {cur['inputs']} inputs ({per})")
        lines.append("")
    else:
        lines += ["(The run has no report.json yet: scores are not available.)", ""]
    lines += ["## Recipe", "", "```yaml", recipe.rstrip(), "```", ""]
    return "\n".join(lines)


# -- the data ----------------------------------------------------------------------------------------
def export_data(run_dir: str | Path, to: str | Path, *, variant: str = "distilled") -> dict[str, int]:
    """Write the distillation sets and verdicts of `variant` as JSONL and a datasets folder; return
    the row count of each part."""
    from datasets import Dataset, DatasetDict

    run_dir, to = Path(run_dir), Path(to)
    check_destination(to, StudentError)
    sets = sorted(p for p in (run_dir / "distill" / variant).glob("stage*.jsonl") if not p.name.endswith(".rewrites.jsonl"))
    verdict_file = run_dir / "curation" / ("verdicts.jsonl" if variant == "distilled" else f"{variant}.jsonl")
    if not sets and not verdict_file.exists():
        raise StudentError(f"{run_dir} has no distillation set or verdicts for variant {variant!r}: run its recipe first")
    inputs_file = run_dir / "inputs" / "train.jsonl"
    for path in [*sets, *([verdict_file] if verdict_file.exists() else []), *([inputs_file] if inputs_file.exists() else [])]:
        check_sealed(path)  # every part whole, before anything is written
    inputs = {r["id"]: r["inputs"] for r in read_jsonl(inputs_file)} if inputs_file.exists() else {}
    parts: dict[str, list[dict]] = {}
    for path in sets:
        parts[path.stem.replace("-", "_")] = read_jsonl(path)
    if verdict_file.exists():
        verdicts = [Verdict.from_row(row) for row in read_jsonl(verdict_file)]
        parts["verdicts"] = [{"id": v.example_id, "kept": v.kept, "reason": v.reason, "answer": v.answer,
                              "filter": v.filter, "inputs": json.dumps(inputs.get(v.example_id), ensure_ascii=False),
                              "kept_outputs": json.dumps([r.to_dict() for r in v.kept_outputs], ensure_ascii=False),
                              "composed": v.composed,
                              "meta": json.dumps(v.meta, ensure_ascii=False)} for v in verdicts]
    for name, rows in parts.items():
        write_jsonl(to / "jsonl" / f"{name}.jsonl", rows)
    DatasetDict({name: Dataset.from_list(rows) for name, rows in parts.items() if rows}).save_to_disk(str(to / "dataset"))
    counts = {name: len(rows) for name, rows in parts.items()}
    (to / "README.md").write_text(data_card(run_dir, variant, counts))
    return counts


def data_card(run_dir: Path, variant: str, counts: dict[str, int]) -> str:
    lines = [
        "---", "tags: [s2distill, system-2-distillation]", "---", "",
        f"# Distillation data of run `{run_dir.name}` ({variant})", "",
        "Unlabeled inputs, answered by System 2 teachers and curated without labels by s2distill.", "",
        "| part | rows | what it holds |", "|---|---:|---|",
    ]
    for name, n in counts.items():
        what = ("per input: kept or dropped by the filter, the reason, the kept answer, USC's composed response; "
                "`inputs`, `kept_outputs` (teacher, sample, answer) and `meta` (the filter's votes) as JSON strings") \
            if name == "verdicts" else \
               "training pairs in TRL's prompt–completion format: the student's System 1 prompt and its target"
        lines.append(f"| {name} | {n} | {what} |")
    lines += ["", "Load: `datasets.load_from_disk('dataset')`, or read `jsonl/*.jsonl`.", ""]
    return "\n".join(lines)
