"""Signal names are defined once (monitor.drift.names) and every table agrees with them."""

from __future__ import annotations

import importlib

import pytest

from monitor.drift.names import SIGNALS, Signal, signal_names
from monitor.drift.suite import DEFAULT_SIGNALS, DEFAULT_WEIGHTS, METHODS, DriftSuite
from monitor.errors import ConfigError, PolicyError
from monitor.lake.signals import FLEET_SIGNALS
from monitor.policy import parse_policy


def test_the_suite_tables_name_every_signal_and_only_those() -> None:
    assert tuple(s.value for s in Signal) == SIGNALS and all(type(s) is str for s in SIGNALS)
    assert tuple(METHODS) == SIGNALS and DEFAULT_SIGNALS == SIGNALS and tuple(DEFAULT_WEIGHTS) == SIGNALS
    assert set(FLEET_SIGNALS) <= set(SIGNALS)
    assert signal_names(",").split(",") == list(SIGNALS)


@pytest.mark.parametrize("signal", SIGNALS)
def test_each_calculator_reports_the_name_it_is_registered_under(signal: str) -> None:
    for target in METHODS[signal].values():
        module, _, name = target.partition(":")
        assert getattr(importlib.import_module(module), name).signal == signal


def test_policy_and_suite_accept_the_names_and_reject_others() -> None:
    rules = "".join(f"        - {{signal: {s}, drifted: true}}\n" for s in SIGNALS)
    policy = parse_policy(f"rules:\n  - name: a\n    when:\n      any:\n{rules}")
    items = policy.rules[0].when.any_ or ()
    assert [str(c.signal) for c in items] == list(SIGNALS)  # type: ignore[union-attr]
    with pytest.raises(PolicyError, match="signal"):
        parse_policy("rules:\n  - name: a\n    when: {any: [{signal: cbpe, drifted: true}]}\n")
    with pytest.raises(ConfigError, match="unknown drift signal 'cbpe'"):
        DriftSuite(["cbpe"])
