"""What SUMO writes to standard error while libsumo starts it: kept for the one-line error, and on standard error as
it is written, whatever happens to the process.

libsumo holds the GIL while SUMO loads, as `ctypes.PyDLL` calls do: the scripts below write to fd 2 that way, the
only way to have C code die at a chosen point. A copier that needs the GIL (a thread here) could copy nothing of
it, and SUMO writing more than a pipe holds would wait for it forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from signalwise.sim.backend import SimulationError, SumoBackend, SumoOptions, _stderr_kept
from signalwise.sim.scenario import load


def _python(script: str, timeout_s: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, timeout=timeout_s)


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

