"""The demo's evaluators: Python checks an evaluation dataset's case or a step's live checks name with
``evaluator: <name>`` (registered as skills are, :func:`baton.registry.evaluator`). Each gets the field's
value, the step's output and the check's ``args``, and answers ``True``, ``False`` or a ``Verdict`` with the
reason."""

from __future__ import annotations

import re

from baton.registry import EvaluatorRequest, Verdict, evaluator

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<!\w)\+?\d(?:[ ().-]?\d){8,14}(?!\w)")  # nine to fifteen digits, as E.164 allows
WORD = re.compile(r"\w+(?:['’-]\w+)*")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


@evaluator("no_contact_details")
def no_contact_details(request: EvaluatorRequest) -> Verdict:
    """A text that gives no e-mail address or phone number (what a reply or a summary must not leak)."""
    text = _text(request.value)
    if text is None:
        return Verdict(False, f"is a {type(request.value).__name__}, not a text")
    if found := EMAIL.search(text):
        return Verdict(False, f"gives an e-mail address at character {found.start()}")
    if found := PHONE.search(text):
        return Verdict(False, f"gives a phone number at character {found.start()}")
    return Verdict(True)


@evaluator("word_count")
def word_count(request: EvaluatorRequest) -> Verdict:
    """A text of ``args.min`` to ``args.max`` words (either may be left out)."""
    text = _text(request.value)
    if text is None:
        return Verdict(False, f"is a {type(request.value).__name__}, not a text")
    low, high = request.args.get("min", 0), request.args.get("max")
    words = len(WORD.findall(text))
    if words < low:
        return Verdict(False, f"has {words} words, fewer than {low}")
    if high is not None and words > high:
        return Verdict(False, f"has {words} words, more than {high}")
    return Verdict(True)
