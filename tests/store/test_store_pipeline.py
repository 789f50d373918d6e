"""Records given as JSON text are validated in worker processes while this one writes: the stored
rows and roll-ups, the all-or-nothing rule, re-send replacement and error positions are the same as
validating in-process; a batch body is cut into its records exactly, and a body that cannot be cut
(or is cut wrongly) falls back to whole-array validation."""

import json
import random

import pytest
from sqlalchemy import select, text
from test_store_rollups import assert_rollups_match, make
from typer.testing import CliRunner

from signalwise.store import RecordError
from signalwise.store.ingest import ingest_json_array, ingest_json_records
from signalwise.store.pipeline import split_array
from signalwise.store.tables import IntersectionRecordRow as RecordRow


def texts(records: list[dict]) -> list[tuple[int, bytes]]:
    return [(i, json.dumps(r).encode()) for i, r in enumerate(records)]


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(text("count(*)")).select_from(RecordRow.__table__)).scalar()


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.slow
def test_workers_store_what_was_sent_and_resends_replace(engine, workers):
    rng = random.Random(31)
    first = [make(f"S{s}", f"I{i}", m, rng) for s in range(2) for m in range(25) for i in range(3)]
    assert ingest_json_records(engine, texts(first), str, workers=workers, chunk_records=17) == 150
    again = [make("S1", f"I{i}", m, rng, ("west",)) for m in range(20, 30) for i in range(3)]
    assert ingest_json_records(engine, texts(again + again[:5]), str, workers=workers, chunk_records=7) == 35
    assert_rollups_match(engine, first + again)
    assert count(engine) == 150 + 5 * 3


@pytest.mark.parametrize("workers", [0, 1])
def test_an_invalid_record_in_a_later_chunk_writes_nothing_and_is_named(engine, workers):
    rng = random.Random(32)
    records = [make("S", "I", m, rng) for m in range(40)]
    records[33]["signals"][2]["avg_wait_time"] = -1.0
    lines = [(100 + i, t) for i, (_, t) in enumerate(texts(records))]  # positions are e.g. line numbers
    with pytest.raises(RecordError) as err:
        ingest_json_records(engine, lines, lambda n: f"f.jsonl:{n}", workers=workers, chunk_records=5)
    assert err.value.where == "f.jsonl:133" and err.value.field == "signals[2].avg_wait_time"
    assert err.value.errors[0]["loc"] == (133, "signals", 2, "avg_wait_time")
    assert count(engine) == 0


def test_split_array_cuts_exactly_at_the_records():
    items = [{"a": "x,]}{\"", "b": [1, {"c": "\\\\"}]}, {"d": "\\\",["}, [], "s,t", 7]
    body = (" \n[ " + " ,\n".join(json.dumps(i) for i in items) + " ]\n").encode()
    bounds = split_array(body)
    assert [json.loads(body[a:b]) for a, b in bounds] == items
    assert split_array(b"[]") is None and split_array(b'{"a": 1}') is None and split_array(b'["ab') is None


@pytest.mark.slow
def test_large_batch_through_workers_and_errors_as_before(engine):
    rng = random.Random(33)
    records = [make(f"S{s}", f"I{i}", m, rng) for s in range(3) for m in range(30) for i in range(30)]
    assert ingest_json_array(engine, json.dumps(records), max_records=10_000, workers=1) == 2700
    assert_rollups_match(engine, records)
    bad = [make("T", "I", m, rng) for m in range(2500)]
    bad[2201]["metrics"]["throughput"] = "fast"
    with pytest.raises(RecordError) as err:
        ingest_json_array(engine, json.dumps(bad), max_records=10_000, workers=1)
    assert err.value.where == "record 2201" and err.value.errors[0]["loc"] == (2201, "metrics", "throughput")
    assert count(engine) == 2700


def test_a_body_that_cannot_be_cut_is_validated_whole(engine, monkeypatch):
    rng = random.Random(34)
    records = [make("S", "I", m, rng) for m in range(4)]
    body = json.dumps(records)
    # a cut inside the second record: each piece fails alone, the whole-array path stores all four
    from signalwise.store import pipeline

    monkeypatch.setattr(pipeline, "split_array", lambda data: [(1, 40), (41, len(data) - 1)])
    assert ingest_json_array(engine, body, max_records=10) == 4
    assert_rollups_match(engine, records)


def test_cli_ingest_names_file_and_line_and_writes_nothing(db_url, tmp_path):
    from signalwise.cli import app
    from signalwise.store import get_engine

    rng = random.Random(35)
    records = [make("S", "I", m, rng) for m in range(30)]
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in records[:20]) + "\n\n")
    bad = tmp_path / "bad.jsonl"
    lines = [json.dumps(r) for r in records]
    lines[24] = lines[24].replace('"direction": "north"', '"direction": "up"')
    bad.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", str(good), "--db", db_url, "--chunk", "3"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ingest", str(bad), "--db", db_url, "--chunk", "3"])
    assert result.exit_code == 2  # bad input (signalwise.exitcodes)
    assert f"{bad}:25: signals[0].direction" in result.output
    engine = get_engine(db_url)
    assert count(engine) == 20
    assert_rollups_match(engine, records[:20])
