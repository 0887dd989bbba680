"""Diagnosis: what *kind* of shift a window shows, with the evidence for it.

A pure function of a :class:`~monitor.drift.suite.DriftReport` (no data, no I/O). Kinds
(DESIGN §10), checked in this order, the first that holds wins:

1. ``none`` — the verdict found no drift (no signal rejected after correction).
2. ``input_format`` — an upstream or preprocessing change: the tokenizer signal is rejected
   after correction *and* one of its format sub-tests (:data:`~monitor.drift.tokenizer.FORMAT_TESTS`:
   [UNK] rate, truncation rate, characters per token, a length cap, replacement characters,
   non-ASCII, markup) is significant on its own after Bonferroni over the tokenizer's
   sub-tests. A change of token counts alone is new content, not a format bug.
3. ``out_of_scope`` — traffic the model has no class for: the unknown-input signal is
   rejected after correction and its entropy sub-test is significant at ``alpha`` (the model
   hesitates), with the share of rows far from every reference class in the evidence.
4. ``label_prior`` — the class mix moved but the classes kept their place: the class
   distribution or BBSD is rejected after correction, no per-class embedding MMD is
   significant (Bonferroni over the classes tested), and unknown inputs are not. The BBSE
   estimate of the new prior (with its bootstrap interval) is in the evidence when the
   reference carries labels.
5. ``covariate`` — anything else that drifted: a new domain moved the inputs.

``confidence`` is the share of the kind's checks that hold (for ``covariate``: that the
embedding or BBSD omnibus test is rejected, that per-class MMD moved, that no format sub-test
fired), so a diagnosis reached by elimination says so with a lower confidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from monitor.drift.tokenizer import FORMAT_TESTS

if TYPE_CHECKING:
    from monitor.drift.suite import DriftReport

__all__ = ["KINDS", "Diagnosis", "Kind", "diagnose"]

Kind = Literal["none", "covariate", "label_prior", "out_of_scope", "input_format"]
KINDS: tuple[Kind, ...] = ("none", "covariate", "label_prior", "out_of_scope", "input_format")

_WORDS: dict[str, str] = {
    "none": "No drift",
    "covariate": "New domain (covariate shift)",
    "label_prior": "Label-prior shift",
    "out_of_scope": "Unknown inputs (out of scope)",
    "input_format": "Input-format or upstream change",
}


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """The kind of shift, how clean its evidence is (0..1), and the evidence itself."""

    kind: Kind
    confidence: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The kind in words, as the HTML top line and alerts say it."""
        return _WORDS[self.kind]

    @property
    def summary(self) -> str:
        """One sentence: the kind and its leading evidence."""
        reasons = self.evidence.get("reasons") or []
        tail = f": {'; '.join(str(r) for r in reasons)}" if reasons else ""
        return f"{self.title}{tail}"

    def to_dict(self) -> dict[str, Any]:
        """The DESIGN §10 ``diagnosis`` object (plus ``confidence`` and ``summary``)."""
        return {"kind": self.kind, "confidence": round(self.confidence, 3), "title": self.title,
                "summary": self.summary, "evidence": self.evidence}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Diagnosis | None:
        """Rebuild from :meth:`to_dict` output; None when absent or of an unknown kind."""
        if not data or data.get("kind") not in KINDS:
            return None
        return cls(kind=data["kind"], confidence=float(data.get("confidence") or 0.0),
                   evidence=dict(data.get("evidence") or {}))


def _p(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


def _fmt(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def diagnose(report: DriftReport) -> Diagnosis:
    """Name the kind of shift of ``report`` (see the module docstring for the rules)."""
    alpha = report.alpha
    tests = {t["signal"]: t for t in report.verdict.get("tests", [])}
    rejected = {name for name, t in tests.items() if t.get("rejected")}
    base: dict[str, Any] = {"alpha": alpha, "corrected_signals": sorted(rejected),
                            "raw_signals": sorted(s.signal for s in report.signals
                                                  if s.status == "ok" and s.p_value is not None
                                                  and s.drifted)}

    def adj(name: str) -> float | None:
        return _p(tests.get(name, {}).get("adjusted_p_value"))

    if not report.drifted:
        raw = base["raw_signals"]
        checks = {"no signal rejected after correction": True,
                  "no signal drifted on its raw flag": not raw}
        reasons = [f"raw flags only ({', '.join(raw)}), none survives correction"] if raw else []
        ev: dict[str, Any] = {**base, "reasons": reasons, "checks": checks}
        if report.verdict.get("status") not in (None, "ok"):
            ev["status"] = report.verdict.get("status")
        return Diagnosis("none", _share(checks), ev)

    tok = report.signal("tokenizer")
    tok_sub = dict(tok.details.get("tests") or {}) if tok is not None else {}
    k = max(len(tok_sub), 1)
    fmt_hits = {name: _p(sub.get("p_value")) for name, sub in tok_sub.items()
                if name in FORMAT_TESTS and (_p(sub.get("p_value")) or 1.0) * k < alpha}
    if "tokenizer" in rejected and fmt_hits:
        reasons = [_format_reason(name, tok_sub[name]) for name in sorted(fmt_hits, key=lambda n: fmt_hits[n]
                                                                         or 1.0)]
        checks = {"tokenizer rejected after correction": True,
                  "a format sub-test is significant": True,
                  "embedding or BBSD moved too": bool({"embedding", "bbsd"} & rejected)}
        return Diagnosis("input_format", _share(checks),
                         {**base, "reasons": reasons, "checks": checks,
                          "format_tests": {n: tok_sub[n] for n in fmt_hits},
                          "tokenizer_adjusted_p_value": adj("tokenizer")})

    unk = report.signal("unknown_input")
    unk_tests = dict(unk.details.get("tests") or {}) if unk is not None else {}
    ent = unk_tests.get("entropy") or {}
    dist = unk_tests.get("distance") or {}
    ent_p = _p(ent.get("p_value"))
    if "unknown_input" in rejected and ent_p is not None and ent_p < alpha:
        far, expected = _p(dist.get("far_share")), _p(dist.get("expected_far_share"))
        reasons = [f"prediction entropy up {ent.get('reference_mean', 0):.3f} → "
                   f"{ent.get('current_mean', 0):.3f} (p {_fmt(ent_p)})"]
        if far is not None:
            reasons.append(f"{far:.0%} of rows far from every reference class "
                           f"(expected {expected or 0:.0%})")
        checks = {"unknown-input rejected after correction": True, "entropy up": True,
                  "rows far from every class": bool(far is not None and expected is not None
                                                    and far > 2 * expected)}
        return Diagnosis("out_of_scope", _share(checks),
                         {**base, "reasons": reasons, "checks": checks, "entropy": ent,
                          "distance": dist, "unknown_input_adjusted_p_value": adj("unknown_input")})

    per_class = _per_class_mmd(report)
    moved_classes = [c for c, p in per_class.items() if p * max(len(per_class), 1) < alpha]
    prior_moved = bool({"class_distribution", "bbsd"} & rejected)
    if prior_moved and not moved_classes and "unknown_input" not in rejected:
        cd = report.signal("class_distribution")
        details = cd.details if cd is not None else {}
        reasons = [_mix_reason(details)] if details.get("labels") else []
        checks = {"class mix moved (corrected)": True,
                  "per-class MMD tested": bool(per_class),
                  "no class moved in embedding space": True,
                  "no unknown inputs": True}
        ev = {**base, "reasons": reasons, "checks": checks,
                              "per_class_mmd_p_values": per_class,
                              "predicted_share": {"labels": details.get("labels"),
                                                  "reference": details.get("reference_share"),
                                                  "current": details.get("current_share")}}
        if "bbse" in details:
            ev["bbse"] = details["bbse"]
        return Diagnosis("label_prior", _share(checks), ev)

    reasons = []
    for name in ("embedding", "bbsd", "confidence", "class_distribution", "unknown_input", "tokenizer"):
        if name in rejected:
            reasons.append(f"{name} (adjusted p {_fmt(adj(name))})")
    if moved_classes:
        reasons.append(f"classes moved in embedding space: {', '.join(moved_classes[:5])}")
    checks = {"an omnibus test (embedding or BBSD) rejected": bool({"embedding", "bbsd"} & rejected),
              "per-class MMD moved": bool(moved_classes) or not per_class,
              "no format sub-test fired": not fmt_hits}
    return Diagnosis("covariate", _share(checks),
                     {**base, "reasons": reasons, "checks": checks,
                      "per_class_mmd_p_values": per_class})


def _share(checks: Mapping[str, bool]) -> float:
    return sum(checks.values()) / len(checks) if checks else 0.0


def _per_class_mmd(report: DriftReport) -> dict[str, float]:
    emb = report.signal("embedding")
    if emb is None or emb.status != "ok":
        return {}
    out = {}
    for cls, v in (emb.details.get("per_class") or {}).items():
        p = _p(v.get("p_value")) if isinstance(v, Mapping) else None
        if p is not None and v.get("status", "ok") == "ok":
            out[str(cls)] = p
    return out


def _format_reason(name: str, sub: Mapping[str, Any]) -> str:
    words = {"unk_rate": "[UNK] share", "unk_rows": "rows with [UNK]", "truncation_rate": "truncated rows",
             "chars_per_token": "characters per token", "length_cap": "rows at one exact length",
             "replacement_char": "rows with U+FFFD", "non_ascii": "non-ASCII rows",
             "markup": "rows with markup"}
    ref = sub.get("reference", sub.get("reference_mean"))
    cur = sub.get("current", sub.get("current_mean"))
    if ref is None or cur is None:
        return f"{words.get(name, name)} changed (p {_fmt(_p(sub.get('p_value')))})"
    return (f"{words.get(name, name)} {float(ref):.3g} → {float(cur):.3g} "
            f"(p {_fmt(_p(sub.get('p_value')))})")


def _mix_reason(details: Mapping[str, Any]) -> str:
    labels = details.get("labels") or []
    ref, cur = details.get("reference_share") or [], details.get("current_share") or []
    if not labels or len(ref) != len(labels) or len(cur) != len(labels):
        return "predicted class mix moved"
    moves = sorted(zip(labels, ref, cur, strict=True), key=lambda t: -abs(t[2] - t[1]))[:3]
    return "predicted share " + ", ".join(f"{lab} {r:.0%} → {c:.0%}" for lab, r, c in moves)
