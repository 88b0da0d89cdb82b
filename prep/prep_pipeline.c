/* prep_pipeline.c - prep_run(): the stages in the order the data moves through them. */
#include "prep_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef unsigned long long ull;

const char *prep_strerror(int status) {
    switch (status) {
    case PREP_OK:
        return "ok";
    case PREP_ERR_IO:
        return "I/O error";
    case PREP_ERR_NOMEM:
        return "out of memory";
    case PREP_ERR_INPUT:
        return "bad input";
    case PREP_ERR_RECIPE:
        return "recipe error";
    case PREP_ERR_ARG:
        return "invalid argument";
    case PREP_ERR_MPI:
        return "MPI error";
    case PREP_ERR_SHORT:
        return "budget not reached";
    case PREP_ERR_REMOTE:
        return "another rank failed";
    default:
        return "unknown status";
    }
}

prep_opts prep_opts_default(void) {
    prep_opts o;
    memset(&o, 0, sizeof o);
    o.threads = 1;
    o.unit_bytes = 256u << 20;
    o.shard_tokens = 1u << 28;
    o.max_doc_bytes = 64u << 20;
    o.progress_seconds = 5;
    char err[8];
    prep_recipe_load("keep", &o.recipe, err, sizeof err);
    return o;
}

static int make_dir(const char *path, char *err, size_t err_bytes) {
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return PREP_OK;
    snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
    return PREP_ERR_IO;
}

int prep_run(MPI_Comm comm, const prep_opts *o, char *err, size_t err_bytes) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    char msg[PREP_ERRMSG_BYTES] = "";
    int st = PREP_OK;
    tokenizer *tok = NULL;
    prep_input *in = NULL;
    size_t n_in = 0, n_units = 0, n_sel = 0;
    prep_unit *units = NULL;
    prep_sel *sel = NULL;
    prep_stats S;
    memset(&S, 0, sizeof S);
    uint64_t n_seqs[PREP_MAX_SEQ_LENS] = {0}, n_shards[PREP_MAX_SEQ_LENS] = {0};
    double t0 = cluster_now();

    /* 0. the output folder, the tokenizer, the inputs and their units (every rank the same) */
    if (rank == 0) {
        char work[4200];
        snprintf(work, sizeof work, "%s/work", o->output);
        st = make_dir(o->output, msg, sizeof msg);
        if (st == PREP_OK)
            st = make_dir(work, msg, sizeof msg);
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (tokenizer_load(o->tokenizer, &tok) != TOK_OK) {
        snprintf(msg, sizeof msg, "%s", tokenizer_errmsg(tok));
        st = PREP_ERR_INPUT;
    }
    if (st == PREP_OK &&
        prep_inputs_scan(o->inputs, o->n_inputs, &in, &n_in, msg, sizeof msg) != PREP_READ_OK)
        st = PREP_ERR_INPUT;
    if (st == PREP_OK && n_in == 0) {
        snprintf(msg, sizeof msg, "no input files");
        st = PREP_ERR_INPUT;
    }
    if (st == PREP_OK &&
        prep_units_make(in, n_in, o->unit_bytes, &units, &n_units) != PREP_READ_OK) {
        snprintf(msg, sizeof msg, "out of memory for the work units");
        st = PREP_ERR_NOMEM;
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("%zu input files in %zu work units; recipe %s, seed %llu, %d rank%s x %d "
                 "thread%s",
                 n_in, n_units, o->recipe.name, (ull)o->recipe.seed, n_ranks,
                 n_ranks > 1 ? "s" : "", o->threads, o->threads > 1 ? "s" : "");

    /* 1. read + tokenize (resumable per unit) */
    if ((st = prep_scan(comm, o, tok, in, units, n_units, err, err_bytes)) != PREP_OK)
        goto done;
    if (rank == 0)
        LOG_INFO("read and tokenized in %.1f s", cluster_now() - t0);

    /* 2-4. numbering, domains, dedup, buckets, selection */
    if ((st = prep_select(comm, o, n_in, units, n_units, &sel, &n_sel, &S, err, err_bytes)) !=
        PREP_OK)
        goto done;
    uint64_t short_total = 0;
    for (int d = 0; d < S.n_domains; d++)
        if (S.budget[d] != UINT64_MAX && S.sel_tokens[d] < S.budget[d]) {
            short_total += S.budget[d] - S.sel_tokens[d];
            if (rank == 0)
                LOG_WARN("domain %s: %llu of %llu budget tokens available (short by %llu)",
                         S.domain[d], (ull)S.sel_tokens[d], (ull)S.budget[d],
                         (ull)(S.budget[d] - S.sel_tokens[d]));
        }
    if (short_total && o->strict) {
        snprintf(err, err_bytes, "%llu tokens short of the budget (--strict)", (ull)short_total);
        st = PREP_ERR_SHORT;
        goto done;
    }
    uint64_t n_rejected = 0;
    for (int r = 1; r < PREP_REJECT_N; r++)
        n_rejected += S.rejects[r];
    if (rank == 0)
        LOG_INFO("%llu records, %llu rejected; %llu documents selected", (ull)S.n_records,
                 (ull)n_rejected, (ull)n_sel);

    /* 5-6. packing and shards (resumable per shard) */
    if ((st = prep_pack(comm, o, tok, sel, n_sel, n_seqs, n_shards, err, err_bytes)) != PREP_OK)
        goto done;

    /* 7. manifest, stats, report */
    if (rank == 0) {
        st = prep_write_manifest(o, in, units, sel, n_sel, &S, msg, sizeof msg);
        if (st == PREP_OK)
            st = prep_write_stats(o, in, n_in, &S, n_seqs, n_shards, msg, sizeof msg);
        if (st == PREP_OK)
            st = prep_write_report(o, &S, n_seqs, n_shards, msg, sizeof msg);
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    if (rank == 0) {
        uint64_t tokens = 0;
        for (int d = 0; d < S.n_domains; d++)
            tokens += S.sel_tokens[d];
        LOG_INFO("done in %.1f s: %llu tokens of %llu documents in %s", cluster_now() - t0,
                 (ull)tokens, (ull)n_sel, o->output);
    }
done:
    prep_stats_free(&S);
    free(sel);
    free(units);
    prep_inputs_free(in, n_in);
    tokenizer_free(tok);
    return st;
}
