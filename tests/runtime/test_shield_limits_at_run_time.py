"""What an operator may not loosen in the shield's settings at run time (`runtime/live/loosening.SHIELD_LIMITS`),
the run having started with the defaults or with a looser `--config`: the rule itself, on the run configuration's
own settings type."""

from __future__ import annotations

from signalwise.runtime.config import ShieldSettings
from signalwise.runtime.live.loosening import shield_refusal


def test_a_walk_cut_short_by_preemption_is_refused_at_run_time_unless_the_run_started_so():
    """MUTCD permits ending a walk for preemption, but a run started with whole walks keeps them: switching it on
    through the API loosened a pedestrian protection unsaid."""
    whole = ShieldSettings()
    said = shield_refusal(whole, ShieldSettings(preempt_ends_walk=True))
    assert said is not None and "preempt_ends_walk" in said and "cuts a pedestrian's walk short" in said
    started_so = ShieldSettings(preempt_ends_walk=True)
    assert shield_refusal(started_so, ShieldSettings(preempt_ends_walk=True)) is None  # kept as it started
    assert shield_refusal(started_so, ShieldSettings()) is None  # tightened


def test_preemption_and_the_confidence_fallback_stay_on():
    assert "preempt" in (shield_refusal(ShieldSettings(), ShieldSettings(preempt=False)) or "")
    assert "confidence_threshold" in (shield_refusal(ShieldSettings(), ShieldSettings(confidence_threshold=0.2)) or "")
    assert shield_refusal(ShieldSettings(), ShieldSettings(confidence_threshold=0.7)) is None


def test_the_preemption_entry_minimum_is_not_cut_below_the_default_at_run_time():
    """A shorter entry minimum ends a green sooner after it began when an emergency vehicle calls: the API may
    lengthen it, not shorten it past the default (5 s) unless the run started so."""
    said = shield_refusal(ShieldSettings(), ShieldSettings(preempt_entry_min_green_s=2.0))
    assert said is not None and "preempt_entry_min_green_s" in said, said
    assert shield_refusal(ShieldSettings(), ShieldSettings(preempt_entry_min_green_s=8.0)) is None  # tightened
    started_so = ShieldSettings(preempt_entry_min_green_s=3.0)
    assert shield_refusal(started_so, ShieldSettings(preempt_entry_min_green_s=3.0)) is None  # kept as it started
