/* megatron_export.c - shards into a Megatron dataset with MPI-IO, collective over a
 * communicator.
 *
 * Each rank opens a contiguous share of the files; the ranks agree on the dtype and, by prefix
 * sums, on where every rank's sequences, tokens and document indices go; then every rank writes
 * its own bytes at those offsets, so the result does not depend on the number of ranks. The
 * files are written under temporary names and renamed by rank 0 once every rank succeeded: a
 * failed export never leaves zero-filled files in place of a good one. */
#include "cluster.h"
#include "megatron.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

#define EXPORT_PATH_BYTES 4200
#define EXPORT_MSG_BYTES  1024

megatron_export_opts megatron_export_opts_default(void) {
    megatron_export_opts o = {NULL, 0};
    return o;
}

/* Per-rank totals for the layout: sequences, tokens, document_indices entries. */
typedef struct {
    uint64_t n_seqs;
    uint64_t n_tokens;
    uint64_t n_doc_entries;
} export_counts;

/* The output files: final and temporary names. */
typedef struct {
    char bin[EXPORT_PATH_BYTES], idx[EXPORT_PATH_BYTES];
    char bin_tmp[EXPORT_PATH_BYTES], idx_tmp[EXPORT_PATH_BYTES];
} export_paths;

/* One rank's share of the files and the global layout. */
typedef struct {
    shard_reader **readers; /* (n_local) */
    int f0, n_local;        /* files[f0 .. f0 + n_local) */
    export_counts local, off, tot;
    int dtype;
    uint64_t item; /* bytes per token in .bin */
} export_share;

enum { WHY_BYTES = 200 };
static int write_at_all(MPI_File fh, uint64_t off, const void *buf, uint64_t n, char *why) {
    return cluster_file_write_at(fh, off, buf, n, why, WHY_BYTES) == CLUSTER_OK ? 0 : -1;
}

/* The dtype a shard's metadata asks for (from import), or 0. */
static int meta_dtype(const char *meta) {
    json_object *o = json_tokener_parse(meta), *v;
    int d = 0;
    if (o && json_object_object_get_ex(o, "megatron_dtype", &v))
        d = json_object_get_int(v);
    json_object_put(o);
    return d == MEGATRON_DTYPE_UINT16 || d == MEGATRON_DTYPE_INT32 ? d : 0;
}

/* SHARD_ERR_ARG when `input` is the same file as one of the outputs (another path or a hard
 * link to it): writing the output would destroy the input. */
static int check_not_output(const char *input, const export_paths *p, char *msg) {
    const char *outs[4] = {p->bin, p->idx, p->bin_tmp, p->idx_tmp};
    struct stat si, so;
    if (stat(input, &si) != 0)
        return SHARD_OK; /* shard_reader_open names the problem */
    for (int k = 0; k < 4; k++)
        if (stat(outs[k], &so) == 0 && so.st_dev == si.st_dev && so.st_ino == si.st_ino) {
            snprintf(msg, EXPORT_MSG_BYTES,
                     "the output %s is one of the inputs (%s): refusing to overwrite it", outs[k],
                     input);
            return SHARD_ERR_ARG;
        }
    return SHARD_OK;
}

/* Local. Opens this rank's files and counts them; wants[] counts the dtypes that the files'
 * metadata ask for (uint16, int32), n_meta the files that ask. */
static int share_open(export_share *s, char *const *files, const export_paths *p,
                      uint32_t *max_vocab, int *n_meta, int wants[2], char *msg) {
    s->readers = calloc((size_t)(s->n_local ? s->n_local : 1), sizeof *s->readers);
    if (!s->readers) {
        snprintf(msg, EXPORT_MSG_BYTES, "out of memory");
        return SHARD_ERR_NOMEM;
    }
    for (int i = 0; i < s->n_local; i++) {
        const char *path = files[s->f0 + i];
        int st = check_not_output(path, p, msg);
        if (st != SHARD_OK)
            return st;
        st = shard_reader_open(path, &s->readers[i]);
        if (st != SHARD_OK) {
            snprintf(msg, EXPORT_MSG_BYTES, "%s", shard_reader_errmsg(s->readers[i]));
            return st;
        }
        const shard_info *in = shard_reader_info(s->readers[i]);
        s->local.n_seqs += in->n_seqs;
        s->local.n_tokens += in->n_tokens;
        s->local.n_doc_entries += in->n_doc_starts;
        if (in->vocab_size > *max_vocab)
            *max_vocab = in->vocab_size;
        int d = meta_dtype(shard_reader_meta(s->readers[i]));
        if (d) {
            (*n_meta)++;
            wants[d == MEGATRON_DTYPE_INT32]++;
        }
    }
    return SHARD_OK;
}

/* Collective. The dtype, the totals and this rank's offsets. */
static int share_layout(MPI_Comm comm, export_share *s, int dtype_opt, int n_files,
                        uint32_t max_vocab, int n_meta, const int wants[2], char *err,
                        size_t err_bytes) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    uint32_t g_vocab;
    int g_meta[3], l_meta[3] = {n_meta, wants[0], wants[1]};
    MPI_Allreduce(&max_vocab, &g_vocab, 1, MPI_UINT32_T, MPI_MAX, comm);
    MPI_Allreduce(l_meta, g_meta, 3, MPI_INT, MPI_SUM, comm);
    if (dtype_opt)
        s->dtype = dtype_opt;
    else if (g_meta[0] == n_files && (g_meta[1] == 0 || g_meta[2] == 0))
        s->dtype = g_meta[1] ? MEGATRON_DTYPE_UINT16 : MEGATRON_DTYPE_INT32;
    else
        s->dtype = megatron_dtype_for_vocab(g_vocab);
    if (s->dtype == MEGATRON_DTYPE_UINT16 && g_vocab > 65536u) {
        snprintf(err, err_bytes, "--dtype uint16 cannot hold a vocabulary of %u", g_vocab);
        return SHARD_ERR_ARG;
    }
    s->item = s->dtype == MEGATRON_DTYPE_UINT16 ? 2 : 4;
    memset(&s->off, 0, sizeof s->off);
    MPI_Exscan(&s->local, &s->off, 3, MPI_UINT64_T, MPI_SUM, comm);
    if (rank == 0)
        memset(&s->off, 0, sizeof s->off); /* MPI_Exscan leaves rank 0's result undefined */
    MPI_Allreduce(&s->local, &s->tot, 3, MPI_UINT64_T, MPI_SUM, comm);
    return SHARD_OK;
}

/* Copies take tokens of width token_bytes to the .bin dtype (item bytes). */
static void tokens_convert(uint8_t *dst, uint64_t item, const uint8_t *src, uint32_t token_bytes,
                           uint64_t take) {
    if (item == token_bytes) {
        memcpy(dst, src, take * item);
    } else if (item == 4) { /* uint16 shard into int32 */
        const uint16_t *s = (const uint16_t *)(const void *)src;
        int32_t *d = (int32_t *)(void *)dst;
        for (uint64_t k = 0; k < take; k++)
            d[k] = s[k];
    } else { /* uint32 shard (vocab <= 65536 forced to uint16) */
        const uint32_t *s = (const uint32_t *)(const void *)src;
        uint16_t *d = (uint16_t *)(void *)dst;
        for (uint64_t k = 0; k < take; k++)
            d[k] = (uint16_t)s[k];
    }
}

/* Local. Writes this rank's tokens to fb and its lengths, pointers and document indices to fi
 * (rank 0 also the header and the final document index). */
static int share_write(const export_share *s, int rank, char *const *files, MPI_File fb,
                       MPI_File fi, const export_paths *p, char *msg) {
    const uint64_t item = s->item, N = s->tot.n_seqs, D = s->tot.n_doc_entries + 1;
    const uint64_t lengths_at = MEGATRON_HEADER_BYTES, pointers_at = lengths_at + 4 * N;
    const uint64_t docs_at = pointers_at + 8 * N;
    int32_t *lengths = malloc((s->local.n_seqs ? s->local.n_seqs : 1) * sizeof *lengths);
    int64_t *pointers = malloc((s->local.n_seqs ? s->local.n_seqs : 1) * sizeof *pointers);
    int64_t *doc_idx = malloc((s->local.n_doc_entries + 1) * sizeof *doc_idx);
    const uint64_t buf_cap = 1u << 22;     /* tokens per .bin write */
    uint8_t *buf = malloc(buf_cap * item); /* (buf_cap, item bytes) */
    char why[WHY_BYTES] = "";
    int st = SHARD_OK;
    if (!lengths || !pointers || !doc_idx || !buf) {
        snprintf(msg, EXPORT_MSG_BYTES, "out of memory");
        st = SHARD_ERR_NOMEM;
    }
    uint64_t seq = 0, n_dx = 0, buf_n = 0, buf_at = s->off.n_tokens * item;
    for (int i = 0; st == SHARD_OK && i < s->n_local; i++) {
        shard_reader *r = s->readers[i];
        const shard_info *in = shard_reader_info(r);
        for (uint64_t q = 0; st == SHARD_OK && q < in->n_seqs; q++) {
            shard_seq sq;
            st = shard_reader_read(r, q, &sq);
            if (st != SHARD_OK) {
                snprintf(msg, EXPORT_MSG_BYTES, "%s", shard_reader_errmsg(r));
                break;
            }
            if (sq.n_tokens > INT32_MAX) {
                snprintf(msg, EXPORT_MSG_BYTES,
                         "%s: sequence %llu has %llu tokens; Megatron lengths are int32",
                         files[s->f0 + i], (ull)q, (ull)sq.n_tokens);
                st = SHARD_ERR_ARG;
                break;
            }
            for (uint32_t k = 0; k < sq.n_doc_starts; k++)
                doc_idx[n_dx++] = (int64_t)(s->off.n_seqs + seq);
            lengths[seq] = (int32_t)sq.n_tokens;
            pointers[seq] = (int64_t)(buf_at + buf_n * item);
            seq++;
            for (uint64_t t = 0; t < sq.n_tokens;) {
                uint64_t take =
                    sq.n_tokens - t < buf_cap - buf_n ? sq.n_tokens - t : buf_cap - buf_n;
                tokens_convert(buf + buf_n * item, item,
                               (const uint8_t *)sq.tokens + t * in->token_bytes, in->token_bytes,
                               take);
                buf_n += take;
                t += take;
                if (buf_n == buf_cap) {
                    if (write_at_all(fb, buf_at, buf, buf_n * item, why) != 0) {
                        snprintf(msg, EXPORT_MSG_BYTES, "%s: write at offset %llu failed: %s",
                                 p->bin_tmp, (ull)buf_at, why);
                        st = SHARD_ERR_IO;
                        break;
                    }
                    buf_at += buf_n * item;
                    buf_n = 0;
                }
            }
        }
        if (st == SHARD_OK)
            for (uint64_t k = 0; k < in->n_trailing_doc_starts; k++)
                doc_idx[n_dx++] = (int64_t)(s->off.n_seqs + seq);
    }
    if (st == SHARD_OK && buf_n && write_at_all(fb, buf_at, buf, buf_n * item, why) != 0) {
        snprintf(msg, EXPORT_MSG_BYTES, "%s: write at offset %llu failed: %s", p->bin_tmp,
                 (ull)buf_at, why);
        st = SHARD_ERR_IO;
    }
    if (st == SHARD_OK) {
        int bad = write_at_all(fi, lengths_at + 4 * s->off.n_seqs, lengths, 4 * seq, why) ||
                  write_at_all(fi, pointers_at + 8 * s->off.n_seqs, pointers, 8 * seq, why) ||
                  write_at_all(fi, docs_at + 8 * s->off.n_doc_entries, doc_idx, 8 * n_dx, why);
        if (rank == 0) {
            uint8_t hdr[MEGATRON_HEADER_BYTES];
            int64_t last = (int64_t)N;
            megatron_header_write(hdr, s->dtype, N, D);
            bad = bad || write_at_all(fi, 0, hdr, sizeof hdr, why) ||
                  write_at_all(fi, docs_at + 8 * (D - 1), &last, 8, why);
        }
        if (bad) {
            snprintf(msg, EXPORT_MSG_BYTES, "%s: write failed: %s", p->idx_tmp, why);
            st = SHARD_ERR_IO;
        }
    }
    free(lengths);
    free(pointers);
    free(doc_idx);
    free(buf);
    return st;
}

/* Collective. Creates both temporary files, sized exactly, writes every rank's share, syncs
 * and closes them. The agreed status; the files stay under their temporary names. */
static int files_write(MPI_Comm comm, const export_share *s, char *const *files,
                       const export_paths *p, char *err, size_t err_bytes) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char msg[EXPORT_MSG_BYTES] = "";
    const uint64_t N = s->tot.n_seqs, D = s->tot.n_doc_entries + 1;
    MPI_File fb = MPI_FILE_NULL, fi = MPI_FILE_NULL;
    const int amode = MPI_MODE_CREATE | MPI_MODE_WRONLY;
    int e1 = MPI_File_open(comm, p->bin_tmp, amode, MPI_INFO_NULL, &fb);
    int e2 = MPI_File_open(comm, p->idx_tmp, amode, MPI_INFO_NULL, &fi);
    int st = SHARD_OK;
    if (e1 != MPI_SUCCESS || e2 != MPI_SUCCESS) {
        snprintf(msg, sizeof msg, "cannot create %s", e1 != MPI_SUCCESS ? p->bin_tmp : p->idx_tmp);
        st = SHARD_ERR_IO;
    }
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    /* a stale temporary file of a crashed run may be longer: set_size makes it exact */
    if (st == SHARD_OK) {
        if (MPI_File_set_size(fb, (MPI_Offset)(s->tot.n_tokens * s->item)) != MPI_SUCCESS ||
            MPI_File_set_size(fi, (MPI_Offset)(MEGATRON_HEADER_BYTES + 12 * N + 8 * D)) !=
                MPI_SUCCESS) {
            snprintf(msg, sizeof msg, "cannot size %s and %s", p->bin_tmp, p->idx_tmp);
            st = SHARD_ERR_IO;
        }
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    }
    if (st == SHARD_OK) {
        st = share_write(s, rank, files, fb, fi, p, msg);
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    }
    if (st == SHARD_OK) {
        if (MPI_File_sync(fb) != MPI_SUCCESS || MPI_File_sync(fi) != MPI_SUCCESS) {
            snprintf(msg, sizeof msg, "cannot sync %s and %s", p->bin_tmp, p->idx_tmp);
            st = SHARD_ERR_IO;
        }
        st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    }
    if (fb != MPI_FILE_NULL)
        MPI_File_close(&fb);
    if (fi != MPI_FILE_NULL)
        MPI_File_close(&fi);
    return st;
}

/* Collective. Rank 0 renames both files into place (st == SHARD_OK) or removes them. */
static int files_finish(MPI_Comm comm, int st, const export_paths *p, char *err, size_t err_bytes) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char msg[EXPORT_MSG_BYTES] = "";
    int st_local = SHARD_OK;
    if (rank == 0 && st == SHARD_OK) {
        if (rename(p->bin_tmp, p->bin) != 0 || rename(p->idx_tmp, p->idx) != 0) {
            snprintf(msg, EXPORT_MSG_BYTES, "cannot rename %s.tmp into place: %s",
                     access(p->bin_tmp, F_OK) == 0 ? p->bin : p->idx, strerror(errno));
            st_local = SHARD_ERR_IO;
        }
    }
    if (rank == 0 && (st != SHARD_OK || st_local != SHARD_OK)) {
        unlink(p->bin_tmp);
        unlink(p->idx_tmp);
    }
    if (st != SHARD_OK) {
        MPI_Barrier(comm); /* nobody returns before the files are gone */
        return st;
    }
    return cluster_agree_msg(comm, st_local, msg, err, err_bytes, NULL);
}

int megatron_export(MPI_Comm comm, const megatron_export_opts *o, char *const *files, int n_files,
                    megatron_export_report *rep, char *err, size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    int st = megatron_prefix_check(o->prefix, err, err_bytes);
    if (st == SHARD_OK && o->dtype != 0 && o->dtype != MEGATRON_DTYPE_UINT16 &&
        o->dtype != MEGATRON_DTYPE_INT32) {
        snprintf(err, err_bytes, "dtype %d is not 0, %d or %d", o->dtype, MEGATRON_DTYPE_UINT16,
                 MEGATRON_DTYPE_INT32);
        st = SHARD_ERR_ARG;
    }
    if (st != SHARD_OK)
        return st; /* the same on every rank: the arguments are global */
    export_paths *p = calloc(1, sizeof *p);
    export_share s;
    memset(&s, 0, sizeof s);
    s.f0 = (int)((int64_t)n_files * rank / n_ranks);
    s.n_local = (int)((int64_t)n_files * (rank + 1) / n_ranks) - s.f0;
    char msg[EXPORT_MSG_BYTES] = "";
    uint32_t max_vocab = 0;
    int n_meta = 0, wants[2] = {0, 0};
    if (!p) {
        snprintf(msg, sizeof msg, "out of memory");
        st = SHARD_ERR_NOMEM;
    } else {
        snprintf(p->bin, sizeof p->bin, "%s.bin", o->prefix);
        snprintf(p->idx, sizeof p->idx, "%s.idx", o->prefix);
        snprintf(p->bin_tmp, sizeof p->bin_tmp, "%s.bin.tmp", o->prefix);
        snprintf(p->idx_tmp, sizeof p->idx_tmp, "%s.idx.tmp", o->prefix);
        st = share_open(&s, files, p, &max_vocab, &n_meta, wants, msg);
    }
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    if (st == SHARD_OK)
        st = share_layout(comm, &s, o->dtype, n_files, max_vocab, n_meta, wants, err, err_bytes);
    if (st == SHARD_OK) {
        st = files_write(comm, &s, files, p, err, err_bytes);
        st = files_finish(comm, st, p, err, err_bytes);
    }
    if (st == SHARD_OK) {
        rep->n_seqs = s.tot.n_seqs;
        rep->n_tokens = s.tot.n_tokens;
        rep->n_docs = s.tot.n_doc_entries;
        rep->dtype = s.dtype;
    }
    for (int i = 0; i < s.n_local && s.readers; i++)
        shard_reader_free(s.readers[i]);
    free(s.readers);
    free(p);
    return st;
}
