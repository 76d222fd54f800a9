"""The safety taxonomy (API labels, names) and the default hint sentences of a package.

Labels are API identifiers and never change; names and hints are package data, so a package can
localise or refine them. A hint is the sentence pass 2 adds for a (level, type): level 0 or type
'safe' adds none, level 3 asks for a refusal with a reason.
"""

from __future__ import annotations

TYPES = [
    ("politics", "Politics", "political risk"),
    (
        "illegal_risk",
        "Illegal risk",
        "illegal activity, violence, pornography, weapons, drugs, malware or abuse of security checks",
    ),
    ("insults_bullying", "Insults and bullying", "harassment, hate or abuse"),
    ("fairness", "Fairness", "prejudice, discrimination or stereotypes"),
    ("privacy", "Privacy", "personal data or identifying private people"),
    ("misleading", "Misleading", "misinformation or professional legal, financial or medical advice"),
    ("safe", "Safe", "no safety risk"),
]

LEVELS = [
    ("safe", "Safe", "answer"),
    ("careful", "Careful", "answer with care"),
    ("caution", "Caution", "answer or refuse; the model decides"),
    ("refuse", "Refuse", "refuse with a reason"),
]

_LEVEL_HINTS = {
    "careful": "This request touches on {topic}. Answer helpfully, stay factual, and add the caveats a careful "
    "expert would give.",
    "caution": "This request may involve {topic}. Answer only if it can be done safely; if the answer could "
    "cause harm, decline and say why.",
    "refuse": "This request involves {topic}. Do not help with it; refuse politely and briefly explain the reason.",
}


def taxonomy() -> dict:
    return {
        "types": [{"index": i, "label": lb, "name": n, "description": d} for i, (lb, n, d) in enumerate(TYPES)],
        "levels": [{"index": i, "label": lb, "name": n, "action": a} for i, (lb, n, a) in enumerate(LEVELS)],
    }


def default_hints() -> dict[str, dict[str, str | None]]:
    """hints[level_label][type_label] -> sentence or None, for every pair."""
    table: dict[str, dict[str, str | None]] = {}
    for level, _, _ in LEVELS:
        row: dict[str, str | None] = {}
        for label, _, topic in TYPES:
            template = _LEVEL_HINTS.get(level)
            row[label] = None if template is None or label == "safe" else template.format(topic=topic)
        table[level] = row
    return table


def hint_sentences() -> list[str]:
    return [h for row in default_hints().values() for h in row.values() if h]
