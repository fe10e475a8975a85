"""The fast paths benchmarks/scale.py led to write exactly what the plain ones did."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from s2distill.artifacts import read_jsonl, seal_of, sealed, write_jsonl
from s2distill.types import Call, Trace, Usage


def test_trace_to_dict_is_asdict():
    full = Trace("e1", "cot", "ab", [Call("p", "o", Usage(3, 4), "reason"), Call("q", "r", Usage(1, 2))], error="x",
                 sample=3, teacher="t", rationale="because", final_response="f", confidence=0.5)
    assert full.to_dict() == asdict(full)
    assert list(full.to_dict()) == list(asdict(full))  # same key order: same JSON
    assert list(full.to_dict()["calls"][0]) == list(asdict(full)["calls"][0])
    with_meta = Trace("e2", "pal", None, meta={"kept": [{"a": 1}], "u": Usage(1, 1)})
    assert with_meta.to_dict() == asdict(with_meta)
    assert Trace.from_dict(full.to_dict()) == full


def test_streamed_jsonl_has_the_seal_of_the_whole_text(tmp_path):
    rows = [{"i": i, "text": "é" * (i % 7)} for i in range(2500)]  # more than one block
    path = tmp_path / "a" / "rows.jsonl"
    write_jsonl(path, iter(rows), seal={"fingerprint": "f"})
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    assert path.read_bytes() == data
    seal = seal_of(path)
    assert seal == {"lines": 2500, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "fingerprint": "f"}
    assert sealed(path) and read_jsonl(path) == rows
    path.write_bytes(data[:-1] + b" ")  # same size, edited
    assert not sealed(path)
    path.write_bytes(data[:-1])  # truncated
    assert not sealed(path)
    write_jsonl(tmp_path / "empty.jsonl", [])
    assert sealed(tmp_path / "empty.jsonl") and seal_of(tmp_path / "empty.jsonl")["lines"] == 0
    assert not list(tmp_path.glob("**/.*.partial"))
