"""Presidio's pattern recognizers over texts (run by an interpreter with presidio-analyzer).

Reads a JSON list of texts, prints a JSON list of ``[start, end, detector]`` spans per
text. Only recognizers that need no spaCy model: e-mail, phone (libphonenumber), credit
card, IP, US SSN, IBAN — Presidio has none for UUIDs, MAC addresses or secrets.
"""

from __future__ import annotations

import json
import logging
import sys

from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    PhoneRecognizer,
    UsSsnRecognizer,
)

NAMES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "IP_ADDRESS": "ip",
    "US_SSN": "ssn",
    "IBAN_CODE": "iban",
}


def main() -> None:
    logging.disable(logging.CRITICAL)
    recognizers = [
        EmailRecognizer(),
        PhoneRecognizer(),
        CreditCardRecognizer(),
        IpRecognizer(),
        UsSsnRecognizer(),
        IbanRecognizer(),
    ]
    with open(sys.argv[1]) as source:
        texts = json.load(source)
    out = []
    for text in texts:
        spans = []
        for recognizer in recognizers:
            for r in recognizer.analyze(text, entities=recognizer.supported_entities, nlp_artifacts=None):
                spans.append([r.start, r.end, NAMES.get(r.entity_type, r.entity_type)])
        out.append(spans)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
