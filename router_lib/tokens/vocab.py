"""Build tiktoken's offline cache (o200k_base, cl100k_base) from the npm package js-tiktoken, verified."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .paths import cache_name, default_dir

# Pinned: npm checks the tarball's integrity against the registry; we check the result against tiktoken.
JS_TIKTOKEN = "js-tiktoken@1.0.21"
# tiktoken's own expected sha256 (tiktoken_ext/openai_public.py): a converted file must match byte for byte.
EXPECTED = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


def verified(path: Path, encoding: str) -> bool:
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == EXPECTED[encoding]


def convert(js_source: str) -> bytes:
    """js-tiktoken's ranks module → tiktoken's format: ``base64(token) rank`` per line, by rank.

    The module is ``export default {json}``; ``bpe_ranks`` holds lines of
    ``<label> <first rank> <base64 token> <base64 token> …`` with consecutive ranks.
    """
    ranks = json.loads(js_source.strip().removeprefix("export default").strip().rstrip(";"))
    pairs: list[tuple[int, str]] = []
    for line in ranks["bpe_ranks"].split("\n"):
        if not line:
            continue
        _, first, *tokens = line.split(" ")
        base = int(first)
        pairs.extend((base + i, token) for i, token in enumerate(tokens))
    pairs.sort()
    for _, token in pairs:
        base64.b64decode(token, validate=True)  # refuse anything that is not a token
    return "".join(f"{token} {rank}\n" for rank, token in pairs).encode()


def fetch_ranks(workdir: Path) -> dict[str, str]:
    """The ranks modules of js-tiktoken, read from ``npm pack``'s tarball."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed")
    subprocess.run(
        [npm, "pack", JS_TIKTOKEN, "--pack-destination", str(workdir), "--silent"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (tarball,) = workdir.glob("js-tiktoken-*.tgz")
    out = {}
    with tarfile.open(tarball) as tar:
        for encoding in EXPECTED:
            member = tar.extractfile(f"package/dist/ranks/{encoding}.js")
            assert member is not None
            out[encoding] = member.read().decode()
    return out


def build(target: Path) -> list[str]:
    """Make sure every vocabulary is in ``target`` and verified; returns what was written."""
    missing = [e for e in EXPECTED if not verified(target / cache_name(e), e)]
    if not missing:
        return []
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        sources = fetch_ranks(Path(tmp))
        for encoding in missing:
            data = convert(sources[encoding])
            digest = hashlib.sha256(data).hexdigest()
            if digest != EXPECTED[encoding]:
                raise ValueError(f"{encoding}: sha256 {digest} is not tiktoken's {EXPECTED[encoding]}; refused")
            staged = target / f".{cache_name(encoding)}.tmp"
            staged.write_bytes(data)
            os.replace(staged, target / cache_name(encoding))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router_lib.tokens.vocab", description=__doc__)
    parser.add_argument("--dir", type=Path, default=default_dir(), help="cache directory (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        written = build(args.dir)
    except ValueError as exc:
        print(f"tiktoken vocabularies: {exc}", file=sys.stderr)
        return 1
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        # Token savings then fall back to an estimate, with a warning at run time.
        print(f"tiktoken vocabularies not installed ({exc}); token counts will be estimates", file=sys.stderr)
        return 0
    print(f"tiktoken vocabularies {'written: ' + ', '.join(written) if written else 'up to date'} in {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
