"""Where numba's threads run: each thread reads and sets its own CPU affinity (Linux only; speed, never bits).

The one kernel of this layer that computes no formula.  :func:`thread_affinity` runs one parallel region in which
each of numba's threads (``numba.get_thread_id()``) records the CPU it is on and its affinity mask, and may set its
mask; :func:`lnref.training.placement.spread` decides the masks (issue 25: on some virtual machines the scheduler
packs a short-lived OpenMP worker onto its master's CPU, where two threads run slower than one).  A thread can only
be reached from inside a parallel region (OpenMP does not name its workers to the program), hence a kernel.

The masks are glibc's ``cpu_set_t``: :data:`MASK_BYTES` bytes, bit c of byte c // 8 for CPU c (``CPU_SET``).
libc's ``sched_getaffinity``, ``sched_setaffinity`` (pid 0: the calling thread) and ``sched_getcpu`` are
called through numba's extension API (``numba.extending.intrinsic``); the symbols are the process's own libc, so
the kernel caches like any other.  With ``NUMBA_DISABLE_JIT=1`` there is no kernel to run (the intrinsics have no
Python form) and the caller places nothing.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .cache import kernel

__all__ = ["MASK_BYTES", "thread_affinity"]

# glibc's cpu_set_t: 1024 CPUs
MASK_BYTES = 128

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_BYTES = ir.IntType(8).as_pointer()


@intrinsic
def _affinity(typingctx, set_mask, row):
    """sched_getaffinity(0, len(row), row) when ``set_mask`` is False, else sched_setaffinity: 0 or -1."""
    if not isinstance(row, types.Array) or row.dtype != types.uint8 or row.ndim != 1:
        return None
    sig = types.int32(types.boolean, row)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[1])(context, builder, args[1])
        data = builder.bitcast(arr.data, _BYTES)
        size = builder.mul(arr.nitems, arr.itemsize)
        fnty = ir.FunctionType(_I32, [_I32, _I64, _BYTES])
        get = cgutils.get_or_insert_function(builder.module, fnty, "sched_getaffinity")
        put = cgutils.get_or_insert_function(builder.module, fnty, "sched_setaffinity")
        flag = context.cast(builder, args[0], signature.args[0], types.boolean)
        caller = ir.Constant(_I32, 0)
        with builder.if_else(flag) as (when_set, when_get):
            with when_set:
                r_set = builder.call(put, [caller, size, data])
                b_set = builder.block
            with when_get:
                r_get = builder.call(get, [caller, size, data])
                b_get = builder.block
        out = builder.phi(_I32)
        out.add_incoming(r_set, b_set)
        out.add_incoming(r_get, b_get)
        return out

    return sig, codegen


@intrinsic
def _current_cpu(typingctx):
    """sched_getcpu(): the CPU the calling thread runs on, or -1."""
    sig = types.int32()

    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_I32, []), "sched_getcpu")
        return builder.call(fn, [])

    return sig, codegen


@kernel(parallel=True)
def thread_affinity(apply, masks, saved, cpus, runs, codes):
    """One parallel region of ``masks.shape[0]`` iterations (call it with that many numba threads).

    The first time thread t = ``numba.get_thread_id()`` runs an iteration: cpus[t] = its CPU, saved[t] = its
    affinity mask, codes[t, 0] = that call's return code; when ``apply``, its mask becomes masks[t] and codes[t, 1]
    = that call's code (0 success, -1 failure).  runs[t] counts its iterations: a thread with runs[t] == 0 ran none
    and was not touched.  Rows are ``MASK_BYTES`` uint8 each.
    """
    for _i in prange(masks.shape[0]):
        t = numba.get_thread_id()
        runs[t] += 1
        if runs[t] == 1:
            cpus[t] = _current_cpu()
            codes[t, 0] = _affinity(False, saved[t])
            if apply:
                codes[t, 1] = _affinity(True, masks[t])
