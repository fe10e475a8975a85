"""Your own data on the real embedded model: a user-style JSONL of names, no labels, PAL teacher
with the user's own exemplars, distilled, then predicted and exported. Marked slow (minutes on a CPU)."""

from __future__ import annotations

import json

import pytest

import s2distill
from s2distill.student.export import export_model
from s2distill.lm.hf import HFLM
from s2distill.artifacts import read_jsonl
from s2distill.student.prompt import render
from s2distill.types import Request

pytestmark = pytest.mark.slow

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "John", "Claude", "Tony", "Niklaus", "Frances", "Radia"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Backus", "Shannon", "Hoare", "Wirth", "Allen", "Perlman"]
EXEMPLARS = [
    {"question": 'Take the last letters of the words in "Elon Musk" and concatenate them.', "answer": "nk",
     "program": 'words = ["Elon", "Musk"]\nprint("".join(w[-1] for w in words))'},
    {"question": 'Take the last letters of the words in "Larry Page" and concatenate them.', "answer": "ye",
     "program": 'words = ["Larry", "Page"]\nprint("".join(w[-1] for w in words))'},
]


def test_a_user_jsonl_without_labels_is_distilled_predicted_and_exported(tmp_path, monkeypatch):
    monkeypatch.delenv("S2DISTILL_HOME", raising=False)  # reuse the converted embedded model
    data = tmp_path / "people.jsonl"
    data.write_text("".join(json.dumps({"person": f"{f} {l}", "note": "user field"}) + "\n" for f in FIRST for l in LAST[:4]))
    recipe = {
        "name": "custom-embedded",
        "task": {"name": "custom", "path": str(data), "answer": "exact", "test_size": 8, "exemplars": EXEMPLARS,
                 "template": 'Take the last letters of the words in "{person}" and concatenate them.'},
        "teacher": {"model": {"backend": "embedded"}, "method": {"name": "pal", "shots": 2, "max_tokens": 48},
                    "samples": 2},
        "student": {"model": {"backend": "embedded"}, "method": {"name": "direct", "shots": 2, "max_tokens": 8}},
        "train": {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "lora_r": 8, "lora_alpha": 16},
    }
    report = s2distill.run(recipe, out=tmp_path / "run")
    assert all(row["metric"] == "agreement_with_system2" for row in report.rows)
    assert report.row("system2")["score"] == 1.0 and report.row("distilled")["n"] == 8
    assert "agreement with System 2" in report.markdown
    student = s2distill.load_student(tmp_path / "run")
    records = read_jsonl(tmp_path / "run" / "eval" / "distilled-stage1.jsonl")
    test = {item.example.id: item.example.inputs for item in student.task.labeled("test")}
    predicted = student.predict([test[r["id"]] for r in records])
    assert [p["answer"] for p in predicted] == [r["answer"] for r in records]
    out = export_model(tmp_path / "run", tmp_path / "model")
    spec = student.spec
    merged = HFLM(out, dtype="auto")
    prompts = [render(spec, student.task.question(student.example(test[r["id"]]))) for r in records]
    texts = [c[0].text for c in merged.generate([Request(prompt=p, temperature=0.0, max_tokens=spec["max_tokens"],
                                                         stop=tuple(spec["stop"])) for p in prompts])]
    agree = sum(t == p["output"] for t, p in zip(texts, predicted))
    assert agree >= 7, list(zip(texts, [p["output"] for p in predicted]))  # bf16 merge rounding may flip a near-tie
