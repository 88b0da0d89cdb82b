/* prep_select.c - stages 2-4: document numbering, domains, exact dedup, length buckets and the
 * mixture selection. Every decision is a function of (doc_id, recipe, seed), so the result
 * does not depend on the number of ranks.
 *
 * Ranks own contiguous ranges of units here (prep_unit_begin, not the dynamic queue of the
 * scan), so the documents of rank r all precede those of rank r + 1: each rank keeps its
 * selected documents, and the manifest is their rows at prefix offsets. */
#include "prep_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull;

/* A unique, valid document on its holding rank. */
typedef struct {
    uint64_t doc_id, record, n_tokens; /* n_tokens: packed */
    uint64_t hash[2];
    uint64_t key; /* selection order */
    uint32_t unit, seq, domain, member;
    uint32_t copies, bucket, group, dup;
} doc_t;

void prep_stats_free(prep_stats *s) {
    if (s->domain)
        for (int d = 0; d < s->n_domains; d++)
            free(s->domain[d]);
    free(s->domain);
    free(s->file_records);
    free(s->file_rejects);
    free(s->docs);
    free(s->dups);
    free(s->supply);
    free(s->budget);
    free(s->sel_docs);
    free(s->sel_copies);
    free(s->sel_tokens);
    free(s->share_target);
    free(s->hist_docs_before);
    free(s->hist_tokens_before);
    free(s->hist_docs_after);
    free(s->hist_tokens_after);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ---- dedup: (hash, doc_id) records sent to the owner of the hash --------------------------- */

typedef struct {
    uint64_t h0, h1, doc_id;
    uint32_t src, pad;
} hash_rec;

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Marks docs[i].dup for every document whose text an earlier doc_id also has. */
static int dedup(MPI_Comm comm, doc_t *docs, size_t n) {
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    uint64_t *scount = calloc((size_t)n_ranks, sizeof(uint64_t)),
             *rcount = calloc((size_t)n_ranks, sizeof(uint64_t));
    uint64_t *sdisp = calloc((size_t)n_ranks, sizeof(uint64_t)),
             *rdisp = calloc((size_t)n_ranks, sizeof(uint64_t));
    hash_rec *sbuf = malloc((n ? n : 1) * sizeof *sbuf), *rbuf = NULL;
    uint64_t *back = NULL, *got = NULL;
    int st = scount && rcount && sdisp && rdisp && sbuf ? PREP_OK : PREP_ERR_NOMEM;
    if (cluster_agree(comm, st) != PREP_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        scount[docs[i].hash[0] % (uint64_t)n_ranks]++;
    for (int r = 1; r < n_ranks; r++)
        sdisp[r] = sdisp[r - 1] + scount[r - 1];
    int *fill = calloc((size_t)n_ranks, sizeof(int));
    if (!fill)
        st = PREP_ERR_NOMEM;
    for (size_t i = 0; fill && i < n; i++) {
        int r = (int)(docs[i].hash[0] % (uint64_t)n_ranks);
        hash_rec *h = &sbuf[sdisp[r] + fill[r]++];
        h->h0 = docs[i].hash[0];
        h->h1 = docs[i].hash[1];
        h->doc_id = docs[i].doc_id;
        h->src = (uint32_t)rank;
        h->pad = 0;
    }
    free(fill);
    MPI_Alltoall(scount, 1, MPI_UINT64_T, rcount, 1, MPI_UINT64_T, comm);
    size_t n_recv = 0;
    for (int r = 0; r < n_ranks; r++) {
        rdisp[r] = n_recv;
        n_recv += (size_t)rcount[r];
    }
    rbuf = malloc((n_recv ? n_recv : 1) * sizeof *rbuf);
    if (!rbuf)
        st = PREP_ERR_NOMEM;
    if (cluster_agree(comm, st) != PREP_OK)
        goto done;
    if (cluster_alltoallv_big(sbuf, scount, sdisp, rbuf, rcount, rdisp, sizeof(hash_rec), comm)) {
        st = PREP_ERR_NOMEM; /* the same on every rank */
        goto done;
    }
    free(sbuf);
    sbuf = NULL;
    { /* by (h0, h1, doc_id): rbuf holds the ranks' records in rank order, each rank's in
       * doc_id order (ranks hold increasing ranges), so a stable sort by h1 and then by h0 */
        uint64_t *keys = malloc((n_recv ? n_recv : 1) * sizeof *keys);
        for (size_t i = 0; keys && i < n_recv; i++)
            keys[i] = rbuf[i].h1;
        int ok = keys && prep_sort_by_key(rbuf, n_recv, sizeof *rbuf, keys) == 0;
        for (size_t i = 0; ok && i < n_recv; i++)
            keys[i] = rbuf[i].h0;
        ok = ok && prep_sort_by_key(rbuf, n_recv, sizeof *rbuf, keys) == 0;
        free(keys);
        if (!ok)
            st = PREP_ERR_NOMEM;
    }

    /* every copy after the first (smallest doc_id) of a hash goes back to its holder */
    memset(scount, 0, (size_t)n_ranks * sizeof(uint64_t));
    for (size_t i = 1; i < n_recv; i++)
        if (rbuf[i].h0 == rbuf[i - 1].h0 && rbuf[i].h1 == rbuf[i - 1].h1)
            scount[rbuf[i].src]++;
    for (int r = 1; r < n_ranks; r++)
        sdisp[r] = sdisp[r - 1] + scount[r - 1];
    size_t n_back = (size_t)sdisp[n_ranks - 1] + (size_t)scount[n_ranks - 1];
    back = malloc((n_back ? n_back : 1) * sizeof *back);
    int *fill2 = calloc((size_t)n_ranks, sizeof(int));
    if (!back || !fill2)
        st = PREP_ERR_NOMEM;
    for (size_t i = 1; st == PREP_OK && i < n_recv; i++)
        if (rbuf[i].h0 == rbuf[i - 1].h0 && rbuf[i].h1 == rbuf[i - 1].h1)
            back[sdisp[rbuf[i].src] + fill2[rbuf[i].src]++] = rbuf[i].doc_id;
    free(fill2);
    free(rbuf);
    rbuf = NULL;
    MPI_Alltoall(scount, 1, MPI_UINT64_T, rcount, 1, MPI_UINT64_T, comm);
    size_t n_got = 0;
    for (int r = 0; r < n_ranks; r++) {
        rdisp[r] = n_got;
        n_got += (size_t)rcount[r];
    }
    got = malloc((n_got ? n_got : 1) * sizeof *got);
    if (!got)
        st = PREP_ERR_NOMEM;
    if (cluster_agree(comm, st) != PREP_OK)
        goto done;
    if (cluster_alltoallv_big(back, scount, sdisp, got, rcount, rdisp, sizeof(uint64_t), comm)) {
        st = PREP_ERR_NOMEM;
        goto done;
    }
    qsort(got, n_got, sizeof *got, cmp_u64);
    /* docs are in doc_id order: walk both lists */
    for (size_t i = 0, k = 0; i < n && k < n_got; i++) {
        while (k < n_got && got[k] < docs[i].doc_id)
            k++;
        if (k < n_got && got[k] == docs[i].doc_id)
            docs[i].dup = 1;
    }
done:
    free(scount);
    free(rcount);
    free(sdisp);
    free(rdisp);
    free(sbuf);
    free(rbuf);
    free(back);
    free(got);
    return cluster_agree(comm, st);
}

/* ---- selection ----------------------------------------------------------------------------- */

/* Local candidates sorted by (group, key) with prefix sums of the weight (tokens x copies). */
typedef struct {
    doc_t **by_key;   /* (n) */
    uint64_t *prefix; /* (n + 1) */
    size_t n;
    size_t *group_begin; /* (n_groups + 1) */
} cand_index;

/* Weight of the local candidates of group g with key <= k. */
static uint64_t weight_upto(const cand_index *c, uint32_t g, uint64_t k) {
    size_t lo = c->group_begin[g], hi = c->group_begin[g + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->by_key[mid]->key <= k)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->prefix[lo] - c->prefix[c->group_begin[g]];
}

/* For every group, the smallest key K with (global weight of keys <= K) >= need[g]; UINT64_MAX
 * when even all of them fall short. Collective: 64 allreduces at most. */
static void find_thresholds(MPI_Comm comm, const cand_index *c, int n_groups, const uint64_t *need,
                            uint64_t *thr) {
    uint64_t *lo = malloc((size_t)n_groups * sizeof *lo),
             *hi = malloc((size_t)n_groups * sizeof *hi);
    uint64_t *mid = malloc((size_t)n_groups * sizeof *mid),
             *w = malloc((size_t)n_groups * sizeof *w);
    uint64_t *gw = malloc((size_t)n_groups * sizeof *gw);
    for (int g = 0; g < n_groups; g++) {
        lo[g] = 0;
        hi[g] = UINT64_MAX;
    }
    for (;;) {
        int active = 0;
        for (int g = 0; g < n_groups; g++) {
            mid[g] = lo[g] < hi[g] ? lo[g] + (hi[g] - lo[g]) / 2 : lo[g];
            active |= lo[g] < hi[g];
            w[g] = weight_upto(c, (uint32_t)g, mid[g]);
        }
        if (!active) /* lo and hi come from global sums: the same on every rank */
            break;
        MPI_Allreduce(w, gw, n_groups, MPI_UINT64_T, MPI_SUM, comm);
        for (int g = 0; g < n_groups; g++) {
            if (lo[g] >= hi[g])
                continue;
            if (gw[g] >= need[g])
                hi[g] = mid[g];
            else
                lo[g] = mid[g] + 1;
        }
    }
    for (int g = 0; g < n_groups; g++)
        thr[g] = lo[g];
    free(lo);
    free(hi);
    free(mid);
    free(w);
    free(gw);
}

static uint32_t bucket_of(const prep_recipe *r, uint64_t n) {
    int b = r->n_edges - 1;
    while (b > 0 && n < r->edges[b])
        b--;
    return (uint32_t)b;
}

/* Uniform in [0, 1) from (seed, doc_id, salt). */
static double uniform(uint64_t seed, uint64_t doc_id, uint64_t salt) {
    uint64_t z = prep_mix64(prep_mix64(seed ^ salt) ^ doc_id);
    return (double)(z >> 11) * 0x1.0p-53;
}

/* ---- domains ------------------------------------------------------------------------------- */

/* Collective. The domains: the union of every rank's names (of strings its records use as
 * domains), sorted, in *names (n_dom, pointing into *all; both malloc'd). A local status
 * (msg set), agreed by the caller. */
static int select_domains(MPI_Comm comm, const prep_unit_meta *meta, size_t n_mine, char **all_out,
                          char ***names_out, size_t *n_dom_out, char *msg, size_t msg_bytes) {
    int n_ranks;
    MPI_Comm_size(comm, &n_ranks);
    int st = PREP_OK;
    char *all = NULL, **names = NULL;
    size_t n_dom = 0;
    size_t local_bytes = 0;
    for (size_t k = 0; k < n_mine; k++)
        for (uint32_t s = 0; s < meta[k].n_strings; s++)
            local_bytes += strlen(meta[k].strings[s]) + 1;
    char *mine = malloc(local_bytes ? local_bytes : 1), *p = mine;
    for (size_t k = 0; mine && k < n_mine; k++) {
        /* only strings used as domains */
        uint8_t *used = calloc(meta[k].n_strings ? meta[k].n_strings : 1, 1);
        for (uint64_t i = 0; used && i < meta[k].n_records; i++)
            if (meta[k].recs[i].domain != PREP_NO_SEQ)
                used[meta[k].recs[i].domain] = 1;
        for (uint32_t s = 0; used && s < meta[k].n_strings; s++)
            if (used[s]) {
                size_t len = strlen(meta[k].strings[s]) + 1;
                memcpy(p, meta[k].strings[s], len);
                p += len;
            }
        free(used);
    }
    uint64_t my_bytes = mine ? (uint64_t)(p - mine) : 0,
             *all_bytes = calloc((size_t)n_ranks, sizeof(uint64_t));
    uint64_t *disp = calloc((size_t)n_ranks, sizeof(uint64_t));
    MPI_Allgather(&my_bytes, 1, MPI_UINT64_T, all_bytes, 1, MPI_UINT64_T, comm);
    size_t total = 0;
    for (int r = 0; r < n_ranks; r++) {
        disp[r] = total;
        total += (size_t)all_bytes[r];
    }
    all = malloc(total ? total : 1);
    if (cluster_allgatherv_big(mine, my_bytes, all, all_bytes, disp, 1, comm) != CLUSTER_OK) {
        snprintf(msg, msg_bytes, "gathering the domain names failed (out of memory?)");
        st = PREP_ERR_NOMEM;
        total = 0;
    }
    free(mine);
    free(all_bytes);
    free(disp);
    size_t n_names = 0;
    for (size_t i = 0; i < total; i++)
        n_names += all[i] == '\0';
    names = malloc((n_names ? n_names : 1) * sizeof *names);
    for (size_t i = 0, k = 0; i < total; i += strlen(all + i) + 1)
        names[k++] = all + i;
    qsort(names, n_names, sizeof *names, cmp_str);
    for (size_t i = 0; i < n_names; i++)
        if (n_dom == 0 || strcmp(names[i], names[n_dom - 1]) != 0)
            names[n_dom++] = names[i];
    if (n_dom > PREP_MAX_DOMAINS) {
        snprintf(msg, msg_bytes, "%zu domains in the data; at most %d", n_dom, PREP_MAX_DOMAINS);
        st = PREP_ERR_RECIPE;
    }
    *all_out = all;
    *names_out = names;
    *n_dom_out = n_dom;
    return st;
}

/* The recipe's explicit shares must match the data's domains exactly. PREP_OK, or
 * PREP_ERR_RECIPE with msg set. */
static int check_shares(const prep_recipe *R, char *const *names, size_t n_dom, char *msg,
                        size_t msg_bytes) {
    int st = PREP_OK;
    for (size_t d = 0; d < n_dom && st == PREP_OK; d++) {
        int found = 0;
        for (int k = 0; k < R->n_domains; k++)
            found |= !strcmp(R->domains[k].name, names[d]) && R->domains[k].share >= 0;
        if (!found) {
            snprintf(msg, msg_bytes,
                     "the data has domain \"%s\", which the recipe's shares "
                     "do not name",
                     names[d]);
            st = PREP_ERR_RECIPE;
        }
    }
    for (int k = 0; k < R->n_domains && st == PREP_OK; k++) {
        int found = 0;
        for (size_t d = 0; d < n_dom; d++)
            found |= !strcmp(R->domains[k].name, names[d]);
        if (!found && R->domains[k].share > 0) {
            snprintf(msg, msg_bytes,
                     "the recipe gives domain \"%s\" a share, but no input "
                     "document has it",
                     R->domains[k].name);
            st = PREP_ERR_RECIPE;
        }
    }
    return st;
}

/* ---- budgets ------------------------------------------------------------------------------ */

/* Each domain's share of the target (the recipe's, or the input's own mixture) and its token
 * budget (UINT64_MAX: no target), from the global supply. Local; the same on every rank. */
static void select_budgets(const prep_recipe *R, char *const *names, prep_stats *S) {
    const size_t n_dom = (size_t)S->n_domains;
    uint64_t supply_all = 0;
    for (size_t d = 0; d < n_dom; d++)
        supply_all += S->supply[d];
    for (size_t d = 0; d < n_dom; d++) {
        double share = 0;
        if (R->shares_as_input)
            share = supply_all ? (double)S->supply[d] / (double)supply_all : 0;
        else
            for (int k = 0; k < R->n_domains; k++)
                if (!strcmp(R->domains[k].name, names[d]))
                    share = R->domains[k].share;
        S->share_target[d] = share;
        S->budget[d] =
            R->target_tokens ? (uint64_t)llround((double)R->target_tokens * share) : UINT64_MAX;
    }
}

/* ---- the stage ----------------------------------------------------------------------------- */

int prep_select(MPI_Comm comm, const prep_opts *o, size_t n_inputs, const prep_unit *units,
                size_t n_units, prep_sel **sel_out, size_t *n_sel_out, prep_stats *S, char *err,
                size_t err_bytes) {
    const prep_recipe *R = &o->recipe;
    int rank, n_ranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &n_ranks);
    memset(S, 0, sizeof *S);
    *sel_out = NULL;
    *n_sel_out = 0;
    char msg[PREP_ERRMSG_BYTES] = "";
    int st = PREP_OK;
    size_t u0 = prep_unit_begin(rank, n_units, n_ranks);
    size_t u1 = prep_unit_begin(rank + 1, n_units, n_ranks);
    size_t n_mine = u1 - u0;
    prep_unit_meta *meta = calloc(n_mine ? n_mine : 1, sizeof *meta);
    uint64_t *counts = calloc(n_units ? n_units : 1, sizeof *counts);
    doc_t *docs = NULL;
    size_t n_docs = 0;
    char **names = NULL, *all = NULL;
    uint32_t **dmap = calloc(n_mine ? n_mine : 1, sizeof *dmap);
    cand_index ci = {0};
    prep_sel *sel = NULL;
    size_t n_dom = 0, n_sel = 0;
    S->file_records = calloc(n_inputs ? n_inputs : 1, sizeof(uint64_t));
    S->file_rejects = calloc((n_inputs ? n_inputs : 1) * PREP_REJECT_N, sizeof(uint64_t));
    if (!meta || !counts || !dmap || !S->file_records || !S->file_rejects)
        st = PREP_ERR_NOMEM;

    /* 1. this rank's unit metas; record counts of all units */
    for (size_t k = 0; st == PREP_OK && k < n_mine; k++) {
        char path[4200];
        prep_unit_path(path, sizeof path, o->output, u0 + k, "meta");
        st = prep_unit_meta_read(path, &meta[k], msg, sizeof msg);
        if (st == PREP_OK)
            counts[u0 + k] = meta[k].n_records;
    }
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    cluster_allreduce_u64_big(counts, n_units, comm);

    /* 2. document ids: records numbered in input order; record numbers inside each file */
    uint64_t first = 0, *rec_base = calloc(n_units ? n_units : 1, sizeof *rec_base);
    uint64_t *unit_first = calloc(n_units ? n_units : 1, sizeof *unit_first);
    if (!rec_base || !unit_first) {
        free(rec_base);
        free(unit_first);
        st = PREP_ERR_NOMEM;
        goto agree;
    }
    for (size_t u = 0; u < n_units; u++) {
        unit_first[u] = first;
        first += counts[u];
        rec_base[u] =
            (u > 0 && units[u].input == units[u - 1].input) ? rec_base[u - 1] + counts[u - 1] : 0;
    }

    /* 3. domains: the union of every rank's names, sorted; the recipe's shares checked */
    st = select_domains(comm, meta, n_mine, &all, &names, &n_dom, msg, sizeof msg);
    if (st == PREP_OK && !R->shares_as_input)
        st = check_shares(R, names, n_dom, msg, sizeof msg);
    S->n_domains = (int)n_dom;
    S->n_buckets = R->n_edges;
    S->domain = calloc(n_dom ? n_dom : 1, sizeof *S->domain);
    for (size_t d = 0; S->domain && d < n_dom; d++)
        S->domain[d] = strdup(names[d]);
#define ALLOC_D(f) S->f = calloc(n_dom ? n_dom : 1, sizeof *S->f)
    ALLOC_D(docs);
    ALLOC_D(dups);
    ALLOC_D(supply);
    ALLOC_D(budget);
    ALLOC_D(sel_docs);
    ALLOC_D(sel_copies);
    ALLOC_D(sel_tokens);
    ALLOC_D(share_target);
    size_t nh = (n_dom ? n_dom : 1) * (size_t)R->n_edges;
    S->hist_docs_before = calloc(nh, sizeof(uint64_t));
    S->hist_tokens_before = calloc(nh, sizeof(uint64_t));
    S->hist_docs_after = calloc(nh, sizeof(uint64_t));
    S->hist_tokens_after = calloc(nh, sizeof(uint64_t));

    /* 4. this rank's documents: valid records, with global domain and bucket */
    size_t n_valid = 0;
    for (size_t k = 0; k < n_mine; k++)
        for (uint64_t i = 0; i < meta[k].n_records; i++)
            n_valid += meta[k].recs[i].reject == PREP_REJECT_NONE;
    docs = malloc((n_valid ? n_valid : 1) * sizeof *docs);
    if (!docs || !names || !S->hist_tokens_after)
        st = PREP_ERR_NOMEM;
    const uint32_t extra = (uint32_t)(R->bos != 0) + (uint32_t)(R->eos != 0);
    for (size_t k = 0; st == PREP_OK && k < n_mine; k++) {
        const prep_unit_meta *m = &meta[k];
        size_t u = u0 + k, in_idx = units[u].input;
        dmap[k] = malloc((m->n_strings ? m->n_strings : 1) * sizeof(uint32_t));
        for (uint32_t s = 0; dmap[k] && s < m->n_strings; s++) {
            dmap[k][s] = UINT32_MAX;
            for (size_t d = 0; d < n_dom; d++)
                if (!strcmp(m->strings[s], names[d]))
                    dmap[k][s] = (uint32_t)d;
        }
        S->file_records[in_idx] += m->n_records;
        for (uint64_t i = 0; i < m->n_records; i++) {
            const prep_unit_rec *r = &m->recs[i];
            S->file_rejects[in_idx * PREP_REJECT_N + r->reject] += r->reject != 0;
            if (r->reject)
                continue;
            doc_t *d = &docs[n_docs++];
            memset(d, 0, sizeof *d);
            d->doc_id = unit_first[u] + i;
            d->record = rec_base[u] + i;
            d->n_tokens = r->n_tokens + extra;
            d->hash[0] = r->hash[0];
            d->hash[1] = r->hash[1];
            d->unit = (uint32_t)u;
            d->seq = r->seq;
            d->domain = dmap[k] ? dmap[k][r->domain] : 0;
            d->member = r->member;
            d->bucket = bucket_of(R, d->n_tokens);
        }
    }
    for (size_t k = 0; k < n_mine; k++) /* the documents hold what is needed from here on */
        prep_unit_meta_free(&meta[k]);
    free(rec_base);
    free(unit_first);
agree:
    if ((st = cluster_agree_msg(comm, st, msg, err, err_bytes, NULL)) != PREP_OK)
        goto done;
    cluster_allreduce_u64_big(S->file_records, n_inputs, comm);
    cluster_allreduce_u64_big(S->file_rejects, (uint64_t)n_inputs * PREP_REJECT_N, comm);
    for (size_t f = 0; f < n_inputs; f++) {
        S->n_records += S->file_records[f];
        for (int r = 0; r < PREP_REJECT_N; r++)
            S->rejects[r] += S->file_rejects[f * PREP_REJECT_N + r];
    }

    /* 5. exact dedup across ranks */
    if (R->dedup && (st = dedup(comm, docs, n_docs)) != PREP_OK) {
        snprintf(err, err_bytes, "dedup failed (out of memory on some rank)");
        goto done;
    }
    const int nb = R->n_edges;
    for (size_t i = 0; i < n_docs; i++) {
        doc_t *d = &docs[i];
        S->docs[d->domain]++;
        if (d->dup) {
            S->dups[d->domain]++;
            continue;
        }
        S->supply[d->domain] += d->n_tokens;
        S->hist_docs_before[d->domain * nb + d->bucket]++;
        S->hist_tokens_before[d->domain * nb + d->bucket] += d->n_tokens;
    }
    cluster_allreduce_u64_big(S->docs, n_dom, comm);
    cluster_allreduce_u64_big(S->dups, n_dom, comm);
    cluster_allreduce_u64_big(S->supply, n_dom, comm);
    cluster_allreduce_u64_big(S->hist_docs_before, n_dom * nb, comm);
    cluster_allreduce_u64_big(S->hist_tokens_before, n_dom * nb, comm);

    /* 6. budgets: per domain, and per (domain, bucket) with bucket shares */
    select_budgets(R, names, S);
    const int by_bucket = R->use_bucket_shares;
    const int n_groups = (int)n_dom * (by_bucket ? nb : 1);
    uint64_t *need = calloc((size_t)(n_groups ? n_groups : 1), sizeof *need);
    uint64_t *thr = calloc((size_t)(n_groups ? n_groups : 1), sizeof *thr);
    uint64_t *gsupply = calloc((size_t)(n_groups ? n_groups : 1), sizeof *gsupply);
    uint32_t *passes = calloc((size_t)(n_groups ? n_groups : 1), sizeof *passes);
    const uint64_t order_salt = prep_mix64(R->seed + 0x6f72646572ull);
    size_t n_cand = 0;
    for (size_t i = 0; i < n_docs; i++) {
        doc_t *d = &docs[i];
        if (d->dup)
            continue;
        d->group = by_bucket ? d->domain * (uint32_t)nb + d->bucket : d->domain;
        d->key = prep_mix64(d->doc_id ^ order_salt); /* a bijection: keys are unique */
        if (by_bucket) {
            d->copies = 1; /* per pass; passes decided below */
        } else {
            const double *w = R->weights;
            for (int k = 0; k < R->n_domains; k++)
                if (R->domains[k].has_weights && !strcmp(R->domains[k].name, names[d->domain]))
                    w = R->domains[k].weights;
            double wb = w[d->bucket], fl = floor(wb);
            uint64_t c = (uint64_t)fl + (uniform(R->seed, d->doc_id, 0x636f70696573ull) < wb - fl);
            d->copies = (uint32_t)(c < R->max_copies ? c : R->max_copies);
        }
        n_cand += d->copies > 0;
    }
    ci.by_key = malloc((n_cand ? n_cand : 1) * sizeof *ci.by_key);
    ci.prefix = calloc(n_cand + 1, sizeof *ci.prefix);
    ci.group_begin = calloc((size_t)n_groups + 1, sizeof *ci.group_begin);
    if (!need || !thr || !gsupply || !passes || !ci.by_key || !ci.prefix || !ci.group_begin) {
        st = PREP_ERR_NOMEM;
        goto selected;
    }
    for (size_t i = 0; i < n_docs; i++)
        if (!docs[i].dup && docs[i].copies > 0)
            ci.by_key[ci.n++] = &docs[i];
    { /* by (group, key): by key, then stably by group */
        uint64_t *keys = malloc((ci.n ? ci.n : 1) * sizeof *keys);
        for (size_t i = 0; keys && i < ci.n; i++)
            keys[i] = ci.by_key[i]->key;
        int ok = keys && prep_sort_by_key(ci.by_key, ci.n, sizeof *ci.by_key, keys) == 0;
        for (size_t i = 0; ok && i < ci.n; i++)
            keys[i] = ci.by_key[i]->group;
        ok = ok && prep_sort_by_key(ci.by_key, ci.n, sizeof *ci.by_key, keys) == 0;
        free(keys);
        if (!ok) {
            st = PREP_ERR_NOMEM;
            goto selected;
        }
    }
    for (size_t i = 0; i < ci.n; i++)
        ci.prefix[i + 1] = ci.prefix[i] + ci.by_key[i]->n_tokens * ci.by_key[i]->copies;
    for (size_t i = 0, g = 0; g <= (size_t)n_groups; g++) {
        while (i < ci.n && ci.by_key[i]->group < g)
            i++;
        ci.group_begin[g] = i;
    }
    for (int g = 0; g < n_groups; g++)
        gsupply[g] = ci.prefix[ci.group_begin[g + 1]] - ci.prefix[ci.group_begin[g]];
    MPI_Allreduce(MPI_IN_PLACE, gsupply, n_groups, MPI_UINT64_T, MPI_SUM, comm);
    for (int g = 0; g < n_groups; g++) {
        uint64_t budget = by_bucket ? S->budget[g / nb] : S->budget[g];
        if (by_bucket && budget != UINT64_MAX)
            budget = (uint64_t)llround((double)budget * R->bucket_shares[g % nb]);
        if (!by_bucket) {
            need[g] = budget;
            continue;
        }
        /* whole passes over the group first (every document once, then twice, ...) */
        if (budget == UINT64_MAX || gsupply[g] == 0) { /* no budget: each document once */
            passes[g] = budget == UINT64_MAX ? 1 : 0;
            need[g] = 0;
            continue;
        }
        uint64_t full = budget / gsupply[g];
        if (full >= R->max_copies) {
            passes[g] = R->max_copies;
            need[g] = 0;
        } else {
            passes[g] = (uint32_t)full;
            need[g] = budget - full * gsupply[g];
        }
    }
    find_thresholds(comm, &ci, n_groups, need, thr);
    for (size_t i = 0; i < ci.n; i++) {
        doc_t *d = ci.by_key[i];
        int g = (int)d->group;
        if (by_bucket)
            d->copies = passes[g] + (need[g] > 0 && d->key <= thr[g]);
        else if (!(need[g] > 0 && d->key <= thr[g]))
            d->copies = 0;
    }

    /* 7. the selected documents of this rank's units, in doc_id order */
    for (size_t i = 0; i < n_docs; i++)
        if (!docs[i].dup && docs[i].copies > 0) {
            doc_t *d = &docs[i];
            n_sel++;
            S->sel_docs[d->domain]++;
            S->sel_copies[d->domain] += d->copies;
            S->sel_tokens[d->domain] += d->n_tokens * d->copies;
            S->hist_docs_after[d->domain * nb + d->bucket] += d->copies;
            S->hist_tokens_after[d->domain * nb + d->bucket] += d->n_tokens * d->copies;
        }
    sel = malloc((n_sel ? n_sel : 1) * sizeof *sel);
    if (!sel) {
        st = PREP_ERR_NOMEM;
        goto selected;
    }
    for (size_t i = 0, k = 0; i < n_docs; i++)
        if (!docs[i].dup && docs[i].copies > 0) {
            doc_t *d = &docs[i];
            prep_sel *s = &sel[k++];
            memset(s, 0, sizeof *s);
            s->doc_id = d->doc_id;
            s->record = d->record;
            s->n_tokens = d->n_tokens;
            s->unit = d->unit;
            s->seq = d->seq;
            s->domain = d->domain;
            s->copies = d->copies;
            s->member = d->member;
        }
selected:
    free(need);
    free(thr);
    free(gsupply);
    free(passes);
    if ((st = cluster_agree(comm, st)) != PREP_OK) {
        snprintf(err, err_bytes, "selection ran out of memory");
        goto done;
    }
    cluster_allreduce_u64_big(S->sel_docs, n_dom, comm);
    cluster_allreduce_u64_big(S->sel_copies, n_dom, comm);
    cluster_allreduce_u64_big(S->sel_tokens, n_dom, comm);
    cluster_allreduce_u64_big(S->hist_docs_after, n_dom * nb, comm);
    cluster_allreduce_u64_big(S->hist_tokens_after, n_dom * nb, comm);
    *sel_out = sel;
    *n_sel_out = n_sel;
    sel = NULL;
done:
    for (size_t k = 0; meta && k < n_mine; k++) {
        prep_unit_meta_free(&meta[k]);
        free(dmap[k]);
    }
    free(meta);
    free(dmap);
    free(counts);
    free(docs);
    free(names);
    free(all);
    free(sel);
    free(ci.by_key);
    free(ci.prefix);
    free(ci.group_begin);
    return st;
}
