"""Tag sets and data-set groupings for bench/scoring_eval.py, written before any result was seen.

Each tag is what a user would plausibly write; each evaluation group maps public data sets
(bench/scoring_eval_data.py) to the tag they belong to. Held-out groups use only the
reserved sets (MMLU, MATH, GSM8K, HumanEval); development groups use only the others.
"""

from __future__ import annotations

import hashlib
import re

#: Development data sets (bench/scoring_eval_data.py), never a reserved one: the tag centre is their average prompt.
DEV_SETS = [
    "arc_easy",
    "arc_challenge",
    "openbookqa",
    "csqa",
    "socialiqa",
    "boolq",
    "piqa",
    "winogrande",
    "sciq",
    "medmcqa",
    "medqa",
    "mbpp",
    "mt_mbpp",
    "squad",
    "coqa",
    "naturalqs",
    "jeopardy",
    "skills_arithmetic",
    "skills_coding",
    "skills_common_knowledge",
    "skills_logical_reasoning",
    "skills_pattern",
    "skills_string_operations",
    "champ",
]
_JEOPARDY_CATEGORY = re.compile(r"^Category: [^\n]*\nQuestion: ")


def prompt_text(text: str) -> str:
    """A row's prompt for tag matching: Jeopardy rows name their category ("Category: SCIENCE"), which is the label."""
    return _JEOPARDY_CATEGORY.sub("", text)


def half(text: str) -> int:
    """Development rows are split in two by a hash of their text: 0 to fit and choose on, 1 to report."""
    return int(hashlib.md5(text.encode()).hexdigest(), 16) % 2


SUBJECT_TAGS = {
    "law": "Legal questions: law, contracts, courts, legislation, rights and legal reasoning",
    "medicine": "Medicine and health: diseases, anatomy, clinical practice, drugs and nutrition",
    "economics": "Economics, finance and business: markets, prices, money, accounting and management",
    "history": "History: past events, wars, empires, political movements and historical figures",
    "psychology": "Psychology: behaviour, the mind, mental processes, development and therapy",
    "philosophy": "Philosophy and ethics: moral questions, arguments, logic and philosophers' ideas",
    "maths": "Mathematics: algebra, calculus, geometry, statistics and problem solving with numbers",
    "computer_science": "Computer science and programming: algorithms, software, networks and security",
    "science": "Natural science: physics, chemistry, biology, astronomy and engineering",
}

# MMLU subjects → subject tag (subjects that fit no tag, or two, are left out).
MMLU_SUBJECTS = {
    "law": "international_law jurisprudence professional_law",
    "medicine": "anatomy clinical_knowledge college_medicine professional_medicine medical_genetics nutrition "
    "virology human_aging",
    "economics": "econometrics high_school_macroeconomics high_school_microeconomics professional_accounting "
    "marketing management",
    "history": "high_school_european_history high_school_us_history high_school_world_history prehistory",
    "psychology": "high_school_psychology professional_psychology",
    "philosophy": "philosophy moral_disputes moral_scenarios formal_logic logical_fallacies",
    "maths": "abstract_algebra college_mathematics elementary_mathematics high_school_mathematics "
    "high_school_statistics",
    "computer_science": "college_computer_science high_school_computer_science computer_security machine_learning",
    "science": "astronomy college_biology college_chemistry college_physics conceptual_physics high_school_biology "
    "high_school_chemistry high_school_physics electrical_engineering",
}

TASK_TAGS = {
    "coding": "Programming tasks: write, complete or fix code and functions",
    "maths": "Maths problems: arithmetic, word problems, algebra and calculations to solve",
    "logic": "Logical reasoning: deductions, syllogisms, puzzles and whether an argument is valid",
    "reading_comprehension": "Reading comprehension: answer a question about a given passage of text",
    "science": "Science questions: physics, chemistry, biology and the natural world",
    "general_knowledge": "General knowledge and trivia: facts about people, places, events and everyday life",
}

# (data set, MMLU subjects or None for all rows) per task tag.
TASK_HELD_OUT = {
    "coding": [("humaneval", None)],
    "maths": [("gsm8k", None), ("math", None)],
    "logic": [("mmlu", "formal_logic logical_fallacies")],
    "reading_comprehension": [("drop", None)],  # no reserved reading set ships; drop is never fitted on
    "science": [
        (
            "mmlu",
            "high_school_biology high_school_chemistry high_school_physics college_biology "
            "college_chemistry college_physics astronomy conceptual_physics",
        )
    ],
    "general_knowledge": [("mmlu", "miscellaneous global_facts")],
}
TASK_DEV = {
    "coding": [("mbpp", None), ("mt_mbpp", None), ("skills_coding", None)],
    "maths": [("skills_arithmetic", None)],
    "logic": [("skills_logical_reasoning", None)],
    "reading_comprehension": [("squad", None), ("coqa", None), ("boolq", None)],
    "science": [("arc_easy", None), ("arc_challenge", None), ("sciq", None), ("openbookqa", None)],
    "general_knowledge": [("naturalqs", None), ("jeopardy", None), ("skills_common_knowledge", None)],
}

# Keyword-list baseline: a few obvious words per tag, as a user might list them.
KEYWORDS = {
    "law": "law legal court contract statute rights plaintiff defendant",
    "medicine": "patient disease medical doctor drug treatment symptoms clinical",
    "economics": "economy market price money cost demand supply finance",
    "history": "history war century empire king revolution ancient",
    "psychology": "psychology behavior behaviour mental memory cognitive emotion",
    "philosophy": "philosophy moral ethics argument kant virtue morally",
    "maths": "math equation calculate number solve sum integer probability",
    "computer_science": "computer program algorithm software code data network",
    "science": "physics chemistry biology energy cell atom force",
    "coding": "code function program python write implement return",
    "logic": "logic argument premise conclusion valid fallacy therefore",
    "reading_comprehension": "passage text according read paragraph",
    "general_knowledge": "who where when which famous country capital",
}

# Development subject tags (jeopardy categories, MedMCQA, MBPP, basic arithmetic): for choosing the "no tag" rule.
DEV_SUBJECT_TAGS = {
    "literature": "Literature: novels, poems, authors and literary works",
    "science": SUBJECT_TAGS["science"],
    "history": SUBJECT_TAGS["history"],
    "language": "Language and words: where words come from, their meanings and spelling",
    "medicine": SUBJECT_TAGS["medicine"],
    "computer_science": SUBJECT_TAGS["computer_science"],
    "maths": SUBJECT_TAGS["maths"],
}
SUBJECT_DEV = {
    "literature": [("jeopardy", "literature")],
    "science": [("jeopardy", "science")],
    "history": [("jeopardy", "american_history world_history")],
    "language": [("jeopardy", "word_origins")],
    "medicine": [("medmcqa", None)],
    "computer_science": [("mbpp", None)],
    "maths": [("skills_arithmetic", None)],
}

# Development tags written in round 2 (before any result on them): a fine-grained tag set of
# medical specialties (MedMCQA subjects), to check that a choice holds beyond the two sets above.
MED_TAGS = {
    "dentistry": "Dentistry: teeth, gums, oral surgery and dental materials",
    "surgery": "Surgery: operations, trauma, wounds and surgical procedures",
    "pathology": "Pathology: how diseases develop, tissue changes, tumours and lab findings",
    "pharmacology": "Pharmacology: drugs, doses, side effects and how medicines act",
    "anatomy": "Anatomy: structure of the body, bones, muscles, nerves and vessels",
    "pediatrics": "Paediatrics: children's health, growth, vaccination and childhood diseases",
    "obstetrics": "Obstetrics and gynaecology: pregnancy, childbirth and women's reproductive health",
    "microbiology": "Microbiology: bacteria, viruses, fungi, parasites and infections",
}
MED_DEV = {
    "dentistry": [("medmcqa", "Dental")],
    "surgery": [("medmcqa", "Surgery")],
    "pathology": [("medmcqa", "Pathology")],
    "pharmacology": [("medmcqa", "Pharmacology")],
    "anatomy": [("medmcqa", "Anatomy")],
    "pediatrics": [("medmcqa", "Pediatrics")],
    "obstetrics": [("medmcqa", "Gynaecology_&_Obstetrics")],
    "microbiology": [("medmcqa", "Microbiology")],
}
