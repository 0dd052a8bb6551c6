"""The process's memory after start-up: what start-up freed is handed back to the operating system.

Starting the shop imports, compiles and builds far more than it keeps (source compiled without a bytecode cache,
pydantic schemas, the migrations' checks): once it is collected, glibc's allocator keeps the freed pages
mapped in its heap, where they count as the process's memory for as long as it runs. `malloc_trim(0)`
releases every free page it holds, once, when the shop is ready. Where the C library has no `malloc_trim`
(musl, macOS), nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging

log = logging.getLogger(__name__)


def give_back_start_up_memory() -> bool:
    """Collect start-up garbage and release the allocator's free pages; False where the C library cannot."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    trim(0)
    return True
