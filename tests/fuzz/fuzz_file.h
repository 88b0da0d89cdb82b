/* fuzz_file.h - for fuzz targets whose parser takes a path: the input written to a file of
 * this process (in /dev/shm when there is one), rewritten on every call. */
#ifndef FUZZ_FILE_H
#define FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Writes data to "<dir>/longctx-fuzz-<pid>-<tag><suffix>" and puts that path in path.
 * @return 0, or -1 when the file cannot be written (the call then tests nothing). */
static inline int fuzz_file_write(const char *tag, const char *suffix, const uint8_t *data,
                                  size_t size, char *path, size_t path_bytes) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, path_bytes, "%s/longctx-fuzz-%ld-%s%s", dir, (long)getpid(), tag, suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
