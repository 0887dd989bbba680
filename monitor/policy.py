"""Policy: a pure function from drift-window evidence and rules to decisions.

A policy is a YAML file (DESIGN §7)::

    version: 1
    actions:                 # defaults per action kind, merged under a rule's own parameters
      notify: {format: slack}
    rules:
      - name: embedding-drift
        when:
          all:
            - {signal: embedding, drifted: true}
            - any:
                - {signal: confidence, drifted: true}
                - {metric: confidence_mean_delta, lt: -0.03}
        min_samples: 200     # every window counted needs at least this many rows
        for: 2               # ... and the condition must hold in this many consecutive windows
        cooldown: 6h         # no second firing for this model version within 6 h of the last
                             # delivered notification of this rule
        severity: warning    # info | warning | critical
        actions: [notify, {review: {n: 60}}, retrain]

Conditions are ``{signal: NAME, drifted: BOOL}``, ``{signal: NAME, corrected: BOOL}``,
``{signal: NAME, statistic: {gt: X}}``, ``{signal: NAME, p_value: {lt: X}}`` (signals of
DESIGN §4), ``{diagnosis: KIND}`` (or a list of kinds) or ``{metric: NAME, lt|le|gt|ge: X}``
on a per-window metric (:data:`METRICS`, the fields of
:class:`monitor.windowmetrics.WindowMetrics`: confidence and performance deltas, realized
performance, time since the version's promotion, operational health; the old name
``n_labeled`` still reads as ``n_labelled``, with a deprecation warning). ``all``/``any`` nest.
``drifted`` is the signal's **raw** flag (its own p-value under its own threshold);
``corrected`` is whether the verdict's weighted-Holm correction rejected it (the family-wise
error rate of the window stays at α however many signals run), which is what the shipped
policy uses. ``diagnosis`` matches the window's diagnosed kind of shift
(``none|covariate|label_prior|out_of_scope|input_format``).
A signal whose status is not ``ok`` or a metric that is unknown for a window never satisfies a
condition: missing evidence does not fire rules, and it does not pass for "no drift" either;
it is shown as ``null`` in the evidence.

:func:`load_policy` validates with pydantic; an error names the file, the line and the field
(``policy.yaml:14: rules[0].when.all[1].p_value.lt: Input should be a valid number``).
:func:`evaluate` reads a :class:`History` (windows of drift runs, oldest first, and the
decisions that fired before) and returns the :class:`Decision` of every rule whose condition
holds at the newest window of each model — fired, or held back by its cooldown.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.drift.names import SIGNALS, Signal
from monitor.errors import PolicyError
from monitor.windowmetrics import DEPRECATED_METRICS, METRICS

__all__ = [
    "ACTION_KINDS",
    "METRICS",
    "SIGNALS",
    "ActionSpec",
    "Comparison",
    "Decision",
    "History",
    "MetricCondition",
    "PastDecision",
    "Policy",
    "Rule",
    "SignalCondition",
    "SignalObservation",
    "Window",
    "decision_id",
    "default_policy_path",
    "evaluate",
    "load_policy",
    "parse_policy",
]

ACTION_KINDS = ("notify", "review", "retrain", "rollback", "command")


log = logging.getLogger(__name__)
_warned: set[str] = set()  # deprecated metric names already warned about in this process

Severity = Literal["info", "warning", "critical"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, None: 1.0}


def _duration(value: Any) -> timedelta:
    """``90``, ``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30m, 6h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError("expected a duration such as 30m, 6h or 1d")
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Comparison(_Model):
    """``lt``/``le``/``gt``/``ge`` bounds; a value passes when it meets all of them."""

    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Comparison:
        if all(v is None for v in (self.lt, self.le, self.gt, self.ge)):
            raise ValueError("give at least one of lt, le, gt, ge")
        return self

    def test(self, value: float | None) -> bool:
        """Whether ``value`` meets every bound (unknown never does)."""
        if value is None:
            return False
        return ((self.lt is None or value < self.lt) and (self.le is None or value <= self.le)
                and (self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge))

    def describe(self) -> str:
        ops = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        return " and ".join(f"{ops[k]} {getattr(self, k):g}" for k in ops if getattr(self, k) is not None)


class SignalCondition(_Model):
    """A condition on one drift signal of a window."""

    signal: Signal
    drifted: bool | None = None
    corrected: bool | None = None
    statistic: Comparison | None = None
    p_value: Comparison | None = None

    @model_validator(mode="after")
    def _something(self) -> SignalCondition:
        if (self.drifted is None and self.corrected is None and self.statistic is None
                and self.p_value is None):
            raise ValueError("a signal condition needs drifted, corrected, statistic or p_value")
        return self

    def describe(self) -> str:
        parts = []
        if self.drifted is not None:
            parts.append(f"drifted (raw) is {str(self.drifted).lower()}")
        if self.corrected is not None:
            parts.append(f"drifted (corrected) is {str(self.corrected).lower()}")
        if self.statistic is not None:
            parts.append(f"statistic {self.statistic.describe()}")
        if self.p_value is not None:
            parts.append(f"p_value {self.p_value.describe()}")
        return f"{self.signal}: " + ", ".join(parts)

    def check(self, window: Window) -> tuple[bool, dict[str, Any]]:
        obs = window.signals.get(self.signal)
        ev: dict[str, Any] = {"condition": self.describe()}
        if obs is None or obs.status != "ok":
            ev.update(status=None if obs is None else obs.status, held=False)
            return False, ev
        ev.update(drifted=obs.drifted, corrected=obs.corrected, statistic=obs.statistic,
                  p_value=obs.p_value)
        held = ((self.drifted is None or obs.drifted == self.drifted)
                and (self.corrected is None or obs.corrected == self.corrected)
                and (self.statistic is None or self.statistic.test(obs.statistic))
                and (self.p_value is None or self.p_value.test(obs.p_value)))
        ev["held"] = held
        return held, ev


DiagnosisKind = Literal["none", "covariate", "label_prior", "out_of_scope", "input_format"]


class DiagnosisCondition(_Model):
    """Holds when the window's diagnosed kind of shift is one of ``diagnosis``."""

    diagnosis: DiagnosisKind | list[DiagnosisKind]

    def _kinds(self) -> list[str]:
        return [self.diagnosis] if isinstance(self.diagnosis, str) else list(self.diagnosis)

    def describe(self) -> str:
        return f"diagnosis in {', '.join(self._kinds())}"

    def check(self, window: Window) -> tuple[bool, dict[str, Any]]:
        kind = window.diagnosis
        held = kind is not None and kind in self._kinds()
        return held, {"condition": self.describe(), "kind": kind, "held": held}


class MetricCondition(_Model):
    """A comparison of one per-window metric (see :data:`METRICS`)."""

    metric: str
    lt: float | None = None
    le: float | None = None
    gt: float | None = None
    ge: float | None = None

    @field_validator("metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value in DEPRECATED_METRICS:
            new = DEPRECATED_METRICS[value]
            if value not in _warned:
                _warned.add(value)
                log.warning("policy metric '%s' is deprecated: write '%s' (read as '%s')", value, new, new)
            return new
        if value not in METRICS:
            raise ValueError(f"unknown metric '{value}'; known: {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _bound(self) -> MetricCondition:
        if all(v is None for v in (self.lt, self.le, self.gt, self.ge)):
            raise ValueError("give at least one of lt, le, gt, ge")
        return self

    def _comparison(self) -> Comparison:
        return Comparison(lt=self.lt, le=self.le, gt=self.gt, ge=self.ge)

    def describe(self) -> str:
        return f"{self.metric} {self._comparison().describe()}"

    def check(self, window: Window) -> tuple[bool, dict[str, Any]]:
        value = window.metrics.get(self.metric)
        held = self._comparison().test(value)
        return held, {"condition": self.describe(), "value": value, "held": held}


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, Mapping):
        if "all" in value or "any" in value:
            return "group-condition"
        if "metric" in value:
            return "metric-condition"
        if "signal" in value:
            return "signal-condition"
        if "diagnosis" in value:
            return "diagnosis-condition"
        return None
    if isinstance(value, DiagnosisCondition):
        return "diagnosis-condition"
    if isinstance(value, Group):
        return "group-condition"
    if isinstance(value, MetricCondition):
        return "metric-condition"
    if isinstance(value, SignalCondition):
        return "signal-condition"
    return None


ConditionItem = Annotated[
    Annotated["Group", Tag("group-condition")]
    | Annotated[MetricCondition, Tag("metric-condition")]
    | Annotated[SignalCondition, Tag("signal-condition")]
    | Annotated[DiagnosisCondition, Tag("diagnosis-condition")],
    Discriminator(_condition_tag, custom_error_type="condition",
                  custom_error_message="a condition is {signal: ...}, {metric: ...}, "
                                       "{diagnosis: ...}, {all: [...]} or {any: [...]}"),
]


class Group(_Model):
    """``all`` (every item holds) or ``any`` (at least one holds) of conditions; they nest."""

    all_: tuple[ConditionItem, ...] | None = Field(None, alias="all", min_length=1)
    any_: tuple[ConditionItem, ...] | None = Field(None, alias="any", min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Group:
        if (self.all_ is None) == (self.any_ is None):
            raise ValueError("give exactly one of 'all' or 'any'")
        return self

    def check(self, window: Window) -> tuple[bool, dict[str, Any]]:
        items = self.all_ if self.all_ is not None else self.any_
        assert items is not None
        results = [item.check(window) for item in items]
        held = all(r[0] for r in results) if self.all_ is not None else any(r[0] for r in results)
        key = "all" if self.all_ is not None else "any"
        return held, {key: [r[1] for r in results], "held": held}


class ActionSpec(_Model):
    """One action of a rule: its kind and its parameters (merged over the policy's defaults)."""

    kind: Literal["notify", "review", "retrain", "rollback", "command"]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # "notify"  |  {notify: {...}}  |  {kind: notify, ...params}
        if isinstance(value, str):
            return {"kind": value}
        if isinstance(value, Mapping) and "kind" not in value and len(value) == 1:
            ((kind, params),) = value.items()
            return {"kind": kind, "params": params if params is not None else {}}
        if isinstance(value, Mapping) and "kind" in value and "params" not in value:
            return {"kind": value["kind"], "params": {k: v for k, v in value.items() if k != "kind"}}
        return value


class Rule(_Model):
    """One rule: when its condition holds long enough on enough rows, decide its actions."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    description: str = ""
    when: Group
    min_samples: int = Field(0, ge=0)
    for_: int = Field(1, alias="for", ge=1, le=100)
    cooldown: Duration = timedelta(0)
    severity: Severity = "warning"
    actions: tuple[ActionSpec, ...] = ()


class Policy(_Model):
    """A validated policy file."""

    version: Literal[1] = 1
    actions: dict[Literal["notify", "review", "retrain", "rollback", "command"], dict[str, Any]] = Field(
        default_factory=dict)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        seen: set[str] = set()
        for rule in rules:
            if rule.name in seen:
                raise ValueError(f"rule name '{rule.name}' is used twice")
            seen.add(rule.name)
        return rules

    def action_params(self, spec: ActionSpec) -> dict[str, Any]:
        """The policy-wide defaults of ``spec.kind`` overridden by the rule's own parameters."""
        return {**self.actions.get(spec.kind, {}), **spec.params}

    @property
    def max_for(self) -> int:
        """The longest ``for`` of any rule: how many windows :func:`evaluate` needs."""
        return max(r.for_ for r in self.rules)


Group.model_rebuild()
Policy.model_rebuild()


# -- loading ---------------------------------------------------------------------------------
def default_policy_path() -> Path:
    """The shipped default policy (``monitor/policies/default.yaml``)."""
    return Path(__file__).resolve().parent / "policies" / "default.yaml"


#: checks one action's merged parameters: ``check(kind, params)`` raises pydantic's
#: ``ValidationError`` when they are bad (:func:`monitor.actions.check_action_params`).
ParamsCheck = Callable[[str, Mapping[str, Any]], None]


def load_policy(path: Path | str | None = None, *, check_params: ParamsCheck | None = None) -> Policy:
    """Read and validate a policy file; ``None`` reads the shipped default.

    ``check_params`` also validates each action's parameters at load time (errors name the
    line). The policy layer knows no action, so the caller passes the check in:
    :func:`monitor.actions.load_policy` (what ``monitor.load_policy`` is) does.
    """
    p = Path(path) if path is not None else default_policy_path()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{p}: cannot read policy: {exc}") from exc
    return parse_policy(text, origin=str(p), check_params=check_params)


def parse_policy(text: str, *, origin: str = "<policy>", check_params: ParamsCheck | None = None) -> Policy:
    """Validate policy YAML text; errors name ``origin``, the line and the field."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"{origin}:{line} invalid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise PolicyError(f"{origin}:1: expected a mapping with a 'rules' list at the top level")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        msgs = []
        errors = exc.errors()
        locs = [tuple(e["loc"]) for e in errors]
        for err in errors:
            loc = tuple(err["loc"])
            if any(len(o) > len(loc) and o[:len(loc)] == loc for o in locs):
                continue  # a container's follow-up error ("too short") after an item failed
            lineno = _line_of(node, loc)
            where = f"{origin}:{lineno}" if lineno else origin
            msgs.append(f"{where}: {_dotted(node, loc) or '(top level)'}: {err['msg']}")
        more = f" (and {len(msgs) - 1} more: {'; '.join(msgs[1:4])})" if len(msgs) > 1 else ""
        raise PolicyError(msgs[0] + more) from exc
    if check_params is not None:
        _check_action_params(policy, node, origin, check_params)
    return policy


def _check_action_params(policy: Policy, node: yaml.Node | None, origin: str, check: ParamsCheck) -> None:
    """Validate each action's merged parameters with ``check`` (the action's own model)."""
    for i, rule in enumerate(policy.rules):
        for j, spec in enumerate(rule.actions):
            try:
                check(spec.kind, policy.action_params(spec))
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ("rules", i, "actions", j)
                field = ".".join(str(p) for p in err["loc"])
                raise PolicyError(f"{origin}:{_line_of(node, loc)}: {_dotted(node, loc)} ({spec.kind}) "
                                  f"parameter '{field}': {err['msg']}") from exc


def _walk(node: yaml.Node | None, loc: tuple[Any, ...]) -> list[tuple[yaml.Node, Any]]:
    """Follow a pydantic error location through the YAML node tree.

    Elements that are not keys of the document (union tags, model names) are skipped.
    Returns the (node, key) pairs visited.
    """
    path: list[tuple[yaml.Node, Any]] = []
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    path.append((key_node, part))
                    node = value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            path.append((node, part))
    if node is not None and not path:
        path.append((node, None))
    return path


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    path = _walk(root, loc)
    return path[-1][0].start_mark.line + 1 if path else None


def _dotted(root: yaml.Node | None, loc: tuple[Any, ...]) -> str:
    """``rules[0].when.all[1].p_value.lt`` from a pydantic location (union tags dropped)."""
    out = ""
    names = _field_names() | {k for _, k in _walk(root, loc) if isinstance(k, str)}
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in names:
            out += f".{part}" if out else str(part)
    return out


def _field_names() -> set[Any]:
    names: set[Any] = set()
    for model in (Policy, Rule, Group, SignalCondition, MetricCondition, Comparison, ActionSpec):
        for name, info in model.model_fields.items():
            names.add(info.alias or name)
    return names


# -- evaluation ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SignalObservation:
    """One signal's result in one window."""

    drifted: bool
    statistic: float | None = None
    p_value: float | None = None
    status: str = "ok"
    corrected: bool | None = None  # rejected by the verdict's correction; None: not tested


@dataclass(frozen=True, slots=True)
class Window:
    """The evidence of one drift run: its signals and per-window metrics."""

    run_id: str
    model_name: str
    model_version: str
    n_current: int
    drifted: bool
    signals: Mapping[str, SignalObservation] = field(default_factory=dict)
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    window_end: datetime | None = None
    diagnosis: str | None = None  # the diagnosed kind (monitor.drift.diagnosis)
    diagnosis_detail: Mapping[str, Any] | None = None  # the full diagnosis object


@dataclass(frozen=True, slots=True)
class PastDecision:
    """A decision that fired before, for cooldowns: ``created_at`` is the time its cooldown
    counts from — the delivery of its notification (or its decision time when it notified
    nobody); the caller supplies only firings that count (a failed send starts no cooldown)."""

    rule: str
    model_name: str
    model_version: str
    run_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class History:
    """What :func:`evaluate` reads: windows of each model, oldest first, and past firings."""

    windows: Sequence[Window]
    fired: Sequence[PastDecision] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """A rule whose condition held at a model's newest window.

    ``outcome`` is ``fired`` (its actions should run) or ``cooldown`` (it fired recently for
    this model version; recorded, no actions).
    """

    decision_id: str
    rule: str
    model_name: str
    model_version: str
    run_id: str
    severity: str
    outcome: Literal["fired", "cooldown"]
    actions: tuple[ActionSpec, ...]
    evidence: dict[str, Any]
    decided_at: datetime

    @property
    def fired(self) -> bool:
        return self.outcome == "fired"


def decision_id(rule: str, run_id: str) -> str:
    """Stable id of a rule's decision on one drift run (re-evaluation reuses it)."""
    return hashlib.sha256(f"{rule}\x00{run_id}".encode()).hexdigest()[:32]


def evaluate(policy: Policy, history: History, *, now: datetime) -> list[Decision]:
    """Decide, for the newest window of each model in ``history``, which rules hold.

    A rule holds when its ``when`` condition is true in each of the newest ``for`` windows of
    the model (consecutive drift runs) and each of them has at least ``min_samples`` rows. A rule
    that fired for the same model *version* within its ``cooldown`` (and not on this same run)
    gives a
    ``cooldown`` decision instead of ``fired``. Pure: no I/O, ``now`` is given.
    """
    by_model: dict[str, list[Window]] = {}
    for w in history.windows:
        by_model.setdefault(w.model_name, []).append(w)
    decisions: list[Decision] = []
    for model_name, windows in by_model.items():
        newest = windows[-1]
        for rule in policy.rules:
            recent = windows[-rule.for_:]
            if len(recent) < rule.for_:
                continue
            per_window = []
            ok = True
            for w in recent:
                held, ev = rule.when.check(w)
                enough = w.n_current >= rule.min_samples
                per_window.append({"run_id": w.run_id, "model_version": w.model_version,
                                   "n_current": w.n_current, "enough_samples": enough,
                                   "window_end": w.window_end.isoformat() if w.window_end else None,
                                   "when": ev})
                ok = ok and held and enough
            if not ok:
                continue
            last = _last_fired(history.fired, rule.name, model_name, newest.model_version,
                               exclude_run=newest.run_id)
            cooling = (last is not None and rule.cooldown > timedelta(0)
                       and now - last.created_at < rule.cooldown)
            evidence = {
                "rule": rule.name, "description": rule.description, "severity": rule.severity,
                "for": rule.for_, "min_samples": rule.min_samples,
                "cooldown_s": rule.cooldown.total_seconds(), "windows": per_window,
                "metrics": dict(newest.metrics),
            }
            if newest.diagnosis_detail is not None:
                evidence["diagnosis"] = dict(newest.diagnosis_detail)
            if cooling and last is not None:
                evidence["cooldown_since"] = last.created_at.isoformat()
                evidence["cooldown_run_id"] = last.run_id
            decisions.append(Decision(
                decision_id=decision_id(rule.name, newest.run_id), rule=rule.name,
                model_name=model_name, model_version=newest.model_version, run_id=newest.run_id,
                severity=rule.severity, outcome="cooldown" if cooling else "fired",
                actions=rule.actions, evidence=evidence, decided_at=now,
            ))
    return decisions


def _last_fired(fired: Sequence[PastDecision], rule: str, model_name: str, model_version: str, *,
                exclude_run: str) -> PastDecision | None:
    hits = [d for d in fired if d.rule == rule and d.model_name == model_name
            and d.model_version == model_version and d.run_id != exclude_run]
    return max(hits, key=lambda d: d.created_at) if hits else None
