/* cluster_file.c - MPI-IO writes of any size. */
#include "cluster.h"

#include <stdio.h>

int cluster_file_write_at(MPI_File fh, uint64_t off, const void *buf, uint64_t n, char *why,
                          size_t why_bytes) {
    const uint8_t *p = buf;
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n, len = 0, done = 0;
        MPI_Status ms;
        int rc = MPI_File_write_at(fh, (MPI_Offset)off, p, chunk, MPI_BYTE, &ms);
        if (rc != MPI_SUCCESS) {
            char s[MPI_MAX_ERROR_STRING];
            MPI_Error_string(rc, s, &len);
            snprintf(why, why_bytes, "%.*s", len, s);
            return CLUSTER_ERR_MPI;
        }
        MPI_Get_count(&ms, MPI_BYTE, &done);
        if (done != chunk) {
            snprintf(why, why_bytes, "only %d of %d bytes written (no space left on the device?)",
                     done, chunk);
            return CLUSTER_ERR_MPI;
        }
        p += chunk;
        off += (uint64_t)chunk;
        n -= (uint64_t)chunk;
    }
    return CLUSTER_OK;
}
