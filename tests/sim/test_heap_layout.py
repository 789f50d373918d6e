"""A seed drives the same traffic whatever the process allocated and freed before it started SUMO (`sim/heap_layout.py`).

SUMO orders some of the network's objects by their addresses, and malloc reuses the memory a process freed
earlier. The scripts below free memory in patterns of their own before SUMO starts, as a process's own history
does (a comparison's first runs, a replay forked from its run, an environment's next episode); each runs in a
fresh interpreter.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from signalwise.sim.heap_layout import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="the heap is laid out by glibc's malloc only on glibc")


def _python(script: str) -> str:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_allocations_in_the_block_never_reuse_memory_freed_before():
    out = _python("""
        import ctypes, random
        from signalwise.sim.heap_layout import fresh_heap

        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        rng = random.Random(1)
        chunks = [libc.malloc(rng.choice([16, 24, 32, 48, 64, 96, 128, 200, 300, 500, 1000, 2000]))
                  for _ in range(20000)]
        for chunk in chunks[::2]:
            libc.free(ctypes.c_void_p(chunk))
        highest_before = max(chunks)
        with fresh_heap():
            inside = [libc.malloc(size) for size in (24, 40, 100, 500, 1000, 3000, 20000) for _ in range(200)]
        print(sum(address <= highest_before for address in inside), len(inside))
    """)
    reused, made = map(int, out.split())
    assert made == 1400
    assert reused == 0


@pytest.mark.skipif(importlib.util.find_spec("sumo_rl") is None, reason="RESCO networks need the 'resco' extra")
@pytest.mark.slow
def test_a_seed_drives_the_same_traffic_whatever_memory_was_freed_before_sumo_started(tmp_path):
    """cologne1 under SUMO's own programs for 600 s, nine times in one process: first on the memory as the process
    has it, then each time after a pattern of freed memory, and after the SUMO before, which freed its own."""
    script = f"""
        import ctypes, hashlib, random
        from signalwise.sim.backend import SumoBackend, SumoOptions
        from signalwise.sim.scenario import load

        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        s = load("resco:cologne1")
        out = {str(tmp_path / "tripinfo.xml")!r}
        for holes in range(-1, 9):
            if holes == 0:
                continue
            sumo = SumoBackend(SumoOptions(net_file=s.net_file, route_files=s.route_files, begin_s=s.begin_s,
                                           end_s=s.begin_s + 600, seed=1, time_to_teleport_s=-1,
                                           outputs={{"tripinfo-output": out}}))
            if holes > 0:  # about half of 20,000 small chunks freed, in a pattern of its own
                rng = random.Random(holes)
                chunks = [libc.malloc(rng.choice([16, 24, 32, 48, 64, 96, 128, 200, 300, 500, 1000, 2000]))
                          for _ in range(20000)]
                for chunk in chunks:
                    if rng.random() < 0.5:
                        libc.free(chunk)
            sumo.start()
            while sumo.time_s() < s.begin_s + 600:
                sumo.step()
            sumo.close()
            text = open(out).read()
            trips = text[text.index("-->") + 3:]  # after the header: the date and this run's file names
            print(trips.count("<tripinfo "), hashlib.sha256(trips.encode()).hexdigest())
    """
    runs = [line.split() for line in _python(script).splitlines()]
    assert len(runs) == 9
    assert all(int(count) > 300 for count, _digest in runs)
    assert {digest for _count, digest in runs} == {runs[0][1]}


def test_a_malloc_that_fails_part_way_gives_back_every_chunk_taken():
    """A MemoryError while the free chunks were being taken left all those taken so far allocated for the life of
    the process (reviewer). A C library whose malloc fails on its 100th call (its chunks real memory, so the list
    threaded through them is written as glibc's would be) gets every chunk back, and SUMO loads as the heap is."""
    import ctypes

    from signalwise.sim import heap_layout

    class FailingLibc:
        def __init__(self, fail_at: int):
            self.fail_at, self.calls, self.buffers, self.freed = fail_at, 0, {}, []

        def mallinfo2(self):
            return heap_layout._MallInfo2(fordblks=1 << 30, keepcost=0)

        def sbrk(self, _n):
            return 1 << 62  # every chunk lies below the top: each one is kept

        def malloc(self, size):
            self.calls += 1
            if self.calls >= self.fail_at:
                return 0
            buffer = ctypes.create_string_buffer(size)
            self.buffers[ctypes.addressof(buffer)] = buffer
            return ctypes.addressof(buffer)

        def free(self, address):
            self.freed.append(address)

    libc = FailingLibc(fail_at=100)
    assert heap_layout._take_free_chunks(libc) == 0
    assert len(libc.buffers) == 99 and sorted(libc.freed) == sorted(libc.buffers)
