/*
 * cluster_memory.c - the C library's malloc told to keep and reuse freed memory.
 *
 * prep's stages allocate and free arrays of hundreds of MB one after another (the copies, their
 * sort's room, the pieces, the round buffers). glibc maps every block over 32 MiB on its own
 * and unmaps it when freed, so each new array is faulted in again, 4 KiB at a time, zeroed by
 * the kernel. Measured on 4M short documents (tests/bench/bench_prep_scale.sh, -np 1): the
 * pack stage took 3.0 s with the memory reused, against 3.6-4.1 s without; a 2M x 48-byte
 * sort (bench_sort) 66 ms against 111. What it costs: memory freed is kept by the process
 * for the next allocation, not handed back, so RSS stays near its peak, and the peak rose
 * at one rank (4M: 645 -> 714 MB; BENCHMARKS.md, issue 13 fourth session).
 * Transparent huge pages (madvise) were tried for the big arrays and are not used: the faults
 * got rarer but the kernel's compaction on fault made the copies' deal twice as slow.
 */
#include "cluster.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

int cluster_malloc_reuse(void) {
    const char *e = getenv(CLUSTER_MALLOC_REUSE_ENV);
    if (e && strcmp(e, "0") == 0)
        return 0;
#ifdef __GLIBC__
    /* no block of its own mapping: every block from the heap (glibc still maps when the heap
     * cannot grow), and the heap's top kept when freed */
    int ok = mallopt(M_MMAP_MAX, 0) == 1;
    ok = mallopt(M_TRIM_THRESHOLD, INT32_MAX) == 1 && ok;
    return ok;
#else
    return 0;
#endif
}
