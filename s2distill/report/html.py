"""report.html: the run as one self-contained page a person looks at rather than reads.

Everything the page shows is gathered here from the run folder's artifacts (report.json's rows and
curation, samples/, curation/, distill/, eval/, the students' train_log.jsonl) and embedded in the
page as JSON; the page's own script (s2distill/assets/report.html) draws the charts and the
per-input browser. No network, no external asset: it opens from disk and can be mailed.

The tables (systems, curation, cost) are rendered here, in Python, so they read without
JavaScript; the charts and the browser need it. For thousands of inputs the data stays small
because strings repeat a lot: every string is interned once, and prompts that share a long
few-shot prefix store that prefix once (see `_Strings`).
"""

from __future__ import annotations

import html
import json
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from s2distill.distill.pairs import pair_text  # a chat student's pairs hold messages: shown as text
from s2distill.report.audit import audit_html
from s2distill.report.cascade import cascade_html
from s2distill.report.cost import kept_lines, money_text, spend_rows
from s2distill.report.training import training_lines
from s2distill.report.row import Row, rows_of
from s2distill.artifacts import atomic_write_bytes, read_jsonl
from s2distill.types import Verdict

TEMPLATE = Path(__file__).resolve().parents[1] / "assets" / "report.html"
_MIN_PREFIX = 80  # characters: shorter common prefixes are not worth a table entry


class _Strings:
    """An interned string table: `ref(s)` returns an index, or for prompts a [prefix, rest] pair."""

    def __init__(self) -> None:
        self.table: list[str] = []
        self._index: dict[str, int] = {}
        self._prefixes: list[tuple[str, int]] = []

    def ref(self, text: str | None) -> int:
        if text is None:
            return -1
        if text not in self._index:
            self._index[text] = len(self.table)
            self.table.append(text)
        return self._index[text]

    def add_prefix(self, texts: list[str]) -> None:
        """Register the common prefix of `texts` (e.g. one teacher's few-shot prompts)."""
        if len(texts) < 2:
            return
        prefix = os.path.commonprefix(texts)
        if len(prefix) >= _MIN_PREFIX:
            self._prefixes.append((prefix, self.ref(prefix)))

    def prompt(self, text: str) -> list[int]:
        """[prefix index, rest index], or [-1, index] when no registered prefix fits."""
        for prefix, index in self._prefixes:
            if text.startswith(prefix):
                return [index, self.ref(text[len(prefix):])]
        return [-1, self.ref(text)]


def reason_kind(reason: str) -> str:
    """A verdict's reason without its particulars, so verdicts group: quoted answers become `…`,
    and what follows a `;` (e.g. which pair was most diverse) is dropped.

    >>> reason_kind("top answer 'nm' 3/4")
    'top answer … 3/4'
    """
    reason = reason.split("; ")[0]
    reason = re.sub(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", "…", reason)
    return re.sub(r"\(mapped back from …\)", "", reason).strip()


def _jsonl(path: Path) -> list[dict]:
    return read_jsonl(path) if path.exists() else []


def _variant_file(out: Path, variant: str) -> Path:
    return out / "curation" / ("verdicts.jsonl" if variant == "distilled" else f"{variant}.jsonl")


def _verdicts(out: Path, variant: str) -> list[Verdict]:
    """A variant's verdicts (none when its artifact is missing), as written by any version."""
    return [Verdict.from_row(row) for row in _jsonl(_variant_file(out, variant))]


def _sample_files(out: Path) -> list[tuple[str, Path]]:
    """(label, path) of every teacher's samples, perturbed inputs labelled as such."""
    files = []
    for path in sorted((out / "samples").glob("*.jsonl")):
        name = path.name[: -len(".jsonl")]
        files.append((name.replace(".perturbed", " (perturbed)"), path))
    return files


def curation_by_reason(out: Path, summaries: list[dict]) -> list[dict]:
    """Per variant: for each kind of reason, the inputs it covers, and per teacher the outputs kept
    and dropped (an output is kept when the verdict lists it among its kept outputs); and per
    teacher its outputs and how many of them were cut at their budget (the summary's counts)."""
    traces = {}
    for label, path in _sample_files(out):
        if "(perturbed)" not in label:
            for row in read_jsonl(path):
                traces.setdefault(label, []).append((row["example_id"], row.get("sample", 0)))
    result = []
    for cur in summaries:
        sources = list(cur["per_teacher"])
        outputs: dict[str, Counter] = {name: Counter() for name in sources}
        for name in sources:
            for example_id, sample in traces.get(name, []):
                if not cur.get("first_sample_only") or sample == 0:
                    outputs[name][example_id] += 1
        kinds: dict[tuple[bool, str], dict] = {}
        for verdict in _verdicts(out, cur["variant"]):
            key = (verdict.kept, reason_kind(verdict.reason))
            entry = kinds.setdefault(key, {"kept": key[0], "reason": key[1], "inputs": 0,
                                           "per_teacher": {n: {"kept": 0, "dropped": 0} for n in sources}})
            entry["inputs"] += 1
            kept = Counter(ref.teacher for ref in verdict.kept_outputs) if verdict.kept else Counter()
            for name in sources:
                total = outputs[name][verdict.example_id]
                entry["per_teacher"][name]["kept"] += min(kept[name], total)
                entry["per_teacher"][name]["dropped"] += max(total - kept[name], 0)
        ordered = sorted(kinds.values(), key=lambda e: (not e["kept"], -e["inputs"], e["reason"]))
        result.append({"variant": cur["variant"], "filter": cur["filter"], "teachers": sources, "reasons": ordered,
                       "truncated": {n: (c.get("truncated", 0), c["outputs"]) for n, c in cur["per_teacher"].items()}})
    return result


def _loss_curves(out: Path) -> list[dict]:
    """Every student's train_log.jsonl, one curve per variant and stage, in the order trained."""
    curves = []
    for path in sorted((out / "student").glob("*/stage*/train_log.jsonl"), key=lambda p: (p.parts[-3], _stage_number(p.parts[-2]))):
        points = [r for r in read_jsonl(path) if "loss" in r]
        sets = sorted((out / "distill" / path.parts[-3]).glob(f"{path.parts[-2]}-*.jsonl"))
        fmt = next((p.stem.split("-", 1)[1] for p in sets if not p.name.endswith(".rewrites.jsonl")), "")
        curves.append({
            "variant": path.parts[-3], "stage": f"{path.parts[-2]} {fmt}".strip(),
            "points": [[r.get("step"), r["loss"], r.get("mean_token_accuracy")] for r in points],
        })
    return curves


def _stage_number(name: str) -> int:
    digits = re.sub(r"\D", "", name)
    return int(digits) if digits else 0


_LABELS = ("system", "teacher", "stage", "method", "model", "shots", "test", "majority_of")


def _systems(out: Path, rows: list[Row]) -> list[dict]:
    """The evaluated systems in the report's order, each with its eval/NAME.jsonl artifact name: the
    row's `eval_name`, or (a row of a report.json written before rows named it) the eval/NAME.json
    that then held the same labels."""
    artifacts = None
    systems: list[dict] = []
    for row in rows:
        taken = [s["key"] for s in systems]
        name = row.eval_name
        if name is None:
            if artifacts is None:
                artifacts = {path.stem: json.loads(path.read_text())
                             for path in (out / "eval").glob("*.json")} if (out / "eval").exists() else {}
            name = next((n for n, saved in artifacts.items()
                         if n not in taken and (out / "eval" / f"{n}.jsonl").exists()
                         and all(saved.get(k) == getattr(row, k) for k in _LABELS)), None)
        if name is None or name in taken or not (out / "eval" / f"{name}.jsonl").exists():
            continue
        detail = " · ".join(x for x in (row.detail, row.method_label) if x)
        label = {"system1": "System 1", "system2": "System 2"}.get(row.system, row.system_label)
        systems.append({"key": name, "label": f"{label} · {detail}" if detail else label, "system": row.system})
    return systems


def _question(task, inputs: dict, example_id: str) -> str:
    if task is not None:
        try:
            from s2distill.types import Example

            return task.question(Example(example_id, inputs))
        except Exception:  # a task without question(): show its raw inputs instead
            pass
    return json.dumps(inputs, ensure_ascii=False)


def gather(out: Path, report: dict, *, task=None) -> dict[str, Any]:
    """The page's data, from the run folder: compact (string table, prompt prefixes shared)."""
    strings = _Strings()
    sample_rows = {label: read_jsonl(path) for label, path in _sample_files(out)}
    for rows in sample_rows.values():
        by_call: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            for call in row.get("calls", []):
                by_call[call.get("name", "")].append(call["prompt"])
        for prompts in by_call.values():
            strings.add_prefix(prompts)

    train: dict[str, dict] = {}
    for row in _jsonl(out / "inputs" / "train.jsonl"):
        train[row["id"]] = {"id": row["id"], "q": strings.ref(_question(task, row["inputs"], row["id"])), "s": [], "v": {}, "p": []}
    for label, rows in sample_rows.items():
        for row in rows:
            item = train.get(row["example_id"])
            if item is None:
                continue
            calls = [[strings.ref(c.get("name", "")), *strings.prompt(c["prompt"]), strings.ref(c["output"]),
                      c["usage"]["prompt_tokens"], c["usage"]["completion_tokens"],
                      int(c.get("finish_reason") == "length")] for c in row.get("calls", [])]
            item["s"].append([strings.ref(label), row.get("sample", 0), strings.ref(row.get("answer")),
                              strings.ref(row.get("error")), calls, int(any(c[6] for c in calls))])
    variants = [cur["variant"] for cur in report.get("curation", [])]
    for variant in variants:
        for verdict in _verdicts(out, variant):
            item = train.get(verdict.example_id)
            if item is not None:
                kept = [[ref.teacher, ref.sample] for ref in verdict.kept_outputs]
                item["v"][variant] = [int(verdict.kept), strings.ref(verdict.reason),
                                      strings.ref(reason_kind(verdict.reason)), strings.ref(verdict.answer), kept]
    pair_files = sorted((out / "distill").glob("*/stage*.jsonl")) if (out / "distill").exists() else []
    pair_prompts = [pair_text(r["prompt"]) for path in pair_files if not path.name.endswith(".rewrites.jsonl") for r in read_jsonl(path)]
    strings.add_prefix(pair_prompts)
    for path in pair_files:
        if path.name.endswith(".rewrites.jsonl"):
            continue
        stage = strings.ref(f"{path.parent.name}/{path.stem}")
        for row in read_jsonl(path):
            item = train.get(row.get("id"))
            if item is not None:
                item["p"].append([stage, row.get("teacher"), row.get("sample"), *strings.prompt(pair_text(row["prompt"])),
                                  strings.ref(pair_text(row["completion"]))])

    systems = _systems(out, rows_of(report.get("rows", [])))
    test_inputs = {}
    if task is not None:
        try:
            test_inputs = {e.id: e.inputs for e in task.unlabeled("test")}
        except Exception:  # the page still shows answers and labels by id
            test_inputs = {}
    test: dict[str, dict] = {}
    for index, system in enumerate(systems):
        for record in read_jsonl(out / "eval" / f"{system['key']}.jsonl"):
            item = test.setdefault(record["id"], {
                "id": record["id"], "t": strings.ref(str(record.get("target"))), "r": {},
                "q": strings.ref(_question(task, test_inputs[record["id"]], record["id"]) if record["id"] in test_inputs else ""),
            })
            item["r"][index] = [strings.ref(record.get("answer")), record.get("correct") or 0,
                                record.get("completion_tokens"), strings.ref(record.get("output")),
                                strings.ref(record.get("error"))]
    return {
        "name": report.get("name"), "task": report.get("task"), "rows": report.get("rows", []),
        "systems": systems, "variants": variants, "losses": _loss_curves(out),
        "strings": strings.table, "train": list(train.values()), "test": list(test.values()),
    }


# -- the static part: tables rendered here ------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "—"


def systems_table(rows: list[Row]) -> str:
    metric = rows[0].metric if rows else "score"
    head = ("<tr><th>system</th><th>teacher / stage</th><th>method</th><th>model</th>"
            f"<th class=n>{_e(metric)}</th><th class=n>n</th><th class=n>unparseable</th><th class=n>truncated</th>"
            "<th class=n>generated tokens / ex.</th><th class=n>prompt tokens / ex.</th>"
            "<th class=n>examples / s</th></tr>")
    body = []
    for row in rows:
        score = f"{100 * row.score:.1f}%" if row.score is not None else f"— ({_e(row.note)})"
        body.append(
            f"<tr class='sys-{_e(row.system)}'><td>{_e(row.system_label)}</td><td>{_e(row.detail)}</td><td>{_e(row.method_label)}</td>"
            f"<td>{_e(row.model)}</td><td class=n>{score}</td><td class=n>{_e(row.n)}</td>"
            f"<td class=n>{_e(row.unparseable)}</td><td class=n>{_e(row.truncated)}</td>"
            f"<td class=n>{_num(row.tokens_per_example)}</td>"
            f"<td class=n>{_num(row.prompt_tokens_per_example)}</td>"
            f"<td class=n>{_num(row.examples_per_second, '{:.2f}')}</td></tr>"
        )
    return f"<table id=systems><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


def curation_tables(by_reason: list[dict]) -> str:
    if not by_reason:
        return "<p>No curation: this run trains no student.</p>"
    parts = []
    for cur in by_reason:
        teachers = cur["teachers"]
        head = ("<tr><th>verdict</th><th>reason</th><th class=n>inputs</th>"
                + "".join(f"<th class=n>{_e(t)}: kept</th><th class=n>{_e(t)}: dropped</th>" for t in teachers) + "</tr>")
        body = []
        for entry in cur["reasons"]:
            cells = "".join(f"<td class=n>{entry['per_teacher'][t]['kept']}</td><td class=n>{entry['per_teacher'][t]['dropped']}</td>"
                            for t in teachers)
            verdict = "kept" if entry["kept"] else "dropped"
            body.append(f"<tr class={verdict}><td>{verdict}</td><td>{_e(entry['reason'])}</td>"
                        f"<td class=n>{entry['inputs']}</td>{cells}</tr>")
        kept = sum(e["inputs"] for e in cur["reasons"] if e["kept"])
        total = sum(e["inputs"] for e in cur["reasons"])
        cut = {t: (cur.get("truncated") or {}).get(t, (0, 0)) for t in teachers}  # (truncated, outputs)
        foot = ("<tr class=truncated><td>truncated</td><td>outputs cut at their max_tokens budget (never kept)</td><td></td>"
                + "".join(f"<td class=n colspan=2>{cut[t][0]} of {cut[t][1]}</td>" for t in teachers) + "</tr>")
        parts.append(f"<h3>{_e(cur['variant'])}: {_e(cur['filter'])}, kept {kept} of {total} inputs</h3>"
                     f"<table class=curation data-variant='{_e(cur['variant'])}'><thead>{head}</thead>"
                     f"<tbody>{''.join(body)}</tbody><tfoot>{foot}</tfoot></table>")
    return "".join(parts)


def cost_block(report: dict) -> str:
    """Teachers' token spend (and money when priced), provenance, and the per-stage wall time."""
    cost = report.get("cost") or {}
    items, table = [], ""
    rows = spend_rows(cost)
    if rows:
        body = "".join(
            f"<tr><td>{_e(r['teacher'])}</td><td>{_e(r['stage'])}</td><td class=n>{r['outputs']:,}</td>"
            f"<td class=n>{r['prompt_tokens']:,}</td><td class=n>{r['cached_prompt_tokens']:,}</td>"
            f"<td class=n>{r['completion_tokens']:,}</td><td class=n>"
            + _e(money_text(r)) + "</td></tr>"
            for r in rows)
        table = ("<table class=spend><tr><th>teacher</th><th>stage</th><th class=n>outputs</th>"
                 "<th class=n>prompt tokens</th><th class=n>of them cached</th><th class=n>generated tokens</th>"
                 f"<th class=n>cost</th></tr>{body}</table>")
    if cost.get("total_usd") is not None:
        items.append(f"<li><b>total</b>: ${cost['total_usd']:.4f}</li>")
    items += [f"<li><b>per kept training input</b>: {_e(line)}</li>" for line in kept_lines(cost)]
    if not items and not table:
        items.append("<li>No teacher spend recorded.</li>")
    items += [f"<li><b>training</b>: {_e(line)}</li>" for line in training_lines(rows_of(report.get("rows", [])))]
    prov = report.get("provenance") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())
    commit = f" (git {prov['git_commit'][:12]}{', modified' if prov.get('git_dirty') else ''})" if prov.get("git_commit") else ""
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in (report.get("timings") or {}).items())
    return (f"{table}<ul>{''.join(items)}</ul>"
            f"<p><b>Versions</b>: {_e(versions)}{_e(commit)}</p>"
            f"<p><b>Wall time per stage</b>: {_e(timings)}</p>"
            f"<p><b>LM calls this invocation</b>: {_e((report.get('lm') or {}).get('calls'))} generated, "
            f"{_e((report.get('lm') or {}).get('cached'))} from the cache.</p>")


def render_html(out: Path, report: dict, *, task=None) -> str:
    data = gather(out, report, task=task)
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    page = TEMPLATE.read_text()
    replacements = {
        "{{TITLE}}": _e(f"s2distill report: {report.get('name')}"),
        "{{HEADER}}": _e(f"task {report.get('task')} · teachers {report.get('teachers')} · student {report.get('student')}"),
        "{{SYSTEMS}}": systems_table(rows_of(report.get("rows", []))),
        "{{CURATION}}": curation_tables(curation_by_reason(out, report.get("curation", []))),
        "{{AUDIT}}": audit_html(report),
        "{{CASCADE}}": cascade_html(report),
        "{{COST}}": cost_block(report),
        "{{DATA}}": payload,
    }
    for key, value in replacements.items():  # the data last: nothing is substituted inside it
        page = page.replace(key, value)
    return page


def write_html_report(out: Path, report: dict, *, task=None) -> Path:
    """Write `out/report.html` from the run folder and its report; return its path."""
    path = Path(out) / "report.html"
    atomic_write_bytes(path, render_html(Path(out), report, task=task).encode("utf-8"))
    return path
