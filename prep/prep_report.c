/* prep_report.c - what prep tells the user: manifest.tsv, stats.json, report.md and its SVG
 * charts. The manifest is written by every rank (MPI-IO), the others by rank 0; every file is
 * written to .tmp and renamed. */
#include "plot.h"
#include "prep_internal.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef unsigned long long ull;

static FILE *open_tmp(const char *path, char *tmp, size_t n) {
    snprintf(tmp, n, "%s.tmp", path);
    return fopen(tmp, "wb");
}

static int close_tmp(FILE *f, const char *tmp, const char *path, char *err, size_t err_bytes) {
    int ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, err_bytes, "%s: write: %s", path, strerror(errno));
        unlink(tmp);
        return PREP_ERR_IO;
    }
    return PREP_OK;
}

/* ---- manifest ------------------------------------------------------------------------------ */

static char *put_u64(char *p, uint64_t v) {
    char d[20];
    int k = 0;
    do
        d[k++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (k > 0)
        *p++ = d[--k];
    return p;
}

static char *put_str(char *p, const char *str, size_t len, char end) {
    memcpy(p, str, len);
    p[len] = end;
    return p + len + 1;
}

static size_t u64_len(uint64_t v) {
    size_t k = 1;
    for (; v >= 10; v /= 10)
        k++;
    return k;
}

/* a row's four numbers (at most 20 digits each), six tabs and the newline */
#define ROW_NUMBERS (4 * 20 + 7)

static const char manifest_header[] = "doc_id\tinput\tmember\trecord\tdomain\ttokens\tcopies\n";

/* The rows of a rank's documents, made a piece at a time. */
typedef struct {
    const prep_opts *o;
    const prep_input *in;
    const prep_unit *units;
    const prep_sel *sel;
    const prep_stats *S;
    size_t n_sel, i; /* the next document */
    prep_unit_meta m;
    uint32_t loaded; /* the unit whose meta m is, UINT32_MAX: none */
} rows_t;

/* Document x's member name ("-" if none), loading its unit's meta when it is not loaded:
 * documents come in unit order, so each meta once a pass. */
static int row_member(rows_t *r, const prep_sel *x, const char **member, char *err,
                      size_t err_bytes) {
    *member = "-";
    if (x->member == PREP_NO_SEQ)
        return PREP_OK;
    if (r->loaded != x->unit) {
        prep_unit_meta_free(&r->m);
        char mp[4200];
        prep_unit_path(mp, sizeof mp, r->o->output, x->unit, "meta");
        r->loaded = x->unit;
        int st = prep_unit_meta_read(mp, &r->m, err, err_bytes);
        if (st != PREP_OK)
            return st;
    }
    if (x->member < r->m.n_strings)
        *member = r->m.strings[x->member];
    return PREP_OK;
}

/* The bytes of all this rank's rows (rank 0: with the header), as rows_put writes them, and
 * the most rows_put may need for one. */
static int rows_bytes(rows_t *r, int rank, uint64_t *bytes, size_t *most, char *err,
                      size_t err_bytes) {
    uint64_t n = rank == 0 ? sizeof manifest_header - 1 : 0;
    *most = 0;
    for (size_t i = 0; i < r->n_sel; i++) {
        const prep_sel *x = &r->sel[i];
        const char *member;
        int st = row_member(r, x, &member, err, err_bytes);
        if (st != PREP_OK)
            return st;
        const size_t ls = strlen(r->in[r->units[x->unit].input].path) + strlen(member) +
                          strlen(r->S->domain[x->domain]);
        n += u64_len(x->doc_id) + u64_len(x->record) + u64_len(x->n_tokens) + u64_len(x->copies) +
             ls + 7; /* six tabs and the newline */
        *most = ls + ROW_NUMBERS > *most ? ls + ROW_NUMBERS : *most;
    }
    *bytes = n;
    return PREP_OK;
}

/* The next rows into buf from document r->i on while they end within `limit` bytes (and
 * always one: buf has room for it); *n: the bytes. One row is a few field copies and integer
 * conversions: printf took 2 of the 2.5 s of 4M rows. */
static int rows_put(rows_t *r, char *buf, size_t limit, size_t *n, char *err, size_t err_bytes) {
    char *p = buf;
    for (; r->i < r->n_sel; r->i++) {
        const prep_sel *x = &r->sel[r->i];
        const char *member;
        int st = row_member(r, x, &member, err, err_bytes);
        if (st != PREP_OK)
            return st;
        /* doc_id input member record domain tokens copies */
        const char *path = r->in[r->units[x->unit].input].path, *dom = r->S->domain[x->domain];
        const size_t lp = strlen(path), lm = strlen(member), ld = strlen(dom);
        if (p > buf && (size_t)(p - buf) + lp + lm + ld + ROW_NUMBERS > limit)
            break; /* the next piece's first row */
        p = put_u64(p, x->doc_id);
        *p++ = '\t';
        p = put_str(p, path, lp, '\t');
        p = put_str(p, member, lm, '\t');
        p = put_u64(p, x->record);
        *p++ = '\t';
        p = put_str(p, dom, ld, '\t');
        p = put_u64(p, x->n_tokens);
        *p++ = '\t';
        p = put_u64(p, x->copies);
        *p++ = '\n';
    }
    *n = (size_t)(p - buf);
    return PREP_OK;
}

/* The manifest is written in pieces of this many bytes at the rank's offset (or of the
 * collectives' chunk size when that is smaller, which tests make a row a piece): the whole of
 * a rank's rows in memory was 1.6 GB a rank at 64M short documents on two ranks (about 50
 * bytes a row), on top of the selection, and the top of that rank's peak. */
#define MANIFEST_PIECE ((size_t)16 << 20)

int prep_manifest_write(MPI_Comm comm, const prep_opts *o, const prep_input *in,
                        const prep_unit *units, const prep_sel *sel, size_t n_sel,
                        const prep_stats *S, char *err, size_t err_bytes) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    char path[4200], tmp[4300], msg[PREP_ERRMSG_BYTES] = "";
    snprintf(path, sizeof path, "%s/manifest.tsv", o->output);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    rows_t r = {.o = o, .in = in, .units = units, .sel = sel, .S = S, .n_sel = n_sel};
    r.loaded = UINT32_MAX;
    uint64_t mine = 0, off = 0, total = 0;
    size_t most = 0, piece = cluster_chunk_bytes();
    piece = piece < MANIFEST_PIECE ? piece : MANIFEST_PIECE;
    int st = rows_bytes(&r, rank, &mine, &most, msg, sizeof msg);
    char *buf = st == PREP_OK ? malloc(piece + most + sizeof manifest_header) : NULL;
    if (st == PREP_OK && !buf) {
        snprintf(msg, sizeof msg, "out of memory for the manifest's rows");
        st = PREP_ERR_NOMEM;
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK) {
        prep_unit_meta_free(&r.m);
        free(buf);
        return st;
    }
    MPI_Exscan(&mine, &off, 1, MPI_UINT64_T, MPI_SUM, comm);
    if (rank == 0)
        off = 0;
    MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, comm);
    MPI_File fh = MPI_FILE_NULL;
    if (MPI_File_open(comm, tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh) !=
        MPI_SUCCESS) {
        snprintf(msg, sizeof msg, "%s: cannot create", tmp);
        st = PREP_ERR_IO;
    }
    /* a stale temporary file of a crashed run may be longer: set_size makes it exact */
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) == PREP_OK &&
        MPI_File_set_size(fh, (MPI_Offset)total) != MPI_SUCCESS) {
        snprintf(msg, sizeof msg, "%s: cannot size to %llu bytes", tmp, (ull)total);
        st = PREP_ERR_IO;
    }
    uint64_t done = 0;
    r.loaded = UINT32_MAX; /* the second pass loads the metas again from the first */
    for (int first = 1; st == PREP_OK && (first || r.i < n_sel); first = 0) {
        size_t n = 0;
        if (first && rank == 0) {
            memcpy(buf, manifest_header, sizeof manifest_header - 1);
            n = sizeof manifest_header - 1;
        }
        size_t more = 0;
        if ((st = rows_put(&r, buf + n, piece > n ? piece - n : 0, &more, msg, sizeof msg)) !=
            PREP_OK)
            break;
        n += more;
        char why[200];
        if (done + n > mine) {
            snprintf(msg, sizeof msg, "%s: the rows came out longer than counted (a bug)", tmp);
            st = PREP_ERR_IO;
        } else if (n &&
                   cluster_file_write_at(fh, off + done, buf, n, why, sizeof why) != CLUSTER_OK) {
            snprintf(msg, sizeof msg, "%s: write: %s", tmp, why);
            st = PREP_ERR_IO;
        }
        done += n;
    }
    if (st == PREP_OK && done != mine) {
        snprintf(msg, sizeof msg, "%s: %llu bytes of rows written, %llu counted (a bug)", tmp,
                 (ull)done, (ull)mine);
        st = PREP_ERR_IO;
    }
    if (st == PREP_OK && MPI_File_sync(fh) != MPI_SUCCESS) {
        snprintf(msg, sizeof msg, "%s: cannot sync", tmp);
        st = PREP_ERR_IO;
    }
    prep_unit_meta_free(&r.m);
    free(buf);
    if (fh != MPI_FILE_NULL)
        MPI_File_close(&fh);
    st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
    if (st == PREP_OK && rank == 0 && rename(tmp, path) != 0) {
        snprintf(msg, sizeof msg, "%s: rename: %s", path, strerror(errno));
        st = PREP_ERR_IO;
    }
    if (st != PREP_OK && rank == 0)
        unlink(tmp);
    return cluster_agree_msg(comm, st, msg, err, err_bytes, NULL);
}

/* ---- stats.json ---------------------------------------------------------------------------- */

static json_object *u64_array(const uint64_t *v, int n) {
    json_object *a = json_object_new_array();
    for (int i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_int64((int64_t)v[i]));
    return a;
}

int prep_stats_write(const prep_opts *o, const prep_input *in, size_t n_inputs, const prep_stats *S,
                     const uint64_t *n_seqs, const uint64_t *n_shards, char *err,
                     size_t err_bytes) {
    const prep_recipe *R = &o->recipe;
    const int nb = S->n_buckets;
    json_object *root = json_object_new_object();
    json_object_object_add(root, "longctx_version", json_object_new_string(LONGCTX_VERSION));
    json_object_object_add(root, "recipe", json_object_new_string(R->name));
    json_object_object_add(root, "seed", json_object_new_int64((int64_t)R->seed));
    json_object_object_add(root, "target_tokens", json_object_new_int64((int64_t)R->target_tokens));
    json_object_object_add(root, "bucket_edges", u64_array(R->edges, nb));

    /* reconciliation: records = rejected + duplicates + selected + not selected */
    uint64_t rejected = 0, dups = 0, sel = 0, docs = 0, tokens = 0, supply = 0;
    for (int r = 1; r < PREP_REJECT_N; r++)
        rejected += S->rejects[r];
    for (int d = 0; d < S->n_domains; d++) {
        dups += S->dups[d];
        sel += S->sel_docs[d];
        docs += S->docs[d];
        tokens += S->sel_tokens[d];
        supply += S->supply[d];
    }
    json_object *t = json_object_new_object();
    json_object_object_add(t, "records", json_object_new_int64((int64_t)S->n_records));
    json_object_object_add(t, "rejected", json_object_new_int64((int64_t)rejected));
    json_object_object_add(t, "duplicates", json_object_new_int64((int64_t)dups));
    json_object_object_add(t, "selected", json_object_new_int64((int64_t)sel));
    json_object_object_add(t, "not_selected", json_object_new_int64((int64_t)(docs - dups - sel)));
    json_object_object_add(t, "selected_tokens", json_object_new_int64((int64_t)tokens));
    json_object_object_add(t, "unique_tokens", json_object_new_int64((int64_t)supply));
    json_object *rj = json_object_new_object();
    for (int r = 1; r < PREP_REJECT_N; r++)
        json_object_object_add(rj, prep_reject_name((prep_reject)r),
                               json_object_new_int64((int64_t)S->rejects[r]));
    json_object_object_add(t, "rejects", rj);
    json_object_object_add(root, "totals", t);

    json_object *doms = json_object_new_object();
    for (int d = 0; d < S->n_domains; d++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "documents", json_object_new_int64((int64_t)S->docs[d]));
        json_object_object_add(x, "duplicates", json_object_new_int64((int64_t)S->dups[d]));
        json_object_object_add(x, "unique_tokens", json_object_new_int64((int64_t)S->supply[d]));
        json_object_object_add(x, "share_target", json_object_new_double(S->share_target[d]));
        json_object_object_add(
            x, "budget_tokens",
            S->budget[d] == UINT64_MAX ? NULL : json_object_new_int64((int64_t)S->budget[d]));
        json_object_object_add(x, "selected_documents",
                               json_object_new_int64((int64_t)S->sel_docs[d]));
        json_object_object_add(x, "selected_copies",
                               json_object_new_int64((int64_t)S->sel_copies[d]));
        json_object_object_add(x, "selected_tokens",
                               json_object_new_int64((int64_t)S->sel_tokens[d]));
        json_object_object_add(
            x, "share_achieved",
            json_object_new_double(tokens ? (double)S->sel_tokens[d] / (double)tokens : 0));
        json_object_object_add(
            x, "shortfall_tokens",
            json_object_new_int64(S->budget[d] != UINT64_MAX && S->sel_tokens[d] < S->budget[d]
                                      ? (int64_t)(S->budget[d] - S->sel_tokens[d])
                                      : 0));
        json_object_object_add(x, "hist_docs_before", u64_array(S->hist_docs_before + d * nb, nb));
        json_object_object_add(x, "hist_tokens_before",
                               u64_array(S->hist_tokens_before + d * nb, nb));
        json_object_object_add(x, "hist_docs_after", u64_array(S->hist_docs_after + d * nb, nb));
        json_object_object_add(x, "hist_tokens_after",
                               u64_array(S->hist_tokens_after + d * nb, nb));
        json_object_object_add(doms, S->domain[d], x);
    }
    json_object_object_add(root, "domains", doms);

    json_object *files = json_object_new_array();
    for (size_t f = 0; f < n_inputs; f++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "path", json_object_new_string(in[f].path));
        json_object_object_add(x, "records", json_object_new_int64((int64_t)S->file_records[f]));
        json_object *r = json_object_new_object();
        for (int k = 1; k < PREP_REJECT_N; k++)
            if (S->file_rejects[f * PREP_REJECT_N + k])
                json_object_object_add(
                    r, prep_reject_name((prep_reject)k),
                    json_object_new_int64((int64_t)S->file_rejects[f * PREP_REJECT_N + k]));
        json_object_object_add(x, "rejects", r);
        json_object_array_add(files, x);
    }
    json_object_object_add(root, "files", files);
    json_object *outs = json_object_new_array();
    for (int li = 0; li < R->n_seq_lens; li++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "seq_len", json_object_new_int64((int64_t)R->seq_lens[li]));
        json_object_object_add(x, "sequences", json_object_new_int64((int64_t)n_seqs[li]));
        json_object_object_add(x, "shards", json_object_new_int64((int64_t)n_shards[li]));
        json_object_array_add(outs, x);
    }
    json_object_object_add(root, "outputs", outs);

    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/stats.json", o->output);
    FILE *f = open_tmp(path, tmp, sizeof tmp);
    if (!f) {
        json_object_put(root);
        snprintf(err, err_bytes, "%s: %s", tmp, strerror(errno));
        return PREP_ERR_IO;
    }
    fprintf(
        f, "%s\n",
        json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
    json_object_put(root);
    return close_tmp(f, tmp, path, err, err_bytes);
}

/* ---- report.md and its charts -------------------------------------------------------------- */

/* A grouped bar chart (plot.h): path is "<stem>.svg"; the PNG is written beside it. */
static int svg_bars(const char *path, const char *title, int n_groups, char *const *groups,
                    int n_series, const char *const *series, const double *v, double vmax,
                    const char *unit) {
    char stem[4300], err[256];
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(path) - 4), path);
    return plot_bars(title, (size_t)n_groups, (const char *const *)groups, (size_t)n_series, series,
                     v, vmax, unit, stem, err, sizeof err) == PLOT_OK
               ? 0
               : -1;
}

/* What the charts and the tables share. */
typedef struct {
    const prep_recipe *R;
    const prep_stats *S;
    uint64_t tot_sel; /* selected tokens, copies included */
    int long_b;       /* the first bucket counted as long */
    double *lb, *la;  /* (n_domains) percent of tokens in long documents, before / after; NULL
                         when out of memory (the tables then say 0) */
} report_ctx;

/* The four charts of DIR/report/. @return nonzero if one could not be written. */
static int report_charts(const report_ctx *c, const char *dir, char *err, size_t err_bytes) {
    const prep_recipe *R = c->R;
    const prep_stats *S = c->S;
    const int nd = S->n_domains, nb = S->n_buckets;
    char path[4300];
    double *v = calloc((size_t)(nd + 1) * (size_t)(nb + 1) * 2, sizeof *v); /* (groups, 2) */
    if (!v) {
        snprintf(err, err_bytes, "out of memory");
        return PREP_ERR_NOMEM;
    }
    char blabel[PREP_MAX_BUCKETS][48], *bnames[PREP_MAX_BUCKETS];
    for (int b = 0; b < nb; b++) {
        bnames[b] = blabel[b];
        if (b + 1 < nb)
            snprintf(blabel[b], sizeof blabel[b], "%lluK-%lluK", (ull)R->edges[b] / 1024,
                     (ull)R->edges[b + 1] / 1024);
        else
            snprintf(blabel[b], sizeof blabel[b], ">=%lluK", (ull)R->edges[b] / 1024);
    }
    static const char *const ba[] = {"before", "after"};
    static const char *const ta[] = {"target", "achieved"};
    int bad = 0;
    /* 1. length histograms (token share per bucket) per domain */
    for (int d = 0; d < nd; d++) {
        uint64_t sb = 0, sa = 0;
        for (int b = 0; b < nb; b++) {
            sb += S->hist_tokens_before[d * nb + b];
            sa += S->hist_tokens_after[d * nb + b];
        }
        for (int b = 0; b < nb; b++) {
            v[b * 2] = sb ? 100.0 * (double)S->hist_tokens_before[d * nb + b] / (double)sb : 0;
            v[b * 2 + 1] = sa ? 100.0 * (double)S->hist_tokens_after[d * nb + b] / (double)sa : 0;
        }
        char title[256];
        snprintf(title, sizeof title, "%s: share of tokens by document length", S->domain[d]);
        snprintf(path, sizeof path, "%s/lengths-%d.svg", dir, d);
        bad |= svg_bars(path, title, nb, bnames, 2, ba, v, 100, "%");
    }
    /* 2. domain shares */
    for (int d = 0; d < nd; d++) {
        v[d * 2] = 100.0 * S->share_target[d];
        v[d * 2 + 1] = c->tot_sel ? 100.0 * (double)S->sel_tokens[d] / (double)c->tot_sel : 0;
    }
    snprintf(path, sizeof path, "%s/domain-shares.svg", dir);
    double vmax = 0;
    for (int i = 0; i < 2 * nd; i++)
        vmax = v[i] > vmax ? v[i] : vmax;
    bad |= svg_bars(path, "Domain shares of tokens", nd, S->domain, 2, ta, v, vmax, "%");
    /* 3. long-token share per domain */
    for (int d = 0; c->lb && c->la && d < nd; d++) {
        v[d * 2] = c->lb[d];
        v[d * 2 + 1] = c->la[d];
    }
    snprintf(path, sizeof path, "%s/long-share.svg", dir);
    bad |= svg_bars(path, "Share of tokens in long documents", nd, S->domain, 2, ba, v, 100, "%");
    /* 4. rejects by reason */
    char *rnames[PREP_REJECT_N];
    static const char *const one[] = {"records"};
    double rv[PREP_REJECT_N], rmax = 0;
    for (int r = 1; r < PREP_REJECT_N; r++) {
        rnames[r - 1] = (char *)prep_reject_name((prep_reject)r);
        rv[r - 1] = (double)S->rejects[r];
        rmax = rv[r - 1] > rmax ? rv[r - 1] : rmax;
    }
    snprintf(path, sizeof path, "%s/rejects.svg", dir);
    bad |= svg_bars(path, "Rejected records by reason", PREP_REJECT_N - 1, rnames, 1, one, rv, rmax,
                    "");
    free(v);
    if (bad)
        snprintf(err, err_bytes, "%s: cannot write the report", dir);
    return bad ? PREP_ERR_IO : PREP_OK;
}

/* DIR/report.md: the tables, with the charts linked. */
static int report_markdown(const report_ctx *c, const char *output, const uint64_t *n_seqs,
                           const uint64_t *n_shards, char *err, size_t err_bytes) {
    const prep_recipe *R = c->R;
    const prep_stats *S = c->S;
    const int nd = S->n_domains;
    char rpath[4200], tmp[4300];
    snprintf(rpath, sizeof rpath, "%s/report.md", output);
    FILE *f = open_tmp(rpath, tmp, sizeof tmp);
    if (!f) {
        snprintf(err, err_bytes, "%s/report: cannot write the report", output);
        return PREP_ERR_IO;
    }
    uint64_t rejected = 0, dups = 0, sel = 0, docs = 0;
    for (int r = 1; r < PREP_REJECT_N; r++)
        rejected += S->rejects[r];
    for (int d = 0; d < nd; d++) {
        dups += S->dups[d];
        sel += S->sel_docs[d];
        docs += S->docs[d];
    }
    fprintf(f, "# prep report: recipe %s, seed %llu\n\n", R->name, (ull)R->seed);
    fprintf(f,
            "## Documents\n\n| records read | rejected | duplicates | selected | not selected |\n"
            "|---|---|---|---|---|\n| %llu | %llu | %llu | %llu | %llu |\n\n",
            (ull)S->n_records, (ull)rejected, (ull)dups, (ull)sel, (ull)(docs - dups - sel));
    fprintf(f, "records read = rejected + duplicates + selected + not selected: %s\n\n",
            S->n_records == rejected + docs ? "reconciled" : "**DOES NOT RECONCILE**");
    fprintf(
        f,
        "## Domains\n\n| domain | documents | duplicates | unique tokens | target share | "
        "budget | selected docs | copies | selected tokens | achieved share | long "
        "share before | long share after |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int d = 0; d < nd; d++) {
        char budget[32];
        if (S->budget[d] == UINT64_MAX)
            snprintf(budget, sizeof budget, "all");
        else
            snprintf(budget, sizeof budget, "%llu", (ull)S->budget[d]);
        fprintf(f,
                "| %s | %llu | %llu | %llu | %.4f | %s | %llu | %llu | %llu | %.4f | %.1f%% | "
                "%.1f%% |\n",
                S->domain[d], (ull)S->docs[d], (ull)S->dups[d], (ull)S->supply[d],
                S->share_target[d], budget, (ull)S->sel_docs[d], (ull)S->sel_copies[d],
                (ull)S->sel_tokens[d],
                c->tot_sel ? (double)S->sel_tokens[d] / (double)c->tot_sel : 0,
                c->lb ? c->lb[d] : 0, c->la ? c->la[d] : 0);
    }
    fprintf(f, "\n\"Long\" is documents of at least %llu tokens.\n\n", (ull)R->edges[c->long_b]);
    fprintf(
        f,
        "![domain shares](report/domain-shares.svg)\n\n![long share](report/long-share.svg)\n\n");
    fprintf(f, "## Lengths\n\n");
    for (int d = 0; d < nd; d++)
        fprintf(f, "![%s](report/lengths-%d.svg)\n\n", S->domain[d], d);
    fprintf(f, "## Rejects\n\n| reason | records |\n|---|---|\n");
    for (int r = 1; r < PREP_REJECT_N; r++)
        fprintf(f, "| %s | %llu |\n", prep_reject_name((prep_reject)r), (ull)S->rejects[r]);
    fprintf(f, "\n![rejects](report/rejects.svg)\n\nPer file: see stats.json.\n\n## Output\n\n"
               "| sequence length | sequences | shard files |\n|---|---|---|\n");
    for (int li = 0; li < R->n_seq_lens; li++)
        fprintf(f, "| %llu | %llu | %llu |\n", (ull)R->seq_lens[li], (ull)n_seqs[li],
                (ull)n_shards[li]);
    return close_tmp(f, tmp, rpath, err, err_bytes);
}

int prep_report_write(const prep_opts *o, const prep_stats *S, const uint64_t *n_seqs,
                      const uint64_t *n_shards, char *err, size_t err_bytes) {
    const int nd = S->n_domains, nb = S->n_buckets;
    report_ctx c = {&o->recipe, S, 0, nb > 1 ? 1 : 0, NULL, NULL};
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/report", o->output);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, err_bytes, "%s: %s", dir, strerror(errno));
        return PREP_ERR_IO;
    }
    for (int d = 0; d < nd; d++)
        c.tot_sel += S->sel_tokens[d];
    /* long = documents of at least 4096 tokens (the second edge when there is none at 4096) */
    for (int b = 0; b < nb; b++)
        if (o->recipe.edges[b] == 4096)
            c.long_b = b;
    const size_t ndz = nd > 0 ? (size_t)nd : 1;
    double *lb = calloc(ndz, sizeof *lb), *la = calloc(ndz, sizeof *la);
    for (int d = 0; lb && la && d < nd; d++) {
        uint64_t sb = 0, sa = 0, lbt = 0, lat = 0;
        for (int b = 0; b < nb; b++) {
            sb += S->hist_tokens_before[d * nb + b];
            sa += S->hist_tokens_after[d * nb + b];
            if (b >= c.long_b) {
                lbt += S->hist_tokens_before[d * nb + b];
                lat += S->hist_tokens_after[d * nb + b];
            }
        }
        lb[d] = sb ? 100.0 * (double)lbt / (double)sb : 0;
        la[d] = sa ? 100.0 * (double)lat / (double)sa : 0;
    }
    c.lb = lb && la ? lb : NULL;
    c.la = lb && la ? la : NULL;
    int st = report_charts(&c, dir, err, err_bytes);
    if (st == PREP_OK)
        st = report_markdown(&c, o->output, n_seqs, n_shards, err, err_bytes);
    free(lb);
    free(la);
    return st;
}
