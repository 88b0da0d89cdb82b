/* infer_model_hash.c - a model's identity for resumable jobs (infer.h: infer_model_hash): xxh3-64
 * of what describes the model and a sample of its weights. Hashing all tensors of a 140 GB
 * checkpoint would take minutes at every start; the headers (every tensor's name, dtype, shape
 * and byte range) and 64 KiB of weights per file take milliseconds. The sample is what tells a
 * base model from its continued pretraining saved with the same layout: training changes every
 * weight, so it changes the sampled ones. An edit of a few weights outside the sample keeps the
 * hash; that is the price. */
#include "infer.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

enum { MAX_HEADER = 1 << 30, MAX_FILES = 4096 };
/* the weights' sample: SAMPLES pieces of SAMPLE_BYTES spread evenly over a file's data (all of
 * it when it is no longer than that) */
enum { SAMPLES = 16, SAMPLE_BYTES = 4096 };

#define FAIL(code, ...)                                                                            \
    do {                                                                                           \
        snprintf(err, err_bytes, __VA_ARGS__);                                                     \
        rc = (code);                                                                               \
        goto fail;                                                                                 \
    } while (0)

/* The sample of f's data [begin, end) into the hash. */
static int hash_sample(XXH3_state_t *h, FILE *f, const char *path, uint64_t begin, uint64_t end,
                       char *err, size_t err_bytes) {
    uint8_t b[SAMPLE_BYTES];
    const uint64_t d = end > begin ? end - begin : 0;
    const int all = d <= (uint64_t)SAMPLES * SAMPLE_BYTES;
    for (uint64_t i = 0, at = 0; all ? at < d : i < SAMPLES; i++) {
        uint64_t off = all ? at : i * (d - SAMPLE_BYTES) / (SAMPLES - 1);
        size_t n = all && d - at < SAMPLE_BYTES ? (size_t)(d - at) : SAMPLE_BYTES;
        if (fseeko(f, (off_t)(begin + off), SEEK_SET) != 0 || fread(b, 1, n, f) != n) {
            snprintf(err, err_bytes, "%s: offset %llu: cannot read the weights", path,
                     (unsigned long long)(begin + off));
            return INFER_ERR_IO;
        }
        XXH3_64bits_update(h, b, n);
        at += n;
    }
    return INFER_OK;
}

/* n bytes at the start of path (or all of it: *n = its size, up to cap) into the hash */
static int hash_file(XXH3_state_t *h, const char *path, int whole, char *err, size_t err_bytes) {
    int rc = INFER_OK;
    char *b = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        FAIL(INFER_ERR_IO, "%s: %s", path, strerror(errno));
    if (whole) { /* config.json */
        struct stat sb;
        if (fstat(fileno(f), &sb) != 0 || sb.st_size > MAX_HEADER)
            FAIL(INFER_ERR_FORMAT, "%s: not a config file", path);
        if (!(b = malloc((size_t)sb.st_size + 1)))
            FAIL(INFER_ERR_NOMEM, "%s: out of memory", path);
        if (fread(b, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
            FAIL(INFER_ERR_IO, "%s: cannot read", path);
        XXH3_64bits_update(h, b, (size_t)sb.st_size);
        goto fail;
    }
    uint8_t len[8]; /* safetensors: u64 little-endian header length, then the JSON header */
    if (fread(len, 1, 8, f) != 8)
        FAIL(INFER_ERR_FORMAT, "%s: offset 0: shorter than the 8-byte header length", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | len[i];
    if (n > MAX_HEADER)
        FAIL(INFER_ERR_FORMAT, "%s: offset 0: header length %llu", path, (unsigned long long)n);
    if (!(b = malloc((size_t)n + 1)))
        FAIL(INFER_ERR_NOMEM, "%s: out of memory", path);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        FAIL(INFER_ERR_FORMAT, "%s: offset 8: the header is cut (%llu bytes)", path,
             (unsigned long long)n);
    XXH3_64bits_update(h, len, 8);
    XXH3_64bits_update(h, b, (size_t)n);
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0)
        FAIL(INFER_ERR_IO, "%s: %s", path, strerror(errno));
    rc = hash_sample(h, f, path, 8 + n, (uint64_t)sb.st_size, err, err_bytes);
fail:
    free(b);
    if (f)
        fclose(f);
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* a HF directory: config.json, then the headers of its *.safetensors in sorted name order */
static int hash_hf(XXH3_state_t *h, const char *dir, char *err, size_t err_bytes) {
    char path[4200];
    char *names[MAX_FILES];
    size_t n = 0;
    int rc = INFER_OK;
    snprintf(path, sizeof path, "%s/config.json", dir);
    DIR *d = NULL;
    if ((rc = hash_file(h, path, 1, err, err_bytes)) != INFER_OK)
        goto fail;
    if (!(d = opendir(dir)))
        FAIL(INFER_ERR_IO, "%s: %s", dir, strerror(errno));
    for (struct dirent *e; (e = readdir(d));) {
        const size_t k = strlen(e->d_name);
        if (k < 12 || strcmp(e->d_name + k - 12, ".safetensors"))
            continue;
        if (n == MAX_FILES)
            FAIL(INFER_ERR_FORMAT, "%s: more than %d safetensors files", dir, MAX_FILES);
        if (!(names[n] = strdup(e->d_name)))
            FAIL(INFER_ERR_NOMEM, "%s: out of memory", dir);
        n++;
    }
    if (n == 0)
        FAIL(INFER_ERR_FORMAT, "%s: no .safetensors file", dir);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n && rc == INFER_OK; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        rc = hash_file(h, path, 0, err, err_bytes);
    }
fail:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    if (d)
        closedir(d);
    return rc;
}

/* a llama2.c checkpoint: its 28-byte header and its size (the header gives the shapes; the
 * size tells a shared classifier from a separate one) */
static int hash_llama2c(XXH3_state_t *h, const char *path, char *err, size_t err_bytes) {
    int rc = INFER_OK;
    uint8_t head[28], size[8];
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f)
        FAIL(INFER_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0 || fread(head, 1, sizeof head, f) != sizeof head)
        FAIL(INFER_ERR_FORMAT, "%s: offset 0: shorter than the 28-byte header", path);
    for (int i = 0; i < 8; i++)
        size[i] = (uint8_t)((uint64_t)sb.st_size >> (8 * i));
    XXH3_64bits_update(h, head, sizeof head);
    XXH3_64bits_update(h, size, sizeof size);
    rc = hash_sample(h, f, path, sizeof head, (uint64_t)sb.st_size, err, err_bytes);
fail:
    if (f)
        fclose(f);
    return rc;
}

int infer_model_hash(const char *path, uint64_t *out, char *err, size_t err_bytes) {
    *out = 0;
    int rc = INFER_OK;
    struct stat sb;
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        FAIL(INFER_ERR_NOMEM, "%s: out of memory", path);
    XXH3_64bits_reset(h);
    const size_t n = strlen(path);
    if (stat(path, &sb) != 0)
        FAIL(INFER_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        rc = hash_hf(h, path, err, err_bytes);
    } else if (n >= 11 && !strcmp(path + n - 11, "config.json")) { /* as infer_model_load */
        char dir[4200];
        snprintf(dir, sizeof dir, "%.*s", (int)(n > 12 ? n - 12 : 1), n > 12 ? path : ".");
        rc = hash_hf(h, dir, err, err_bytes);
    } else {
        rc = hash_llama2c(h, path, err, err_bytes);
    }
    if (rc == INFER_OK)
        *out = XXH3_64bits_digest(h);
fail:
    XXH3_freeState(h);
    return rc;
}
