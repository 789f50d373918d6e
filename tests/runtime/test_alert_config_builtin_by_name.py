"""A built-in alert rule adjusted by its name alone: the `--config` file takes it as the API does."""

from signalwise.runtime.live.alerts import BUILTIN_RULES, AlertEngine, engine_from_config, load_alert_config


def test_a_built_in_rule_named_with_only_the_keys_to_change_is_the_same_rule_from_the_file_and_the_api():
    from_file = {r.name: r for r in load_alert_config("alerts:\n  rules:\n    - {name: stale_data, for_s: 2}\n")
                 .all_rules()}
    api = AlertEngine([r for r in BUILTIN_RULES])
    from_api = {r.name: r for r in api.operator_rules([{"name": "stale_data", "for_s": 2}])}
    builtin = next(r for r in BUILTIN_RULES if r.name == "stale_data")
    assert from_file["stale_data"] == from_api["stale_data"] == builtin.model_copy(update={"for_s": 2.0})
    assert from_file == from_api  # every other rule as built in, both ways


def test_a_rule_of_its_own_still_needs_its_metric():
    import pytest

    from signalwise.runtime.live.alerts import AlertConfigError

    with pytest.raises(AlertConfigError, match="rules.0.metric: Field required"):
        load_alert_config({"alerts": {"rules": [{"name": "my_rule", "threshold": 1}]}})


def test_the_webhook_payload_names_the_run_it_was_set_for():
    import http.server
    import json
    import threading

    got = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine, notifier = engine_from_config(load_alert_config(
            {"alerts": {"builtin": False, "webhook_url": f"http://127.0.0.1:{server.server_address[1]}/",
                        "rules": [{"name": "r", "metric": "x", "threshold": 0}]}}))
        notifier.set_origin(simulation_id="20261128-live-corridor-fixed", scenario="corridor")
        engine.evaluate(1.0, {"x": 1.0})
        notifier.close()
    finally:
        server.shutdown()
    assert [(b["rule"], b["state"], b["simulation_id"], b["scenario"]) for b in got] == [
        ("r", "active", "20261128-live-corridor-fixed", "corridor")]
