"""What SUMO writes to standard error while libsumo starts it: kept for the one-line error, and on standard error as
it is written, whatever happens to the process.

libsumo holds the GIL while SUMO loads, as `ctypes.PyDLL` calls do: the scripts below write to fd 2 that way, the
only way to have C code die at a chosen point. A copier that needs the GIL (a thread here) could copy nothing of
it, and SUMO writing more than a pipe holds would wait for it forever.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from signalwise.sim.backend import SimulationError, SumoBackend, SumoOptions, _stderr_kept
from signalwise.sim.scenario import load


def _python(script: str, timeout_s: float = 30, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, timeout=timeout_s,
                          env=env)


def test_sumos_last_line_reaches_stderr_when_it_dies_while_loading():
    p = _python("""
        import ctypes
        from signalwise.sim.backend import _stderr_kept

        libc = ctypes.PyDLL(None)  # C code holding the GIL, as libsumo.start is
        with _stderr_kept():
            line = b"Error: the last line before the crash.\\n"
            libc.write(2, line, len(line))
            libc.abort()
    """)
    assert p.returncode < 0  # killed by SIGABRT
    assert b"Error: the last line before the crash." in p.stderr


def test_more_than_a_pipe_holds_written_while_loading_is_kept_whole():
    """A network whose every lane draws a warning (`no-warnings: false` in sumo_options): 2 MB under the GIL."""
    p = _python("""
        import ctypes
        from signalwise.sim.backend import _stderr_kept

        libc = ctypes.PyDLL(None)
        line = b"Warning: a lane of this network is odd.\\n"
        with _stderr_kept() as said:
            for _ in range(50_000):
                libc.write(2, line, len(line))
        print(len(said))
    """, timeout_s=60)
    assert p.returncode == 0, p.stderr[-500:]
    assert p.stdout.split() == [b"50000"] and p.stderr.count(b"Warning: a lane of this network is odd.") == 50_000


def test_what_another_thread_writes_meanwhile_is_on_stderr_at_once(capfd):
    seen = ""
    with _stderr_kept() as said:
        # to fd 2, as a thread's sys.stderr does outside pytest (which gives sys.stderr a file of its own)
        threading.Thread(target=lambda: os.write(2, b"rows stored: 120\n")).start()
        deadline = time.monotonic() + 5
        while "rows stored: 120" not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
            seen += capfd.readouterr().err
        assert "rows stored: 120" in seen  # before the block ends, not held back until then
    assert said == ["rows stored: 120"]


def test_sumos_reason_is_its_whole_message_naming_the_file_and_the_line(tmp_path):
    bad = tmp_path / "det.add.xml"
    bad.write_text('<additional>\n<inductionLoop id="d1" lane="W_C_1" pos="5" period="60" file="x.xml">\n'
                   '</additional>\n')
    sim = SumoBackend(SumoOptions(net_file=load("single").net_file, additional_files=(bad,)))
    with pytest.raises(SimulationError) as refused:
        sim.start()
    sim.close()
    assert str(refused.value).startswith(f"SUMO refused the input: expected end of tag 'inductionLoop' In file "
                                         f"'{bad}' At line/column "), refused.value


def test_a_line_in_sumos_error_format_with_its_prefixes_is_its_reason():
    from signalwise.sim.backend import _sumo_reason

    said = ["rows stored: 120", "[2026-01-02T10:00:00] [PID: 41] Error: Unknown lane 'x' for e1Detector 'd'.",
            "Error: Edge 'e' for stop 's' not found", " In file 'a.add.xml'"]
    assert _sumo_reason(said) == "Unknown lane 'x' for e1Detector 'd', and 1 more error(s) above"
    assert _sumo_reason(said[2:]) == "Edge 'e' for stop 's' not found In file 'a.add.xml'"
    assert _sumo_reason(["Errors: 3", "error: not SUMO's"]) is None



def _tee_children() -> list[tuple[int, str]]:
    """(pid, state) of this process's `tee` children, zombies ('Z') included, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        if name == "tee" and int(rest[1]) == os.getpid():
            found.append((int(stat.parent.name), rest[0]))
    return found


def test_a_process_started_in_the_block_holding_stderr_stalls_it_briefly_and_leaves_no_zombie():
    """A child started while SUMO starts inherits the pipe as its standard error and holds it for 4 s: the block
    ends within TEE_WAIT_S (and a little), with the lines written before; `tee` is reaped once the child is done."""
    started = time.monotonic()
    with _stderr_kept() as said:
        os.write(2, b"Error: the reason, before the child.\n")
        child = subprocess.Popen(["sleep", "4"])
    took_s = time.monotonic() - started
    assert took_s <= 2.5, took_s
    assert said == ["Error: the reason, before the child."]
    assert child.wait(10) == 0
    deadline = time.monotonic() + 5
    while _tee_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _tee_children() == []  # neither running nor a zombie waiting for the next Popen to reap it


def test_a_tee_that_cannot_write_its_file_leaves_the_lines_kept_without_it(tmp_path):
    """GNU tee that cannot open its file (e.g. a /dev/fd/N where /dev/fd is missing) says so on its own standard
    error and copies on: a `tee` first on PATH that appends to a path in no directory is that tee. The lines are
    kept all the same (without it), reach standard error once, and a warning says why."""
    fake = tmp_path / "bin" / "tee"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nexec {shutil.which('tee')} -a {tmp_path}/no-such-directory/kept.txt\n")
    fake.chmod(0o755)
    p = _python("""
        import ctypes
        from signalwise.sim.backend import _stderr_kept

        libc = ctypes.PyDLL(None)
        with _stderr_kept() as said:
            line = b"Error: Unknown lane 'x' for e1Detector 'd'.\\n"
            libc.write(2, line, len(line))
        print(said)
    """, env={**os.environ, "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip() == "[\"Error: Unknown lane 'x' for e1Detector 'd'.\"]", p.stdout
    assert p.stderr.count(b"Error: Unknown lane 'x' for e1Detector 'd'.") == 1, p.stderr
    assert b"not as it is written: tee said: " in p.stderr and b"no-such-directory/kept.txt" in p.stderr, p.stderr
