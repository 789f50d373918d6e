"""SUMO loads its network on fresh memory, so a seed drives the same traffic whatever the process did before.

SUMO (1.28) orders some of the objects it builds while loading by their
memory addresses, and the traffic depends on that order. malloc puts a new
object into memory freed earlier wherever a free chunk fits, so where SUMO's
objects land depends on what the process allocated and freed before it
started SUMO, which differs between a comparison's first runs and its later
ones, a standalone run and the evidence replay forked from its run. On
resco:cologne1, fixed plan, seed 1, the same inputs and signal states
gave 33.686 s of average delay or 33.84 s depending on that history alone
(`tests/sim/test_heap_layout.py` frees chunks on purpose before SUMO loads).

`fresh_heap` takes every free chunk of glibc's main arena for the duration of
its block (SUMO's load): SUMO's allocations then come from the top of the
heap, in the order SUMO makes them, as in a process that never freed
anything. The chunks are given back once SUMO has loaded. Where SUMO puts
what it allocates later (vehicles as they depart) did not change the
traffic in any trial. glibc only (2.33 or later, for `mallinfo2`): elsewhere
the block runs as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Iterator

#: the request sizes of glibc's per-thread cache (tcache): its smallest chunk (32 bytes) holds a request of 24,
#: and each next class is 16 bytes more, up to 1032; it keeps up to 7 chunks a class by default
_TCACHE_REQUESTS = range(24, 1033, 16)
_TCACHE_COUNT = 7
#: the requests that take the free chunks, largest first (32 MiB, glibc's largest mmap threshold, down to its
#: smallest chunk): malloc serves each from the smallest free chunk that holds it, and from the top of the heap, or
#: from a mapping of its own past the mmap threshold, only when none does
_TAKING_REQUESTS = tuple((1 << k) - 8 for k in range(25, 4, -1))


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not all(hasattr(libc, name) for name in ("gnu_get_libc_version", "sbrk", "mallinfo2", "malloc_trim")):
        return None
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    libc.mallinfo2.restype, libc.mallinfo2.argtypes = _MallInfo2, []
    libc.malloc_trim.restype, libc.malloc_trim.argtypes = ctypes.c_int, [ctypes.c_size_t]
    return libc


@contextlib.contextmanager
def fresh_heap() -> Iterator[None]:
    """Allocations the main thread makes in the block come from the top of the heap, none from memory freed before.

    A thread of its own allocates from an arena of its own, which this leaves as it is (SUMO starts in the main
    thread of the process that runs it)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    taken = _take_free_chunks(libc)
    try:
        yield
    finally:
        _give_back(libc, taken)


def return_free_memory() -> None:
    """Give the heap's free pages back to the system, once SUMO has closed.

    Each SUMO loads above the memory the last one freed, which stays free for anything but the next SUMO's load:
    a process that starts SUMO again and again (an environment's episodes) would otherwise hold one network's
    worth more each time.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def _take_free_chunks(libc: ctypes.CDLL) -> int:
    """Allocate every free chunk of the main arena; the chunks are kept as a list, each holding the address of the
    one taken before it, and the last one's address is returned."""
    info = libc.mallinfo2()
    top = libc.sbrk(0) - info.keepcost  # where the top of the heap starts: the free chunks lie below it
    free_b = info.fordblks  # every arena's free bytes, their tops included: more than this is never taken
    taken = [0]  # the list's head, so a failed malloc part way gives back what was taken (not held for good)
    try:
        taken[0] = _take_cached(libc, 0, taken)
        for size in _TAKING_REQUESTS:
            while free_b > 0:
                address = _malloc(libc, size)
                if address >= top:  # no free chunk holds this size any more
                    if size > _TCACHE_REQUESTS[-1]:
                        libc.free(address)  # back into the top (or its own mapping), not kept below SUMO's objects
                        break
                    taken[0] = _keep(address, taken[0])  # small: freed, it would wait in the cache for SUMO's
                    break
                taken[0] = _keep(address, taken[0])
                free_b -= size
        return _take_cached(libc, taken[0], taken)  # a chunk taken from a bin brings others of its size along
    except MemoryError:
        _give_back(libc, taken[0])
        return 0  # SUMO then loads as the heap is: a malloc that failed here would fail in SUMO's load anyway


def _take_cached(libc: ctypes.CDLL, head: int, taken: list[int]) -> int:
    for size in _TCACHE_REQUESTS:
        for _ in range(_TCACHE_COUNT):
            head = taken[0] = _keep(_malloc(libc, size), head)
    return head


def _malloc(libc: ctypes.CDLL, size: int) -> int:
    address = libc.malloc(size)
    if not address:
        raise MemoryError(f"malloc({size}) failed")
    return address


def _keep(address: int, head: int) -> int:
    ctypes.c_void_p.from_address(address).value = head
    return address


def _give_back(libc: ctypes.CDLL, head: int) -> None:
    while head:
        before = ctypes.c_void_p.from_address(head).value or 0
        libc.free(head)
        head = before
