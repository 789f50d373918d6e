"""`signalwise live`: run a network in real time, serve the API while it runs, stop cleanly on Ctrl-C or SIGTERM.

It lives with the API because it serves it: the runtime itself never imports the API (the API
reads the runtime through snapshots and routes).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from ..exitcodes import FAILED
from ..listening import ListenError, insecure_no_auth_refusal, listen
from ..outdirs import why_unwritable
from ..runtime.commands import (
    BUILTIN_CHOICES,
    _fail,
    _load_config,
    friendly_errors,
    note_profile_mismatch,
    read_config_file,
    registry_options,
)
from ..termination import SignalFlag, StopOnce, stop_reason


def _speed(text: str) -> float | None:
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise typer.BadParameter(f"--speed takes a positive number or 'max', not {text!r}") from None
    if not value > 0:
        raise typer.BadParameter(f"--speed must be positive, not {text}")
    return value


def _host_port(text: str) -> tuple[str, int]:
    """HOST:PORT ([ADDRESS]:PORT for IPv6). A URL or credentials in it are refused: the client speaks plain
    MQTT to HOST and takes a user name and password from the environment (MQTT_CREDENTIALS_HELP)."""
    host, _, port = text.rpartition(":")
    if text.startswith("["):  # [ADDRESS]:PORT and nothing else
        host = host[1:-1] if host.endswith("]") and "[" not in host[1:] else ""
    if "://" in text or "@" in text:
        _fail(f"--mqtt takes HOST:PORT (e.g. 127.0.0.1:1883), not a URL or credentials: {text!r}; "
              f"{MQTT_CREDENTIALS_HELP}")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and not text.startswith("[")):
        _fail(f"--mqtt takes HOST:PORT (e.g. 127.0.0.1:1883, [::1]:1883), not {text!r}")
    return host, int(port)


def mqtt_client_id(out_dir: Path, scenario_label: str) -> str:
    """The MQTT client id of a live run of this corridor: a digest of its lock file's resolved path (`--out` and
    scenario, `lasting.corridor_lock_file`). A run restarted in the same `--out` resumes its predecessor's
    session; a run of the same network from another `--out` (which the lock lets run beside it) has a session of
    its own instead of taking that one from it."""
    from ..runtime.live.lasting import corridor_lock_file
    from ..runtime.live.mqtt import session_client_id

    return session_client_id(str(corridor_lock_file(out_dir, scenario_label).resolve()))


#: where the broker's user name and password come from (not the command line, which `ps` shows to every user)
MQTT_CREDENTIALS_HELP = ("a broker that wants a user name and password gets them from SIGNALWISE_MQTT_USERNAME and "
                         "SIGNALWISE_MQTT_PASSWORD")


def _mqtt_credentials() -> tuple[str | None, str | None]:
    import os

    user, password = os.environ.get("SIGNALWISE_MQTT_USERNAME") or None, os.environ.get("SIGNALWISE_MQTT_PASSWORD")
    if password and user is None:
        _fail("SIGNALWISE_MQTT_PASSWORD is set without SIGNALWISE_MQTT_USERNAME: MQTT sends a password only with "
              "a user name")
    return user, password or None


#: the environment variables a TLS broker's files can come from (an option on the command line wins)
MQTT_TLS_ENVIRONMENT = {"ca_file": "SIGNALWISE_MQTT_CA_FILE", "cert_file": "SIGNALWISE_MQTT_CERT_FILE",
                        "key_file": "SIGNALWISE_MQTT_KEY_FILE"}
#: the password of an encrypted client key: the environment only, as the broker's password
MQTT_KEY_PASSWORD_ENV = "SIGNALWISE_MQTT_KEY_PASSWORD"
MQTT_TLS_OPTIONS = {"ca_file": "--mqtt-ca-file", "cert_file": "--mqtt-cert-file", "key_file": "--mqtt-key-file"}


def _mqtt_tls(mqtt: str | None, tls: bool, files: dict[str, Path | None]):
    """The broker's TLS context, or None for plain MQTT; one error line (exit 2) for files that cannot be used.

    Each file comes from its option, else from its environment variable; a CA file or client certificate means
    TLS without --mqtt-tls. Options given without --mqtt are refused (they would do nothing); the environment is
    read only with --mqtt, as the broker's user name and password are."""
    import os

    given = [MQTT_TLS_OPTIONS[k] for k, v in files.items() if v is not None] + (["--mqtt-tls"] if tls else [])
    if mqtt is None:
        if given:
            _fail(f"{', '.join(given)}: TLS to an MQTT broker needs the broker: give --mqtt HOST:PORT too")
        return None
    paths, labels = {}, {"key_password": MQTT_KEY_PASSWORD_ENV}
    for key, value in files.items():
        env = os.environ.get(MQTT_TLS_ENVIRONMENT[key]) or None
        paths[key] = value if value is not None else env
        labels[key] = (MQTT_TLS_OPTIONS[key] if value is not None else MQTT_TLS_ENVIRONMENT[key] if env is not None
                       else f"{MQTT_TLS_OPTIONS[key]} or {MQTT_TLS_ENVIRONMENT[key]}")  # as it came, or both ways
    key_password = os.environ.get(MQTT_KEY_PASSWORD_ENV) or None
    if key_password is not None and paths["cert_file"] is None:
        _fail(f"{MQTT_KEY_PASSWORD_ENV} is set without a client certificate (--mqtt-cert-file or "
              f"{MQTT_TLS_ENVIRONMENT['cert_file']}): it is the password of that certificate's key")
    if not tls and all(v is None for v in paths.values()):
        return None
    from ..runtime.live.mqtt import TlsSetupError, tls_context

    try:
        return tls_context(paths["ca_file"], paths["cert_file"], paths["key_file"], key_password, labels=labels)
    except TlsSetupError as exc:
        _fail(str(exc))


def _check_options(duration: float | None, state_every: float, field: str, mqtt: str | None) -> None:
    """Options that cannot run, refused with one line (exit 2) before anything starts."""
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        _fail(f"--duration must be a positive number of simulated seconds, not {duration:g} "
              f"(leave it out to run until Ctrl-C)")
    if not (math.isfinite(state_every) and state_every > 0):
        _fail(f"--state-every must be a positive number of simulated seconds, not {state_every:g}")
    if mqtt is not None and field == "sumo":
        # the loop reads SUMO's own detectors and logs their events: a feed beside them would drive nothing,
        # its silence would cause no fallback, and its events would double the same channels in events.csv
        _fail("--mqtt needs --field none: with --field sumo the loop observes SUMO's own detectors and logs "
              "their events, so a detector feed would drive nothing and count the same channels twice in "
              "events.csv")


def _listen(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before the run starts: a port in use refuses the run (exit 1)."""
    try:
        return listen(host, port)
    except ListenError as exc:
        _fail(str(exc), code=FAILED)


def live_command(
    scenario: Annotated[str | None, typer.Option("--scenario", "-s", help="single | corridor | grid | grid10x10 | resco:NAME [default: single, or the --config file's]", show_default=False)] = None,
    controller: Annotated[str | None, typer.Option("--controller", "-c", show_default=False, help=f"{' | '.join(BUILTIN_CHOICES)} | ql (the model shipped for a built-in scenario) | ql:PATH | ql:@active | an installed plugin | py:MODULE:FACTORY | py:FILE.py:FACTORY (docs/controllers.md; the API switches to a plugin by name, to py: only back to this one) [default: max-pressure, or the --config file's]")] = None,
    speed: Annotated[str, typer.Option(help="simulated seconds per wall second: 1 = real time, 10 = ten times faster, max = unpaced")] = "1",
    duration: Annotated[float | None, typer.Option(help="simulated seconds to run (default: until Ctrl-C)")] = None,
    seed: Annotated[int | None, typer.Option(show_default=False, help="random seed of the simulation [default: 1, or the --config file's]")] = None,
    sumocfg: Annotated[Path | None, typer.Option(help="your own SUMO config (.sumocfg)")] = None,
    net: Annotated[Path | None, typer.Option(help="your own network (.net.xml); with --routes")] = None,
    routes: Annotated[list[Path] | None, typer.Option(help="route files for --net (repeatable)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file of run settings (timing, shield, alerts)")] = None,
    out: Annotated[Path | None, typer.Option(show_default=False, help="parent directory of the live run's directory [default: runs, or the --config file's out_dir]")] = None,
    sink: Annotated[str | None, typer.Option(show_default=False, help="sumo: actuate the simulation | shadow: decide and record, actuate nothing [default: sumo; shadow with --field none]")] = None,
    field: Annotated[str, typer.Option(help="sumo: SUMO in a supervised worker process | none: no simulator: signals and lanes from the network file, observations from detector feeds only (HTTP or --mqtt), --sink shadow")] = "sumo",
    repeat_demand: Annotated[bool, typer.Option(help="repeat the scenario's demand so a long run keeps traffic")] = False,
    state_every: Annotated[float, typer.Option(help="simulated seconds between saved simulator states (crash recovery)")] = 30.0,
    mqtt: Annotated[str | None, typer.Option(help="subscribe to detector feeds on this MQTT broker, HOST:PORT (MQTT 5; TLS with --mqtt-tls; " + MQTT_CREDENTIALS_HELP + ")")] = None,
    mqtt_tls: Annotated[bool, typer.Option("--mqtt-tls", help="connect to the --mqtt broker over TLS, its certificate verified against the system's CA store (or --mqtt-ca-file)")] = False,
    mqtt_ca_file: Annotated[Path | None, typer.Option("--mqtt-ca-file", show_default=False, help="verify the --mqtt broker's certificate against this CA file (PEM) instead of the system's; means --mqtt-tls [env: SIGNALWISE_MQTT_CA_FILE]")] = None,
    mqtt_cert_file: Annotated[Path | None, typer.Option("--mqtt-cert-file", show_default=False, help="client certificate (PEM) for a --mqtt broker that asks for one; means --mqtt-tls [env: SIGNALWISE_MQTT_CERT_FILE]")] = None,
    mqtt_preempt: Annotated[bool, typer.Option("--mqtt-preempt", help="also take preemption calls on the --mqtt broker's <prefix>/<signal>/preempt topics (off by default: whoever may publish there can preempt; restrict publishing to them to your dispatch system's broker user, docs/live-feeds.md)")] = False,
    mqtt_key_file: Annotated[Path | None, typer.Option("--mqtt-key-file", show_default=False, help="its private key (PEM), if not in the certificate's file; an encrypted key's password from SIGNALWISE_MQTT_KEY_PASSWORD [env: SIGNALWISE_MQTT_KEY_FILE]")] = None,
    camera: Annotated[list[str] | None, typer.Option("--camera", show_default=False, help="VIDEO=CAMERA.yaml: stream a camera (a file, rtsp:// or http(s):// URL) into the run, its camera file as for `vision run`; repeatable. With --field none its zones are detectors of its device_id; with --field sumo it records crossings and speeding. A stream URL is opened once the run runs (a camera away then is reconnected to)")] = None,
    accept_suspect_calibration: Annotated[bool, typer.Option("--accept-suspect-calibration", help="run a --camera whose calibration `vision run`'s checks say is wrong (surveyed points off by over 0.5 m RMS, a zone under 2.75 px per road metre); refused otherwise. Its violations are stored marked (judged_with.calibration_suspect: the checks' reasons)")] = False,
    host: Annotated[str, typer.Option(help="interface the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port of the API", min=0, max=65535)] = 8000,
    db: Annotated[str | None, typer.Option(help="also write events, alerts and changes into this database URL ('default' = SIGNALWISE_DATABASE_URL, else the embedded SQLite file sqlite:///signalwise.db in the working directory)")] = None,
    insecure_no_auth: Annotated[bool, typer.Option("--insecure-no-auth", help="open every route, changes included, without a key (prints a warning); refused unless --host is a loopback address: never on a network")] = False,
) -> None:
    """Run a network live (a built-in scenario, resco:NAME or your own): paced loop, supervised SUMO, detector
    feeds, the API and its live routes."""
    with StopOnce() as signals:  # `docker stop`, systemd and Kubernetes stop it as Ctrl-C does; once
        _live(scenario, controller, speed, duration, seed, sumocfg, net, routes, config, out, sink, field,
              repeat_demand, state_every, mqtt, host, port, db, insecure_no_auth, signals, camera or [],
              mqtt_tls=(mqtt_tls, {"ca_file": mqtt_ca_file, "cert_file": mqtt_cert_file,
                                   "key_file": mqtt_key_file}),
              accept_suspect_calibration=accept_suspect_calibration, mqtt_preempt=mqtt_preempt)


def _camera_streams(values: list[str], accept_suspect: bool = False) -> list:
    """`--camera VIDEO=CAMERA.yaml` options, each checked as `vision run` checks its --video and --camera (the
    camera file, the video opened and its first frame decoded, zones inside that frame, and the calibration's
    checks before a run: a suspect one only with `accept_suspect`, its violations stored marked): one error
    line and exit 2 otherwise, before anything starts. Their device_id is checked against the run's signals
    when it opens.

    A stream URL is not opened here, as `POST /api/v1/streams` does not open one: a camera that is away when
    the run (re)starts must not keep the corridor from running; it is reconnected to when it comes, and its zones
    are checked against its first frame (a zone outside it fails that stream, by name)."""
    if not values:
        return []
    try:
        import cv2  # noqa: F401
    except ImportError:
        _fail("--camera needs OpenCV on this machine: pip install 'signalwise[vision]'")
    from ..vision.manager import StreamSpec, camera_identity, suspect_calibration, suspect_refusal
    from ..vision.streams import is_url, shown
    from ..vision.video_run import InputError, check_camera_file, check_inputs

    specs: list = []
    for value in values:
        video, sep, camera_file = value.rpartition("=")
        if not sep or not video or not camera_file:
            _fail(f"--camera takes VIDEO=CAMERA.yaml (a video file or stream URL, and its camera file), not "
                  f"{shown(value)!r}")
        try:
            if is_url(video):
                cam, fps = check_camera_file(camera_file), None
            else:
                inputs = check_inputs(video, camera_file)
                cam, fps = inputs.camera, inputs.fps
        except InputError as exc:
            _fail(f"--camera {shown(video)}={camera_file}: {exc}")
        suspect = suspect_calibration(cam)
        if suspect and not accept_suspect:
            _fail(f"--camera {shown(video)}={camera_file}: "
                  f"{suspect_refusal(suspect, '--accept-suspect-calibration')}")
        if any(s.camera.camera_id == cam.camera_id for s in specs):
            _fail(f"--camera {camera_file}: camera_id {cam.camera_id!r} is given twice; give each camera its own")
        specs.append(StreamSpec(cam.camera_id, video, cam, fps=fps, accept_suspect_calibration=accept_suspect,
                                camera_file=camera_identity(path=camera_file)))
    return specs


def _start_streams(app, streams: list) -> str | None:
    """The `--camera` streams, added to the API's camera streams (listed at /api/v1/streams, their violations
    stored, their alerts the run's) and started; the first problem, or None."""
    from types import SimpleNamespace

    from .routers.cameras import manager

    mgr = manager(SimpleNamespace(app=app))  # the API's own manager, wired to this run as a POST would make it
    for spec in streams:
        try:
            mgr.add(spec)
        except Exception as exc:  # noqa: BLE001 - StreamError and the like: said in one line
            return f"camera {spec.camera.camera_id}: {exc}"
    return None


def _replayed_lines(runtime) -> list[str]:
    """What an earlier runtime of this corridor changed and this one applied again at start (they outlive a run,
    by design), and what it did not apply: said at start, since they can differ from the command line."""
    from ..runtime.live.lasting import replay_lines

    return replay_lines(runtime)


def _starting_config(cfg, given: str | None, load):
    """The run configuration to start with: with the controller an earlier run of the corridor switched every
    signal to (its lasting changes, applied again at start) unless the command line named one (`given`), so
    the run is named, announced and recorded for the controller that runs from its first tick. `load(spec)`:
    the configuration with that controller, as the command loads its own. One that cannot be loaded (a
    registry that fails now) leaves the command's: the replay then refuses the stored switch and says why."""
    from ..runtime.live.lasting import site_changes_file, stored_controller

    if given is not None:
        return cfg
    stored = stored_controller(site_changes_file(cfg.out_dir, cfg.scenario_label))
    spec = stored["payload"]["controller"] if stored is not None else None
    if spec is None or spec == cfg.controller:
        return cfg
    try:
        return load(spec)
    except Exception:  # noqa: BLE001 - a registry or model that fails now: the replay refuses it, with the reason
        return cfg


@friendly_errors
def _live(scenario, controller, speed, duration, seed, sumocfg, net, routes, config, out, sink, field,
          repeat_demand, state_every, mqtt, host, port, db, insecure_no_auth, signals: StopOnce,
          cameras: list[str], mqtt_tls: tuple[bool, dict] = (False, {}),
          accept_suspect_calibration: bool = False, mqtt_preempt: bool = False) -> None:
    from rich.console import Console

    from ..control.base import ControllerUnavailable
    from ..runtime.live.runtime import LiveOptions, LiveRuntime
    from ..runtime.run import controller_slug, slug

    if sink not in (None, "sumo", "shadow"):
        _fail(f"--sink must be sumo or shadow, not {sink!r}")
    if field not in ("sumo", "none"):
        _fail(f"--field must be sumo or none, not {field!r}")
    if field == "none" and sink == "sumo":
        _fail("--sink sumo needs a simulator to actuate: --field none runs with --sink shadow (the default there)")
    sink = sink or ("shadow" if field == "none" else "sumo")
    _check_options(duration, state_every, field, mqtt)
    refusal = insecure_no_auth_refusal(host) if insecure_no_auth else None
    if refusal is not None:  # its help says "never on a network": a street system's changes open to the LAN
        _fail(refusal)
    if mqtt_preempt and mqtt is None:
        _fail("--mqtt-preempt takes preemption calls from an MQTT broker: give --mqtt HOST:PORT too")
    mqtt_at = _host_port(mqtt) if mqtt is not None else None
    mqtt_user, mqtt_password = _mqtt_credentials() if mqtt is not None else (None, None)
    mqtt_tls_context = _mqtt_tls(mqtt, mqtt_tls[0], {k: mqtt_tls[1].get(k) for k in MQTT_TLS_OPTIONS})
    streams = _camera_streams(cameras, accept_suspect_calibration)
    why_not_out = why_unwritable(out) if out is not None else None
    if why_not_out is not None:  # said now, naming the option, not as a bare errno once the run starts
        _fail(f"--out {out}: {why_not_out}")
    from ..store.cli_engine import settings_or_exit
    from ..store.redis_check import missing_package, outage_warning
    from ..store.settings import unknown_variables_warning

    # a bad SIGNALWISE_* variable is named as `signalwise serve` names it, before anything starts
    redis_url = settings_or_exit().redis_url
    problem = missing_package(redis_url)  # as `signalwise serve`: a URL without its client is a configuration error
    if problem is not None:
        _fail(problem, code=FAILED)
    for line in (unknown_variables_warning(os.environ), outage_warning(redis_url)):
        if line is not None:  # a Redis that does not answer is an outage: signal control starts without it
            typer.secho(f"warning: {line}", fg="yellow", err=True)
    raw_alerts = None
    if config is not None:  # read as every command reads --config: a file it cannot read is one error line
        data = read_config_file(config)
        if "alerts" in data:
            raw_alerts = data.pop("alerts")
            config = _without_alerts(config, data, out)
    registry_db = _db_url(db) if db is not None else None  # the API's database holds the model registry
    if registry_db is not None:  # a URL that names no database is said now, not after the run
        from ..store.engine import DatabaseURLError, database_url, parsed_url

        try:
            parsed_url(database_url(registry_db))
        except DatabaseURLError as exc:
            _fail(f"--db: {exc}")
        missing = _missing_database(registry_db)
        if missing is not None:  # a typo, not an outage: refused before the run starts
            _fail(f"--db: {missing}")
    def load(spec):
        return _load_config(config, registry_db, scenario=scenario, controller=spec, seed=seed, sumocfg=sumocfg,
                            net=net, routes=routes or None, out_dir=out)

    command_cfg = load(controller)
    cfg = _starting_config(command_cfg, controller, load)
    opts = LiveOptions(speed=_speed(speed), duration_s=duration, repeat_demand=repeat_demand, field=field,
                       sink=sink, state_every_s=state_every)
    console = Console(stderr=True)
    listener = _listen(host, port)  # before the run starts: a port in use is refused, not a run without its API
    alerts, notifier = _alert_engine(raw_alerts)  # an acknowledgement is stored and streamed by the runtime
    feed_client = server = thread = None
    closed = []

    def shut_down() -> None:
        """The API, the feed, the alert notifier and the store, after the loop has ended (once). A Ctrl-C or
        SIGTERM now (`signals`: a user pressing it again) ends the wait for the pages' last look, and nothing
        else: the store still gets its last rows, and the command ends as the first stop said."""
        if closed:
            return
        closed.append(True)
        if server is not None:
            _end_streams(server.config.app, runtime, signals.hurry)
            server.should_exit = True
            thread.join(timeout=5)
        listener.close()
        if feed_client is not None:
            feed_client.stop()
        if notifier is not None:
            notifier.close()
        if store is not None:
            store.close()

    def end_before_the_loop(why: str) -> None:
        """The run ends before its loop's first tick (`why` in run.json's `reason`): the loop ends at once,
        closing the simulator, writing run.json and letting the corridor's lock go."""
        runtime.stopped_by = why
        runtime.stop()
        runtime.run()

    started = False  # the runtime is open (its lock taken): what the handlers below end and close
    # From here until the loop runs, a Ctrl-C or SIGTERM is kept, not raised (`StopOnce.deferred`): raised on
    # whatever line it landed on, it left the corridor's lock and a run.json saying `running` (the next run then
    # reported a death), or removed a half-made run directory and exited 130. Kept, it stops the run as soon as
    # it has started, as a stop after the banner does: run.json `stopped` with the reason, the lock removed. One
    # block, inside the `try` whose handlers end the run: no line between the start-up and them raises a stop.
    try:
        with signals.deferred():
            while True:
                note_profile_mismatch(cfg, [cfg.controller])
                run_dir = (cfg.out_dir
                           / f"{dt.datetime.now():%Y%m%d-%H%M%S}-live-{slug(cfg.scenario_label)}-{controller_slug(cfg.controller)}")
                store = _store(db, run_dir)
                runtime = LiveRuntime(cfg, opts, run_dir, store=store, alerts=alerts,
                                      resolve_options=lambda specs: registry_options(specs, registry_db),
                                      camera_configs=[spec.camera for spec in streams], command_controller=controller)
                # from the loop's end to the last line, a Ctrl-C only hurries
                signals.ended = lambda rt=runtime: rt.loop_over
                try:
                    runtime.open()
                    break
                except ControllerUnavailable:
                    if cfg is command_cfg:
                        listener.close()
                        raise
                    # the stored controller cannot run here any more (its model gone): nothing of that attempt is
                    # left; the command's controller runs, and the replay refuses the stored switch, saying why
                    if store is not None:
                        store.close()
                    cfg = command_cfg
                except BaseException as exc:
                    listener.close()
                    from ..vision.camera import CameraFileError

                    if isinstance(exc, CameraFileError):  # a camera that is no input of this run: nothing of it is left
                        _fail(f"--camera: {exc}")
                    raise
            started = True
            api_port = listener.getsockname()[1]
            if mqtt_at is not None:
                from ..runtime.live.mqtt import MqttFeed

                feed_client = MqttFeed(runtime.feed, *mqtt_at, username=mqtt_user,  # --field none: the runtime's feed
                                       password=mqtt_password, tls=mqtt_tls_context,
                                       prefix=runtime.cfg.mqtt_topic_prefix,
                                       client_id=mqtt_client_id(run_dir.parent, runtime.cfg.scenario_label),
                                       # and, opted in, preemption calls on <prefix>/<signal>/preempt
                                       preempt=runtime.preempt if mqtt_preempt else None)
                feed_client.start()
            if insecure_no_auth:
                console.print("[bold red]warning:[/bold red] --insecure-no-auth: every route is open, changes included")
            server, thread = _serve(runtime, host, port, db, insecure_no_auth, sock=listener)
            if not _started(server, thread, stop=lambda: signals.requested is not None) \
                    and signals.requested is None:
                # the socket was bound, so this is rare (the app failed to start): the run is not left going without it
                try:
                    end_before_the_loop("the API did not start")
                finally:
                    shut_down()
                _fail(f"the API did not start on http://{host}:{api_port}; the run was stopped (its directory: "
                      f"{run_dir})", code=FAILED)
            if streams and signals.requested is None:
                problem = _start_streams(server.config.app, streams)
                if problem is not None:
                    try:
                        end_before_the_loop(problem)
                    finally:
                        shut_down()
                    _fail(f"--camera: {problem}; the run was stopped (its directory: {run_dir})", code=FAILED)
            if signals.requested is None:
                _say_it_runs(console, runtime, server, cfg, speed, host, api_port, run_dir, db)
        if signals.requested is not None:  # a stop while it started: it ends now, its directory complete
            console.print(f"{stop_reason(signals.requested)} while the run was starting: stopping; evidence "
                          "flushed, run directory complete", soft_wrap=True)
            end_before_the_loop(stop_reason(signals.requested))
        else:
            runtime.run()
    except KeyboardInterrupt as exc:
        if not started:  # raised by the start-up's own code (a Ctrl-C is kept there): it closed what it opened
            raise
        if not runtime.loop_over:  # it came between the start-up and the loop's first line: the loop ends at once
            end_before_the_loop(stop_reason(exc))
        runtime.status_text = "stopped"
        console.print(f"{stop_reason(exc)}: stopping; evidence flushed, run directory complete")
    finally:  # a loop that failed otherwise still closes the API and the store, and its error is the last word
        if started:  # a start-up that failed closed what it had opened itself
            shut_down()
    waiting = _say_how_it_ended(console, runtime, store, run_dir)
    if waiting:  # exitcodes: the run ran, but its records did not all reach the database (as `run --db`)
        raise typer.Exit(FAILED)


def _say_it_runs(console, runtime, server, cfg, speed: str, host: str, api_port: int, run_dir: Path,
                 db: str | None) -> None:
    """The banner (one line in a log file), where the API checks keys, the lasting changes applied again at
    start, and the alert rules that can never raise in this run."""
    from rich.text import Text

    from ..store.key_commands import key_store_lines

    console.print(f"live: {cfg.controller} on {cfg.scenario_label} at speed {speed}; "
                  f"API on http://{host}:{api_port} (dashboard: http://{host}:{api_port}/, status: /api/v1/live/status, "
                  "docs: /docs); "
                  f"evidence in {run_dir}; Ctrl-C (or SIGTERM) stops", soft_wrap=True)  # one line in a log file
    for line, warning in key_store_lines(server.config.app.state.settings, db):  # where the API checks keys
        console.print(Text(line, style="yellow" if warning else ""), soft_wrap=True)
    for line in _replayed_lines(runtime):
        console.print(line, soft_wrap=True)
    for line in _rules_that_cannot_raise(runtime):
        console.print(Text(line, style="yellow"), soft_wrap=True)


def _say_how_it_ended(console, runtime, store, run_dir: Path) -> int:
    """How the run ended, on stderr with the rest of what the command says, then its result on stdout, alone, as
    `signalwise run` prints it: `run directory: PATH` (a supervisor capturing stdout finds it there). Returns the
    number of rows still waiting for the database."""
    from rich.markup import escape

    status = runtime.status()
    waiting = (status.get("store") or {}).get("waiting_rows") or 0
    note = f"; {store.waiting_message()}" if waiting and store is not None else ""
    console.print(f"live run {status['status']} at t={status['sim_time_s']:.0f} s; restarts: {status['restarts']}"
                  f"{note}", soft_wrap=True)  # unbroken: paths and a command to copy
    moved = store.stored_as_note() if store is not None and hasattr(store, "stored_as_note") else None
    if moved:  # as `publish` says a run stored under another id than its name
        console.print(f"note: {moved}", soft_wrap=True)
    # a run ending during a preemption leaves its 102 without a 104 (run.json's preemptions_in_force too)
    for warning in [*_fault_warnings(runtime), *runtime.preemptions_in_force()]:
        # as `signalwise run` says it under its table: one line a warning, however narrow the stream
        console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}", soft_wrap=True)
    typer.echo(f"run directory: {run_dir}")
    return waiting


def _fault_warnings(runtime) -> list[str]:
    """A batch run's warnings when the controllers' errors or invalid proposals took more than a small share of
    the decisions (`ControllerFaults.warnings`): an operator who ran a faulty plugin live reads it at the end too,
    not only in the alerts and logs while it went. None for a run that never made its loop."""
    return runtime.stepper.controller_faults.warnings() if runtime.stepper is not None else []


#: at most, how long the end of a run waits for its streams to send what they hold and their close
STREAMS_END_WAIT_S = 2.0
#: then, when streams were told, at most how long the API stays up for their pages' last look at the run
LAST_LOOK_MAX_S = 3.0
#: and after as many status reads as pages told, how long it stays up to answer the rest of that look
LAST_LOOK_GRACE_S = 0.3


def _end_streams(app, runtime, hurry: SignalFlag) -> None:
    """Tell every stream why it ends before the API stops: uvicorn's shutdown closes a WebSocket with 1012 and
    no reason, sooner than the hub, which notices the end of the run within two of its periods, sends 1001.

    The API waits until every stream told has sent its close (WS) or last event (SSE), STREAMS_END_WAIT_S at
    most, even in a hurry: a close that was only scheduled when uvicorn stopped went out as 1012, so a page
    took the end of the run for a restart. A dashboard answers the close with one last status read (and a
    snapshot read beside it); the API then waits for one status read answered after the end per WebSocket
    told (now, or by the hub while the run was finishing), not a fixed time: on a loaded machine a page's read
    can come later than a second, and a script that reads nothing more costs LAST_LOOK_MAX_S at most. `hurry`
    set (a second Ctrl-C) ends that wait for the pages' look."""
    hub = app.state.streams
    told_now = hub.clients
    hub.end_all(f"the live run ended ({runtime.status_text})")
    deadline = time.monotonic() + STREAMS_END_WAIT_S
    while not all(client.finished for client in told_now) and time.monotonic() < deadline:
        time.sleep(0.02)
    pages = {c for c in (*hub.ended_clients, *told_now) if c.kind == "ws"}  # SSE clients are not the dashboard
    if not pages:
        return
    looks = app.state.live_last_looks
    deadline = time.monotonic() + LAST_LOOK_MAX_S
    while looks.value < len(pages) and time.monotonic() < deadline:
        if hurry.wait(0.02):
            return
    hurry.wait(LAST_LOOK_GRACE_S)


def _without_alerts(config: Path, data: dict, out: Path) -> Path:
    """The run configuration without its `alerts` section (the alert engine reads that part)."""
    import tempfile

    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="signalwise-live-")) / config.name
    tmp.write_text(yaml.safe_dump(data))
    return tmp


def _rules_that_cannot_raise(runtime) -> list[str]:
    """A warning for each alert rule in force whose metric this run never reports (a misspelt metric in the
    `--config` file's `alerts:`, a signal it does not have): such a rule waits silently for the whole run. The
    API refuses such a rule; a file read at start is warned about, as its other rules still hold."""
    from ..runtime.live.alerts import metric_problem

    if runtime.alerts is None:
        return []
    reported = runtime.reported_figures()
    return [f"warning: alert rule {rule.name}: {why}: it can never raise in this run"
            for rule in runtime.alerts.rules if (why := metric_problem(rule.metric, reported))]


def _alert_engine(raw):
    """The built-in alert rules plus the configuration's `alerts:` section (and its webhook)."""
    from ..runtime.live.alerts import engine_from_config, load_alert_config

    return engine_from_config(load_alert_config({"alerts": raw} if raw is not None else None))


def _store(db: str | None, run_dir: Path):
    if db is None:
        return None
    try:
        from ..store.live import LiveStoreWriter
    except ImportError:
        return None
    from ..runtime.records import directory_simulation_id

    # a name the store holds for records sent over the API (an ingest key can name a live run's time stamp before
    # it starts) is not the run's: it is stored under the id `publish` gives a directory whose name is taken
    return LiveStoreWriter(_db_url(db), run_dir.name, run_dir / "store-buffer", 1_000_000,
                           alternate_id=directory_simulation_id(run_dir))


def _started(server, thread: threading.Thread, timeout_s: float = 60.0, stop=lambda: False) -> bool:
    """Wait until uvicorn serves (True) or its thread has ended without serving (False), or until `stop()` says
    the run is being stopped (then whether it serves yet)."""
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline or stop():
            return bool(server.started)
        time.sleep(0.02)
    return True


def _serve(runtime, host: str, port: int, db: str | None, insecure_no_auth: bool = False,
           sock: socket.socket | None = None):
    """The HTTP API in a background thread, with the live routes attached to this runtime (on `sock`, already
    bound, when given)."""
    import uvicorn

    from ..store import Settings
    from . import create_app
    from .routers import pages

    extra = {"bind_host": host, "insecure_no_auth": insecure_no_auth}
    settings = Settings(**extra) if db is None else Settings(database_url=_db_url(db), **extra)
    app = create_app(settings)
    app.state.live = runtime
    app.state.streams.attach(runtime)  # runtime.publish feeds the WS/SSE streams (and Redis, if set)
    app.state.live_feed = runtime.feed
    pages.warm(app)  # what the dashboard's first map needs, ready before the first browser asks
    # X-Forwarded-For believed only from SIGNALWISE_FORWARDED_ALLOW_IPS (uvicorn's default: from 127.0.0.1)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           **settings.uvicorn_proxy_options()))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock] if sock is not None else None},
                              name="signalwise-api", daemon=True)
    thread.start()
    return server, thread


def _missing_database(db: str) -> str | None:
    """Why `--db` names a PostgreSQL database its server does not have (SQLSTATE 3D000), with how to create it;
    None for any other outcome. A server that is down, refuses the login or does not answer in its connect timeout
    is an outage the run buffers through (docs/live.md, "The store buffer"): it is not decided here. A database
    the server says it does not have is almost always a typo in the command line: a run started on it would buffer
    every row and leave its operators without keys (they are read from that database) until it ends.

    psycopg reports a refusal at connection time without its SQLSTATE (`sqlstate` is None): the server's message
    for 3D000, `database "NAME" does not exist`, is matched for the URL's own database name."""
    import re
    import shlex

    from ..store.engine import create_store_engine, database_url, parsed_url

    url = parsed_url(database_url(db))
    if url.get_backend_name() != "postgresql" or not url.database:
        return None
    engine = create_store_engine(database_url(db))
    try:
        with engine.connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any other failure to connect is an outage, said later as such
        text = str(getattr(exc, "orig", None) or exc)
    finally:
        engine.dispose()
    if not re.search(rf'database "{re.escape(url.database)}" does not exist', text):
        return None
    host, port = url.host or "localhost", url.port or 5432
    server = f"{'[' + host + ']' if ':' in host else host}:{port}"
    createdb = shlex.join(["createdb", "-h", host, "-p", str(port), *(["-U", url.username] if url.username else []),
                           url.database])
    plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", url.database) is not None  # SQL takes it as written, unquoted
    quoted = url.database if plain else '"' + url.database.replace('"', '""') + '"'
    return (f"database {url.database!r} does not exist on the PostgreSQL server at {server} (a typo?); create it "
            f"first ({createdb}, or CREATE DATABASE {quoted}; in psql), or name one that exists "
            "(a server that is down is an outage the run buffers through; a database the server does not have is not)")


def _db_url(db: str) -> str:
    """'default' (or empty) = the configured database, else the URL given."""
    from ..store import Settings

    return Settings().database_url if db in ("", "default") else db


def register(app: typer.Typer) -> None:
    app.command("live")(live_command)
