"""``te-train``'s arm names: ``NAME[:RULE[:ESTIMATOR]]``.

* ``baseline``: plain SGD, no TE feedback (takes no rule or estimator).
* ``te``: SGD with :class:`te_ext.TEFeedback` using the preset's settings (its rule, the
  paper's, unless ``--rule`` overrides it) and the default estimator.
* ``te:RULE``: the same with ``RULE`` (``paper`` or ``authors_code``), whatever ``--rule`` says.
* ``te:RULE:ESTIMATOR``: also with ``TEFeedback(estimator=ESTIMATOR)`` (``plugin``,
  ``analytic``, ``effective``). Estimators other than the default ``plugin`` need a
  ``TEFeedback`` that takes an ``estimator`` keyword; until then they are refused with a
  clear message, and they work as soon as it does (checked on its signature, not a version).

An arm keeps its name as given everywhere (results, CSV, plots, summaries); checkpoint
file names use :func:`file_stem`, which replaces ``:`` (not allowed on every filesystem).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..feedback import TEFeedback

__all__ = ["ArmError", "Arm", "parse_arm", "parse_arms", "file_stem", "RULES", "ESTIMATORS",
           "estimator_supported"]

NAMES = ("baseline", "te")
RULES = ("paper", "authors_code")
ESTIMATORS = ("plugin", "analytic", "effective")
DEFAULT_ESTIMATOR = "plugin"


class ArmError(ValueError):
    """An arm name that does not follow ``NAME[:RULE[:ESTIMATOR]]`` or cannot run here."""


@dataclass(frozen=True)
class Arm:
    name: str                        # as given, e.g. "te:paper:effective"
    te: bool                         # whether it trains with TEFeedback
    rule: Optional[str] = None       # None: the preset's (or --rule's)
    estimator: Optional[str] = None  # None: TEFeedback's default

    def te_kwargs(self, defaults: dict) -> Optional[dict]:
        """The ``TEFeedback`` keywords of this arm from the run's ``defaults``; None for a
        baseline arm."""
        if not self.te:
            return None
        kw = dict(defaults)
        if self.rule is not None:
            kw["rule"] = self.rule
        if self.estimator is not None and estimator_supported():
            kw["estimator"] = self.estimator
        return kw


def estimator_supported() -> bool:
    """Whether this build's ``TEFeedback`` takes an ``estimator`` keyword."""
    try:
        return "estimator" in inspect.signature(TEFeedback).parameters
    except (TypeError, ValueError):
        return False


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
    if estimator is not None:
        if estimator not in ESTIMATORS:
            raise ArmError(f"bad arm {text!r}: unknown ESTIMATOR {estimator!r}; {grammar}")
        if estimator != DEFAULT_ESTIMATOR and not estimator_supported():
            raise ArmError(f"arm {text!r} needs TEFeedback estimator support "
                           f"(TEFeedback(..., estimator={estimator!r}), from the statistics "
                           f"work), which this te_ext does not have yet; use 'te' or "
                           f"'te:{rule}' for the plug-in estimator")
    return Arm(text, te=True, rule=rule, estimator=estimator)


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
