"""Policy: validation with line-numbered errors, and the pure evaluate()."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from monitor.errors import PolicyError
from monitor.policy import (
    History,
    PastDecision,
    SignalObservation,
    Window,
    decision_id,
    evaluate,
    load_policy,
    parse_policy,
)

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def window(i: int, *, emb: bool = False, conf: bool = False, classes: bool = False, n: int = 500,
           conf_delta: float | None = -0.1, model: str = "m", version: str = "v1",
           worse: bool | None = None, **metrics: float | None) -> Window:
    def sig(drifted: bool, p: float) -> SignalObservation:  # raw and corrected flags agree here
        return SignalObservation(drifted=drifted, statistic=0.5 if drifted else 0.01, p_value=p,
                                 corrected=drifted)

    return Window(
        run_id=f"{model}-run{i}", model_name=model, model_version=version, n_current=n,
        drifted=emb or conf or classes,
        signals={"embedding": sig(emb, 0.001 if emb else 0.6),
                 "confidence": sig(conf, 0.001 if conf else 0.5),
                 "class_distribution": sig(classes, 0.001 if classes else 0.7),
                 **({} if worse is None else {"performance": sig(worse, 0.001 if worse else 0.4)})},
        metrics={"confidence_mean_delta": conf_delta, **metrics},
        window_end=NOW - timedelta(minutes=10 * (10 - i)),
        diagnosis="covariate" if emb or conf or classes else "none",
    )


def fired(decisions: list, rule: str) -> list:
    return [d for d in decisions if d.rule == rule and d.outcome == "fired"]


def test_shipped_default_policy_loads() -> None:
    policy = load_policy(None)
    names = [r.name for r in policy.rules]
    assert names == ["drift", "correlated-drift", "rollback-after-promotion", "promotion-unverified"]
    assert policy.rules[0].for_ == 2 and [a.kind for a in policy.rules[0].actions] == ["notify"]
    correlated = policy.rules[1]
    assert correlated.for_ == 2 and correlated.min_samples == 200 and correlated.severity == "critical"
    assert [a.kind for a in correlated.actions] == ["notify", "review", "retrain"]
    assert correlated.cooldown == timedelta(hours=24)
    assert [a.kind for a in policy.rules[2].actions] == ["notify", "rollback"]
    assert [a.kind for a in policy.rules[3].actions] == ["notify"]


def test_embedding_drift_alone_only_notifies() -> None:
    policy = load_policy(None)
    hist = History(windows=[window(1, emb=True), window(2, emb=True)])
    decisions = evaluate(policy, hist, now=NOW)
    assert [d.rule for d in decisions] == ["drift"]
    assert [a.kind for a in decisions[0].actions] == ["notify"]
    assert decisions[0].run_id == "m-run2"


def test_correlated_evidence_needs_two_consecutive_windows() -> None:
    policy = load_policy(None)
    one = evaluate(policy, History(windows=[window(1), window(2, emb=True, conf=True)]), now=NOW)
    assert fired(one, "correlated-drift") == []
    two = evaluate(policy, History(windows=[window(1, emb=True, classes=True),
                                            window(2, emb=True, conf=True)]), now=NOW)
    (d,) = fired(two, "correlated-drift")
    assert [a.kind for a in d.actions] == ["notify", "review", "retrain"]
    assert [w["run_id"] for w in d.evidence["windows"]] == ["m-run1", "m-run2"]
    assert d.decision_id == decision_id("correlated-drift", "m-run2")


def test_confidence_drift_upwards_is_not_a_drop() -> None:
    policy = load_policy(None)
    hist = History(windows=[window(1, emb=True, conf=True, conf_delta=0.05),
                            window(2, emb=True, conf=True, conf_delta=0.05)])
    assert fired(evaluate(policy, hist, now=NOW), "correlated-drift") == []


def test_min_samples_applies_to_every_window() -> None:
    policy = load_policy(None)
    hist = History(windows=[window(1, emb=True, conf=True, n=150), window(2, emb=True, conf=True)])
    assert fired(evaluate(policy, hist, now=NOW), "correlated-drift") == []
    assert fired(evaluate(policy, History(windows=[window(1, emb=True), window(2, emb=True, n=99)]),
                          now=NOW), "drift") == []


def test_cooldown_holds_back_a_second_firing_but_not_the_same_run() -> None:
    policy = load_policy(None)
    hist = [window(0, emb=True), window(1, emb=True)]
    recent = PastDecision("drift", "m", "v1", "m-run0", NOW - timedelta(hours=1))
    (d,) = evaluate(policy, History(hist, fired=[recent]), now=NOW)
    assert d.outcome == "cooldown" and d.evidence["cooldown_run_id"] == "m-run0"
    old = PastDecision("drift", "m", "v1", "m-run0", NOW - timedelta(hours=7))
    assert evaluate(policy, History(hist, fired=[old]), now=NOW)[0].outcome == "fired"
    same = PastDecision("drift", "m", "v1", "m-run1", NOW - timedelta(minutes=1))
    assert evaluate(policy, History(hist, fired=[same]), now=NOW)[0].outcome == "fired"
    other_model = PastDecision("drift", "other", "v1", "x", NOW - timedelta(minutes=1))
    assert evaluate(policy, History(hist, fired=[other_model]), now=NOW)[0].outcome == "fired"


def test_cooldown_is_per_model_version() -> None:
    """A promoted v2 gets its own alerts: v1's recent firing does not hold back v2's."""
    policy = load_policy(None)
    v1_fired = PastDecision("drift", "m", "v1", "m-run0", NOW - timedelta(minutes=5))
    v2 = [window(i, emb=True, version="v2") for i in (0, 1)]
    (d2,) = evaluate(policy, History(v2, fired=[v1_fired]), now=NOW)
    assert d2.outcome == "fired" and d2.model_version == "v2"
    v1 = [window(i, emb=True, version="v1") for i in (0, 1)]
    (d1,) = evaluate(policy, History(v1, fired=[v1_fired]), now=NOW)
    assert d1.outcome == "cooldown"


def test_rollback_after_promotion_asks_the_paired_test_against_the_parent() -> None:
    policy = load_policy(None)
    base = {"hours_since_promotion": 5.0, "n_paired_with_parent": 80.0, "n_labelled_since_promotion": 80.0}
    worse = evaluate(policy, History([window(1, parent_paired_p=0.01, parent_accuracy_delta=-0.1, **base)]),
                     now=NOW)
    assert [d.rule for d in worse] == ["rollback-after-promotion"]
    assert [a.kind for a in worse[0].actions] == ["notify", "rollback"]
    assert worse[0].evidence["metrics"]["parent_paired_p"] == 0.01
    # a large drop against the version's own reference, significant, while the promoted version
    # is no worse than its parent on the same rows: harder traffic, not a bad promotion
    harder = evaluate(policy, History([window(1, realized_macro_f1_drop=0.2, worse=True, parent_paired_p=0.9,
                                              parent_accuracy_delta=0.05, **base)]), now=NOW)
    assert harder == []
    at_alpha = evaluate(policy, History([window(1, parent_paired_p=0.05, **base)]), now=NOW)
    assert [d.rule for d in at_alpha] == ["rollback-after-promotion"]
    above = evaluate(policy, History([window(1, parent_paired_p=0.0501, **base)]), now=NOW)
    assert above == []
    few = evaluate(policy, History([window(1, parent_paired_p=0.001, hours_since_promotion=5.0,
                                           n_paired_with_parent=49.0)]), now=NOW)
    assert few == []
    long_ago = evaluate(policy, History([window(1, parent_paired_p=0.001, n_paired_with_parent=80.0,
                                                hours_since_promotion=500.0)]), now=NOW)
    assert long_ago == []
    unknown = evaluate(policy, History([window(1, parent_paired_p=None, **base)]), now=NOW)
    assert unknown == []


def test_a_drop_after_a_promotion_without_rows_to_pair_only_notifies() -> None:
    policy = load_policy(None)
    base = {"hours_since_promotion": 5.0, "n_labelled_since_promotion": 80.0, "realized_macro_f1_drop": 0.12}
    no_text = evaluate(policy, History([window(1, worse=True, n_paired_with_parent=0.0, **base)]), now=NOW)
    assert [(d.rule, d.severity) for d in no_text] == [("promotion-unverified", "warning")]
    assert [a.kind for a in no_text[0].actions] == ["notify"]
    noise = evaluate(policy, History([window(1, worse=False, n_paired_with_parent=0.0, **base)]), now=NOW)
    assert noise == []
    paired = evaluate(policy, History([window(1, worse=True, n_paired_with_parent=80.0, parent_paired_p=0.6,
                                              **base)]), now=NOW)
    assert paired == []  # the paired test ran: it decides


def test_statistic_p_value_health_and_nested_any() -> None:
    policy = parse_policy("""
rules:
  - name: slow-and-shifted
    when:
      any:
        - {metric: latency_p99_ms, gt: 500}
        - all:
            - {signal: embedding, statistic: {gt: 0.2}}
            - {signal: confidence, p_value: {lt: 0.01}}
    actions: [{kind: command, argv: [echo]}, {notify: {format: slack}}]
""")
    assert evaluate(policy, History([window(1, latency_p99_ms=900.0)]), now=NOW)[0].rule == "slow-and-shifted"
    assert evaluate(policy, History([window(1, latency_p99_ms=100.0)]), now=NOW) == []
    (d,) = evaluate(policy, History([window(1, emb=True, conf=True)]), now=NOW)
    assert d.actions[0].params == {"argv": ["echo"]} and d.actions[1].params == {"format": "slack"}
    assert evaluate(policy, History([window(1, emb=True)]), now=NOW) == []


def test_a_signal_without_an_ok_status_never_satisfies_a_condition() -> None:
    policy = parse_policy("rules:\n  - name: r\n    when: {all: [{signal: embedding, drifted: false}]}\n")
    w = window(1)
    insufficient = Window(w.run_id, "m", "v1", 10, False,
                          signals={"embedding": SignalObservation(False, None, None, "insufficient_data")})
    assert evaluate(policy, History([insufficient]), now=NOW) == []
    assert len(evaluate(policy, History([w]), now=NOW)) == 1


def test_each_model_is_judged_on_its_own_newest_window() -> None:
    policy = load_policy(None)
    hist = History([window(1, emb=True, model="a"), window(1, model="b"), window(2, model="a")])
    assert evaluate(policy, hist, now=NOW) == []
    hist = History([window(1, model="a"), window(1, emb=True, model="b"), window(2, emb=True, model="b")])
    assert [(d.model_name, d.rule) for d in evaluate(policy, hist, now=NOW)] == [("b", "drift")]


def test_shipped_policy_uses_corrected_flags_and_one_window_never_alerts() -> None:
    policy = load_policy(None)
    one = evaluate(policy, History([window(1), window(2, emb=True, conf=True)]), now=NOW)
    assert one == []
    raw_only = replace(window(2, emb=True), signals={
        "embedding": SignalObservation(True, 0.5, 0.004, corrected=False)})
    assert evaluate(policy, History([replace(raw_only, run_id="m-run1"), raw_only]), now=NOW) == []


def test_corrected_and_diagnosis_conditions() -> None:
    policy = parse_policy("""
rules:
  - name: prior
    when:
      all:
        - {signal: class_distribution, corrected: true}
        - {diagnosis: [label_prior, covariate]}
""")
    w = window(1, classes=True)
    (d,) = evaluate(policy, History([w]), now=NOW)
    ev = d.evidence["windows"][0]["when"]["all"]
    assert ev[0]["corrected"] is True and ev[1]["kind"] == "covariate"
    assert evaluate(policy, History([replace(w, diagnosis="input_format")]), now=NOW) == []
    assert evaluate(policy, History([replace(w, diagnosis=None)]), now=NOW) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules:\n  - name: a\n    when:\n      all:\n        - {signal: embeding, drifted: true}\n",
         "p.yaml:5: rules[0].when.all[0].signal: Input should be"),
        ("rules:\n  - name: a\n    when:\n      all:\n        - {signal: confidence, p_value: {lt: x}}\n",
         "p.yaml:5: rules[0].when.all[0].p_value.lt: Input should be a valid number"),
        ("rules:\n  - name: a\n    when: {all: [{metric: latency_p99, gt: 1}]}\n",
         "p.yaml:3: rules[0].when.all[0].metric: Value error, unknown metric 'latency_p99'"),
        ("rules:\n  - name: a\n    when: {any: [{signal: embedding, drifted: true}]}\n    for: 0\n",
         "p.yaml:4: rules[0].for: Input should be greater than or equal to 1"),
        ("rules:\n  - name: a\n    when: {any: [{signal: embedding, drifted: true}]}\n"
         "    cooldown: soon\n", "p.yaml:4: rules[0].cooldown: Value error, expected a duration"),
        ("rules:\n  - name: a\n    when: {any: [{signal: embedding, drifted: true}]}\n"
         "    actions:\n      - page\n", "p.yaml:5: rules[0].actions[0].kind: Input should be"),
        ("rules:\n  - name: a\n    when: {all: [{foo: 1}]}\n",
         "p.yaml:3: rules[0].when.all[0]: a condition is"),
        ("rules:\n  - name: a\n", "p.yaml:2: rules[0].when: Field required"),
        ("rules:\n  - name: a\n    when: {all: [{signal: embedding, drifted: true}]}\n    sevrity: high\n",
         "p.yaml:4: rules[0].sevrity: Extra inputs are not permitted"),
        ("rules:\n  - name: a\n   when: 3\n", "p.yaml:3: invalid YAML"),
        ("- a\n- b\n", "p.yaml:1: expected a mapping"),
    ],
)
def test_errors_name_the_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, origin="p.yaml")
    assert str(info.value).startswith(expected), str(info.value)


def test_duplicate_rule_names_and_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rule = "  - name: a\n    when: {all: [{signal: embedding, drifted: true}]}\n"
    with pytest.raises(PolicyError, match="rule name 'a' is used twice"):
        parse_policy("rules:\n" + rule + rule)
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")


def test_action_parameters_are_validated_at_load_time() -> None:
    from monitor import actions

    text = ("actions:\n  notify: {timeout_s: 2}\nrules:\n  - name: a\n"
            "    when: {all: [{signal: embedding, drifted: true}]}\n"
            "    actions:\n      - notify\n      - {notify: {format: teams}}\n")
    with pytest.raises(PolicyError) as info:
        actions.parse_policy(text, origin="p.yaml")
    assert str(info.value).startswith("p.yaml:8: rules[0].actions[1] (notify) parameter 'format'")
    # the pure policy layer checks the rules only; the action layer adds the parameters' check
    assert parse_policy(text, origin="p.yaml").rules[0].name == "a"
    with pytest.raises(PolicyError, match="parameter 'argv'"):
        actions.parse_policy("rules:\n  - name: a\n    when: {all: [{signal: embedding, drifted: true}]}\n"
                     "    actions: [command]\n")


def test_the_old_metric_name_n_labeled_still_works_and_is_warned_about_once(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.policy as policy_module

    monkeypatch.setattr(policy_module, "_warned", set())
    text = ("rules:\n  - name: a\n    when:\n      all:\n        - {metric: n_labeled, ge: 50}\n"
            "        - {metric: realized_macro_f1_drop, gt: 0.05}\n")
    with caplog.at_level("WARNING", logger="monitor.policy"):
        old, again = parse_policy(text), parse_policy(text)
    warned = [r for r in caplog.records if "n_labeled" in r.getMessage()]
    assert len(warned) == 1 and "deprecated" in warned[0].getMessage()
    assert old == again == parse_policy(text.replace("n_labeled", "n_labelled"))
    assert [d.rule for d in evaluate(old, History([window(1, n_labelled=80.0, realized_macro_f1_drop=0.1)]),
                                     now=NOW)] == ["a"]
    assert evaluate(old, History([window(1, n_labelled=20.0, realized_macro_f1_drop=0.1)]), now=NOW) == []
