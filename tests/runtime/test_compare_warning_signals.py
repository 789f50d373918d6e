"""A comparison's warnings when one run gives the same warning at several signals.

Texts that differ only in the signal they name were merged as texts of different runs are: the run's label
inside the sentence once per signal ("coordinated at signal [coordinated s1: 'A0'; coordinated s1: 'A1'] runs").
"""

from __future__ import annotations

from signalwise.runtime.compare import warning_groups

WHY = ("its splits cannot hold the shield's minimums: phase 1's split 34 s (program green 31 s + change 3 s) "
       "leaves 27 s of green after the shield's 7 s yellow and all-red, below its shortest green 28 s")


def _fallback(signal: str) -> str:  # as control.coordinated.coordination_report words it
    return f"coordinated at signal {signal!r} runs the uncoordinated plan fixed runs: {WHY}"


def test_one_runs_warning_at_several_signals_names_the_signals_together():
    groups = warning_groups({"coordinated:s1": [_fallback(s) for s in ("A0", "A1", "B0", "B1")]})
    assert [g["text"] for g in groups] == [
        f"coordinated s1: coordinated at signals 'A0', 'A1', 'B0', 'B1' runs the uncoordinated plan fixed runs: {WHY}"]
    assert groups[0]["runs"] == ["coordinated:s1"]


def test_runs_warning_at_the_same_signals_read_once_and_at_other_signals_apart():
    said = {"coordinated:s1": [_fallback("A0"), _fallback("A1")],
            "coordinated:s2": [_fallback("A0"), _fallback("A1")],
            "fixed:s1": ["signal 'A0': a note", "signal 'B0': a note", "something else"]}
    texts = [g["text"] for g in warning_groups(said)]
    assert f"coordinated s1, s2: coordinated at signals 'A0', 'A1' runs the uncoordinated plan fixed runs: {WHY}" \
        in texts
    assert "fixed s1: signals 'A0', 'B0': a note" in texts and "fixed s1: something else" in texts
    assert len(texts) == 3 and not any("[" in t for t in texts)


def test_a_warning_at_one_signal_reads_as_given():
    assert [g["text"] for g in warning_groups({"coordinated:s1": [_fallback("A0")]})] == [
        f"coordinated s1: {_fallback('A0')}"]
