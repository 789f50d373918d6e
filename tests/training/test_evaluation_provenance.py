"""An evaluation kept in a model's meta.json says what made its figures, as the evaluation's own summary.json does
(`provenance`): the software, the command line, and the model's id and digest as it ran. The record changes the
files' digest, never the model's id. The shipped `single` model, copied where it may be written, on a short real
run."""

from __future__ import annotations

from support.models import damaged_copy

from signalwise.provenance import model_digest, model_dir_id, software


def test_an_evaluation_kept_in_meta_json_records_its_provenance(tmp_path):
    import json

    from signalwise.training.evaluate import evaluate

    model = damaged_copy(tmp_path / "model", lambda meta: None)
    digest, identity = model_digest(model), model_dir_id(model)
    result = evaluate(model, n_seeds=1, duration_s=30, workers=1, out=tmp_path / "eval")
    assert result.recorded
    kept = json.loads((model / "meta.json").read_text())["evaluations"][-1]
    made = kept["provenance"]
    assert {k: made[k] for k in software()} == software()
    assert made["command"] and made["cwd"]
    assert made["models"] == {f"ql:{model.resolve()}": [{"path": str(model.resolve()), "model_id": identity,
                                                         "sha256": digest}]}
    # the same record as the evaluation's summary.json, which the record's out_dir names
    assert made == json.loads((tmp_path / "eval" / "summary.json").read_text())["provenance"]
    assert model_digest(model) != digest  # the record itself changed meta.json: the digest is the model as it ran
    assert model_dir_id(model) == identity  # ... and the model is the same one
