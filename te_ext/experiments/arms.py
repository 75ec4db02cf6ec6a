"""``te-train``'s arm names: ``NAME[:RULE[:ESTIMATOR]]``.

* ``baseline``: plain SGD, no feedback (takes no rule or estimator).
* ``te``: SGD with :class:`te_ext.TEFeedback` on the classifier (the last Linear) using the
  preset's settings (its rule, the paper's, unless ``--rule`` overrides it).
* ``te:RULE``: the same with ``RULE`` (``paper`` or ``authors_code``), whatever ``--rule`` says.
* ``te:RULE:ESTIMATOR``: also with ``TEFeedback(estimator=ESTIMATOR)`` (``plugin``,
  ``analytic``, ``effective``).
* The paper's ablations, each in the same update slot with the same window and binarisation
  (:mod:`te_ext.feedback_measures`):

  * ``mi``: the mutual information of the same binary series;
  * ``phi``: their absolute φ correlation;
  * ``te_shifted``: the shuffled control, TE of the source circularly shifted by half the
    window (the same marginals, no timing);
  * ``te_deep``: TE feedback on every Linear of the classifier (every pair of adjacent fully
    connected layers, the flattened features included), not just the last.

  ``mi``, ``phi`` and ``te_shifted`` take a RULE and the ``plugin`` estimator only;
  ``te_deep`` takes a RULE and an ESTIMATOR like ``te``.

An arm keeps its name as given everywhere (results, CSV, plots, summaries); checkpoint
file names use :func:`file_stem`, which replaces ``:`` (not allowed on every filesystem).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

__all__ = ["ArmError", "Arm", "parse_arm", "parse_arms", "file_stem", "NAMES", "RULES",
           "ESTIMATORS", "MEASURES", "ALL_LINEAR"]

# NAME -> the TEFeedback measure it puts in the slot (None: no feedback)
MEASURES = {"baseline": None, "te": "te", "mi": "mi", "phi": "phi", "te_shifted": "te_shifted",
            "te_deep": "te"}
NAMES = tuple(MEASURES)
RULES = ("paper", "authors_code")
ESTIMATORS = ("plugin", "analytic", "effective")
# The value of the "layers" key of an arm's settings that puts feedback on every Linear.
ALL_LINEAR = "all_linear"


class ArmError(ValueError):
    """An arm name that does not follow ``NAME[:RULE[:ESTIMATOR]]``."""


@dataclass(frozen=True)
class Arm:
    name: str                        # as given, e.g. "te:paper:effective"
    te: bool                         # whether it trains with TEFeedback
    rule: Optional[str] = None       # None: the preset's (or --rule's)
    estimator: Optional[str] = None  # None: TEFeedback's default
    measure: Optional[str] = None    # what fills the slot; None for the baseline
    deep: bool = False               # feedback on every Linear, not just the last

    def te_kwargs(self, defaults: dict) -> Optional[dict]:
        """This arm's feedback settings from the run's ``defaults``: ``TEFeedback`` keywords,
        plus ``"layers": ALL_LINEAR`` for a deep arm; None for a baseline arm."""
        if not self.te:
            return None
        kw = dict(defaults)
        if self.rule is not None:
            kw["rule"] = self.rule
        if self.estimator is not None:
            kw["estimator"] = self.estimator
        if self.measure != "te":
            kw["measure"] = self.measure
        if self.deep:
            kw["layers"] = ALL_LINEAR
        return kw


def parse_arm(text: str) -> Arm:
    """The :class:`Arm` named ``text``; :class:`ArmError` saying what is wrong otherwise."""
    if not isinstance(text, str):
        raise ArmError(f"arm name must be a str, got {type(text).__name__}")
    parts = text.split(":")
    grammar = (f"arm names are NAME[:RULE[:ESTIMATOR]] with NAME in {list(NAMES)}, RULE in "
               f"{list(RULES)}, ESTIMATOR in {list(ESTIMATORS)}")
    if len(parts) > 3 or any(p == "" for p in parts):
        raise ArmError(f"bad arm {text!r}: {grammar}")
    name = parts[0]
    if name not in NAMES:
        raise ArmError(f"bad arm {text!r}: unknown NAME {name!r}; {grammar}")
    if name == "baseline":
        if len(parts) > 1:
            raise ArmError(f"bad arm {text!r}: 'baseline' trains without TE feedback and "
                           f"takes no RULE or ESTIMATOR")
        return Arm(text, te=False)
    rule = parts[1] if len(parts) > 1 else None
    if rule is not None and rule not in RULES:
        raise ArmError(f"bad arm {text!r}: unknown RULE {rule!r}; {grammar}")
    estimator = parts[2] if len(parts) > 2 else None
    if estimator is not None and estimator not in ESTIMATORS:
        raise ArmError(f"bad arm {text!r}: unknown ESTIMATOR {estimator!r}; {grammar}")
    measure = MEASURES[name]
    if measure != "te" and estimator not in (None, "plugin"):
        raise ArmError(f"bad arm {text!r}: {name!r} takes the plugin estimator only")
    return Arm(text, te=True, rule=rule, estimator=estimator, measure=measure,
               deep=name == "te_deep")


def parse_arms(text: str) -> List[Arm]:
    """The arms of a comma-separated ``--arms`` value: at least one, each name once."""
    names = [a.strip() for a in str(text).split(",") if a.strip()]
    if not names:
        raise ArmError(f"no arm given in {text!r}")
    dup = sorted({a for a in names if names.count(a) > 1})
    if dup:
        raise ArmError(f"arm(s) {dup} given more than once in {text!r}")
    return [parse_arm(a) for a in names]


def file_stem(arm: str) -> str:
    """``arm`` made safe for a file name: ``te:authors_code`` -> ``te+authors_code``. The
    grammar has no ``+``, so distinct arms get distinct stems."""
    return arm.replace(":", "+")


def te_settings(arms: List[Arm], defaults: dict) -> Dict[str, Optional[dict]]:
    """``{arm name: its TEFeedback keywords, or None for a baseline}``."""
    return {a.name: a.te_kwargs(defaults) for a in arms}
