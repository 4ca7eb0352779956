"""Prompt complexity 0..1 from structural and linguistic features, each reported as a reason."""

from __future__ import annotations

import math
import re

_CODE = re.compile(
    r"```|\b(?:def|class|return|import|function|const|let|var|public|void|SELECT|FROM)\b|[{};]\s*$|=>|\w+\(\w*\)", re.M
)
_MATH = re.compile(
    r"\b(?:prove|proof|derive|integral|derivative|theorem|equation|matrix|probability|variance|distribution|"
    r"stationary|induction|lemma|optimi[sz]e|complexity|o\(n)\b|[=^]\s*\d|\d\s*[+*/^]\s*\d",
)
# Lower-case patterns, matched against the lower-cased prompt: re.I costs about twice the time.
_MULTI_STEP = re.compile(
    r"\b(?:step by step|then|after that|first|second|finally|walk through|plan|design|propose|outline|compare|"
    r"analy[sz]e|evaluate|diagnose|trade-?offs?|justify|explain (?:why|how|each)|strategy|migrat\w*|architect\w*|"
    r"implement|refactor|build|develop|model|audit|reconcile|prepare)\b",
)
_CONSTRAINT = re.compile(
    r"\b(?:must|must not|without|at least|at most|no more than|under \$?\d|within|exactly|ensure|keep(?:ing)?|"
    r"only|constraints?|requirements?|consistent|correct under|zero downtime|bounded|per-\w+|budget)\b",
)
_DOMAIN = re.compile(
    r"\b(?:distributed|concurren\w*|thread-safe|lock|latency|throughput|kubernetes|cluster|schema|pipeline|"
    r"cryptograph\w*|authentication|oidc|saml|regression|bayesian|stochastic|markov|gradient|eviction|"
    r"liability|indemnif\w*|jurisdictions?|gdpr|compliance|covenants?|leveraged|amorti[sz]\w*|"
    r"interactions?|contraindications?|periodi[sz]\w*|pharmaco\w*|lamination|entity resolution|"
    r"change data capture|hallucinations?|statistical|microservices?|infrastructure|threat model\w*)\b",
)
_LIST_ITEM = re.compile(r"(?:^|\n)\s*(?:\d+[.)]|[-*•])\s+")
_SIMPLE = re.compile(
    r"^\W*(?:hi|hello|hey|thanks|thank you|what is|what's|who is|who was|who won|when did|where is|how many|"
    r"how much|how do you say|translate|define|synonym|is it|is \w+ (?:a|an|the)?)\b",
)

# Weights of a logistic score, fitted (ridge, on logit targets -2.6/0/2.6 for low/mid/high) on tests/data/scorer.
BIAS = -6.2
W_LENGTH = 2.05  # per natural-log unit of words: 5 words → low, 20 → mid, 60 → high
W_CODE = 0.15
W_MATH = 0.5
W_STEP = 0.3  # per multi-step cue (at most 4)
W_CONSTRAINT = 0.3  # per constraint cue (at most 4)
W_DOMAIN = 0.15  # per domain term (at most 3)
W_QUESTIONS = 0.1  # per question beyond the first (at most 3)
W_LIST = 0.15  # per list item (at most 4)
W_SIMPLE = -0.25  # starts like a lookup or small talk


def complexity(prompt: str) -> tuple[float, list[str]]:
    """(0..1 complexity of the prompt, the features that moved it)."""
    text = prompt[:8000]  # beyond this, more text says nothing new about difficulty
    lower = text.lower()
    n_words = len(text.split())
    z = BIAS + W_LENGTH * math.log1p(n_words)
    reasons = [f"{n_words} words"]
    features = (
        ("code", W_CODE, 2, len(_CODE.findall(text))),
        ("maths", W_MATH, 2, len(_MATH.findall(lower))),
        ("multi-step", W_STEP, 4, len(_MULTI_STEP.findall(lower))),
        ("constraints", W_CONSTRAINT, 4, len(_CONSTRAINT.findall(lower))),
        ("domain terms", W_DOMAIN, 3, len(_DOMAIN.findall(lower))),
        ("extra questions", W_QUESTIONS, 3, max(text.count("?") - 1, 0)),
        ("list items", W_LIST, 4, len(_LIST_ITEM.findall(text))),
    )
    for name, weight, cap, count in features:
        if count:
            z += weight * min(count, cap)
            reasons.append(f"{name} ×{count}")
    if _SIMPLE.search(lower) and n_words < 15:
        z += W_SIMPLE
        reasons.append("simple lookup")
    return round(1.0 / (1.0 + math.exp(-z)), 3), reasons
