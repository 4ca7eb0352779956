"""Redaction quality on third-party data: caught %, precision, false positives per MB, MB/s.

Strict scoring: a value is *caught* only if no run of 4 of its identifying characters
(an e-mail's local part, a phone number without its country code, a card's digits, a
key's body …) reaches the provider; letters and digits are compared with everything
else removed, and runs that the template itself contains do not count. A near-miss is
*touched* when any finding overlaps it. Data: see ``bench/redact_eval_data.py``.

Run (a few minutes on one core):

    .venv/bin/python bench/redact_eval.py --split report
    .venv/bin/python bench/redact_eval.py --split report --presidio /path/to/python-with-presidio

``--presidio`` scores Presidio's pattern recognizers (what LiteLLM calls) on the same
samples, run by that interpreter through ``bench/redact_eval_presidio.py``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from redact_eval_data import Sample, natural_text, near_misses, positives

from router_plugins.redact.detectors import DETECTORS
from router_plugins.redact.normalise import normalise
from router_plugins.redact.redaction import Redaction, find_all

RUN = 4  # identifying characters in a row that count as a leak
NATURAL_BYTES = 2_000_000


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# Findings in natural text that are values of their kind by an independent check, not
# false positives: docstrings hold their authors' e-mail addresses, example addresses
# (127.0.0.1, ::ffff:192.168.0.1) and example UUIDs. Phones, cards and secrets cannot be
# checked this way: every one of their findings in natural text counts as a false positive.
REAL_IN_NATURAL_TEXT = {
    "email": lambda v: "@" in unquote(v) and "." in unquote(v).rsplit("@", 1)[1],  # jo%40email.com too
    "ip": _valid_ip,
    "uuid": _valid_uuid,
}
ALL = list(DETECTORS.values())


def compact(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum()).lower()


def leaked(sample: Sample, output: str) -> bool:
    ident = compact(sample.ident)
    out = compact(output)
    template = compact(sample.text[: sample.start] + " " + sample.text[sample.end :])
    return any(ident[i : i + RUN] in out and ident[i : i + RUN] not in template for i in range(len(ident) - RUN + 1))


def spans_ours(text: str) -> list[tuple[int, int, str]]:
    view = normalise(text)
    return [(view.start(f.start), view.end(f.end), f.detector) for f in find_all(view.text, ALL)]


def masked(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, pos = [], 0
    for start, end, _ in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append("*****")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def score(
    samples: list[Sample], near: list[Sample], natural: str, spans: list[list[tuple[int, int, str]]], natural_spans
) -> dict:
    """Caught / precision / near-misses touched / FP per MB, per detector and overall."""
    caught: Counter[str] = Counter()
    total: Counter[str] = Counter()
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for sample, found in zip(samples, spans[: len(samples)], strict=True):
        if len(compact(sample.ident)) < RUN:
            continue
        total[sample.detector] += 1
        ok = not leaked(sample, masked(sample.text, found))
        caught[sample.detector] += ok
        by_kind[f"{sample.detector}/{sample.kind}"]["n"] += 1
        by_kind[f"{sample.detector}/{sample.kind}"]["caught"] += ok
        if not ok:
            misses[sample.detector].append(sample.text[sample.start : sample.end])
        for start, end, detector in found:
            if start < sample.end and end > sample.start:
                tp[detector] += 1
            else:
                fp[detector] += 1
    touched = Counter()
    near_total = Counter()
    for sample, found in zip(near, spans[len(samples) :], strict=True):
        near_total[sample.kind] += 1
        hit = [d for start, end, d in found if start < sample.end and end > sample.start]
        if hit:
            touched[sample.kind] += 1
            for d in hit:
                fp[d] += 1
            misses["near-miss"].append(f"{sample.kind}: {sample.text[sample.start : sample.end]!r} ({','.join(hit)})")

    # Docstrings carry their authors' real e-mail addresses: found, and rightly masked.
    def is_real(start: int, end: int, detector: str) -> bool:
        check = REAL_IN_NATURAL_TEXT.get(detector)
        return check is not None and check(natural[start:end])

    real = Counter(d for s, e, d in natural_spans if is_real(s, e, d))
    natural_fp = Counter(d for s, e, d in natural_spans if not is_real(s, e, d))
    for d, n in natural_fp.items():
        fp[d] += n
    mb = len(natural.encode()) / 1e6
    return {
        "caught": {d: caught[d] / total[d] for d in total},
        "overall": sum(caught.values()) / sum(total.values()),
        "n": dict(total),
        "precision": {d: tp[d] / (tp[d] + fp[d]) if tp[d] + fp[d] else 1.0 for d in set(tp) | set(fp) | set(total)},
        "fp_per_mb": {d: natural_fp[d] / mb for d in natural_fp},
        "fp_per_mb_total": sum(natural_fp.values()) / mb,
        "near_touched": sum(touched.values()) / max(1, sum(near_total.values())),
        "near_by_kind": {k: f"{touched[k]}/{near_total[k]}" for k in sorted(near_total)},
        "by_kind": {k: f"{v['caught']}/{v['n']}" for k, v in sorted(by_kind.items())},
        "misses": {k: v[:12] for k, v in misses.items()},
        "natural_mb": mb,
        "natural_real": dict(real),
    }


def throughput(text: str, detectors: list) -> float:
    """MB/s, the best of ten runs (the machine may be shared)."""
    best = float("inf")
    for _ in range(10):
        start = time.perf_counter()
        Redaction(detectors).redact_text(text)
        best = min(best, time.perf_counter() - start)
    return len(text.encode()) / best / 1e6


def run_presidio(python: str, texts: list[str]) -> list[list[tuple[int, int, str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "texts.json"
        source.write_text(json.dumps(texts))
        script = Path(__file__).resolve().parent / "redact_eval_presidio.py"
        done = subprocess.run([python, str(script), str(source)], capture_output=True, text=True, check=True)
        return [[tuple(s) for s in spans] for spans in json.loads(done.stdout)]


def report(name: str, result: dict, speeds: dict[str, float] | None) -> None:
    print(
        f"\n== {name}: caught {result['overall']:.1%} overall; near-misses touched {result['near_touched']:.1%}; "
        f"{result['fp_per_mb_total']:.2f} FP/MB of natural text ({result['natural_mb']:.1f} MB)"
    )
    print(f"values of their kind found in the natural text, not counted as false positives: {result['natural_real']}")
    print(f"{'detector':<12}{'n':>6}{'caught':>9}{'precision':>11}{'FP/MB':>8}{'MB/s':>8}")
    for d in [*DETECTORS, *sorted(set(result["precision"]) - set(DETECTORS))]:
        if d not in result["n"] and d not in result["precision"]:
            continue
        caught = result["caught"].get(d)
        cells = [
            f"{result['n'].get(d, 0):>6}",
            f"{caught:>9.1%}" if caught is not None else f"{'-':>9}",
            f"{result['precision'].get(d, 1.0):>11.3f}",
            f"{result['fp_per_mb'].get(d, 0.0):>8.2f}",
            f"{speeds[d]:>8.1f}" if speeds and d in speeds else f"{'-':>8}",
        ]
        print(f"{d:<12}" + "".join(cells))
    if speeds:
        print(f"{'all':<12}{'':>6}{'':>9}{'':>11}{'':>8}{speeds['all']:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--split", choices=("dev", "report", "final"), default="dev")
    parser.add_argument("--presidio", help="a Python interpreter with presidio-analyzer installed")
    parser.add_argument("--details", action="store_true", help="print misses and per-kind figures")
    parser.add_argument(
        "--natural-skip",
        type=float,
        default=0.0,
        help="MB of third-party docstrings to skip first: natural text not looked at before",
    )
    args = parser.parse_args()

    samples = positives(args.split)
    near = near_misses(args.split)
    skip = int(args.natural_skip * 1e6)
    natural = natural_text("report", skip + NATURAL_BYTES)[skip:] if skip else natural_text(args.split, NATURAL_BYTES)
    texts = [s.text for s in samples] + [s.text for s in near]
    print(
        f"split {args.split}: {len(samples)} values, {len(near)} near-misses, {len(natural) / 1e6:.1f} MB natural text"
    )

    ours = [spans_ours(t) for t in texts]
    result = score(samples, near, natural, ours, spans_ours(natural))
    speeds = {d.name: throughput(natural, [d]) for d in ALL}
    speeds["all"] = throughput(natural, ALL)
    report("llm-router redact (all detectors)", result, speeds)
    if args.details:
        print(json.dumps({k: result[k] for k in ("by_kind", "near_by_kind", "misses")}, indent=1, ensure_ascii=False))

    if args.presidio:
        theirs = run_presidio(args.presidio, [*texts, natural])
        start = time.perf_counter()
        run_presidio(args.presidio, [natural[:200_000]])
        presidio = score(samples, near, natural, theirs[:-1], theirs[-1])
        report("Presidio pattern recognizers", presidio, None)
        print(
            f"Presidio MB/s (200 KB of natural text, process start included): {0.2 / (time.perf_counter() - start):.2f}"
        )
        if args.details:
            print(json.dumps({k: presidio[k] for k in ("by_kind", "near_by_kind")}, indent=1))


if __name__ == "__main__":
    main()
