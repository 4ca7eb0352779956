"""Redaction throughput (MB/s on one core) over mixed text of 1 KB, 100 KB and 5 MB.

Run: ``.venv/bin/python bench/redact_bench.py``. Not a test: figures go in docs/redact.md.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_plugins.redact.detectors import DETECTORS
from router_plugins.redact.redaction import Redaction

SIZES = {"1 KB": 1_000, "100 KB": 100_000, "5 MB": 5_000_000}
MIN_SECONDS = (
    float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
)  # repeat each measurement at least this long, so 1 KB figures are stable

PROSE = (
    "The deployment on 2024-03-15 at 10:30:00 UTC moved the service to version 2.14.3, "
    "and order #48213377 shipped in 3 boxes. See commit 3f2a9c1d8e7b in the release notes; "
    "the p95 latency fell from 182.5 ms to 97 ms while throughput rose by 12%. "
    "Please review section 4.2 of the design, then reply to the thread before Friday. "
    "def handler(request): return json.dumps({'status': 'ok', 'items': [1, 2, 3]})\n"
    "Meeting notes: budget approved (EUR 12,500), next review in Q3, owner: platform team. "
)
PII = (
    "Contact jane.doe@example.com or +44 20 7946 0958. ",
    "Card 4111 1111 1111 1111 expires 09/27. ",
    "Server 10.20.30.40 and fe80::1ff:fe23:4567:890a are down. ",
    "Key sk-proj-Abc123Def456Ghi789Jkl012Mno345 leaked; ",
    "IBAN GB82 WEST 1234 5698 7654 32 for the refund. ",
    "SSN 219-09-9999 on file, device 00:1A:2B:3C:4D:5E. ",
    "Session 550e8400-e29b-41d4-a716-446655440000 expired. ",
    "DATABASE_URL=postgres://app:Sup3rS3cret@db.internal:5432/app\n",
)


def mixed_text(size: int, with_pii: bool, seed: int = 7) -> str:
    """Prose with numbers, dates, versions and code; with PII, about one value per 2 KB."""
    rng = random.Random(seed)
    chunks: list[str] = []
    length = 0
    while length < size:
        chunk = PROSE if not with_pii or rng.random() > 0.2 else PROSE + rng.choice(PII)
        chunks.append(chunk)
        length += len(chunk)
    return "".join(chunks)[:size]


def throughput(text: str, detectors: list[str]) -> float:
    """MB/s of ``redact_text`` over ``text`` on this core."""
    chosen = [DETECTORS[name] for name in detectors]
    runs = 0
    start = time.perf_counter()
    while True:
        Redaction(chosen).redact_text(text)
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return runs * len(text) / elapsed / 1e6


def main() -> None:
    everything = list(DETECTORS)
    rows = [
        ("all detectors, no PII", everything, False),
        ("all detectors, mixed", everything, True),
        ("email only, mixed", ["email"], True),
        ("token only, mixed", ["token"], True),
        ("credit_card only, mixed", ["credit_card"], True),
    ]
    print(f"{'MB/s per core':<28}" + "".join(f"{label:>10}" for label in SIZES))
    for label, detectors, with_pii in rows:
        cells = [throughput(mixed_text(size, with_pii), detectors) for size in SIZES.values()]
        print(f"{label:<28}" + "".join(f"{mbs:>10.1f}" for mbs in cells))
    print("\nper detector alone, 100 KB mixed:")
    text = mixed_text(100_000, True)
    for name in everything:
        print(f"  {name:<12} {throughput(text, [name]):8.1f} MB/s")


if __name__ == "__main__":
    main()
