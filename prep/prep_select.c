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
    uint64_t *count = malloc((size_t)n_ranks * sizeof *count);
    hash_rec *recs = malloc((n ? n : 1) * sizeof *recs), *grouped = NULL, *rbuf = NULL;
    int *dest = malloc((n ? n : 1) * sizeof *dest);
    uint64_t *back = NULL, *back_grouped = NULL, *got = NULL;
    size_t n_recv = 0, n_back = 0, n_got = 0;
    int st = count && recs && dest ? PREP_OK : PREP_ERR_NOMEM;
    for (size_t i = 0; st == PREP_OK && i < n; i++) {
        recs[i] = (hash_rec){docs[i].hash[0], docs[i].hash[1], docs[i].doc_id, (uint32_t)rank, 0};
        dest[i] = (int)(docs[i].hash[0] % (uint64_t)n_ranks);
    }
    if (st == PREP_OK &&
        prep_group_take((void **)&recs, n, sizeof *recs, dest, n_ranks, (void **)&grouped, count))
        st = PREP_ERR_NOMEM;
    free(recs);
    free(dest);
    dest = NULL;
    if ((st = cluster_agree(comm, st)) == PREP_OK)
        st = prep_exchange(comm, grouped, count, sizeof *grouped, (void **)&rbuf, &n_recv);
    else
        free(grouped);
    if (st != PREP_OK)
        goto done;
    { /* by (h0, h1, doc_id): rbuf holds the ranks' records in rank order, each rank's in
       * doc_id order (ranks hold increasing ranges), so a stable sort by h0, then each run of
       * equal h0 (a duplicate, or a 64-bit collision: short) by h1, stably (one sort instead
       * of one by h1 and one by h0) */
        uint64_t *keys = malloc((n_recv ? n_recv : 1) * sizeof *keys);
        for (size_t i = 0; keys && i < n_recv; i++)
            keys[i] = rbuf[i].h0;
        int ok = keys && prep_sort_by_key(rbuf, n_recv, sizeof *rbuf, keys) == 0;
        free(keys);
        for (size_t a = 0, b; ok && a < n_recv; a = b) {
            for (b = a + 1; b < n_recv && rbuf[b].h0 == rbuf[a].h0; b++)
                ;
            for (size_t i = a + 1; i < b; i++) { /* insertion: stable */
                hash_rec x = rbuf[i];
                size_t j = i;
                for (; j > a && rbuf[j - 1].h1 > x.h1; j--)
                    rbuf[j] = rbuf[j - 1];
                rbuf[j] = x;
            }
        }
        if (!ok)
            st = PREP_ERR_NOMEM;
    }

    /* every copy after the first (smallest doc_id) of a hash goes back to its holder */
    back = malloc((n_recv ? n_recv : 1) * sizeof *back);
    dest = malloc((n_recv ? n_recv : 1) * sizeof *dest);
    if (!back || !dest)
        st = PREP_ERR_NOMEM;
    for (size_t i = 1; st == PREP_OK && i < n_recv; i++)
        if (rbuf[i].h0 == rbuf[i - 1].h0 && rbuf[i].h1 == rbuf[i - 1].h1) {
            back[n_back] = rbuf[i].doc_id;
            dest[n_back++] = (int)rbuf[i].src;
        }
    free(rbuf);
    if (st == PREP_OK && prep_group_by_dest(back, n_back, sizeof *back, dest, n_ranks,
                                            (void **)&back_grouped, count))
        st = PREP_ERR_NOMEM;
    if ((st = cluster_agree(comm, st)) == PREP_OK)
        st = prep_exchange(comm, back_grouped, count, sizeof *back_grouped, (void **)&got, &n_got);
    else
        free(back_grouped);
    if (st != PREP_OK)
        goto done;
    qsort(got, n_got, sizeof *got, cmp_u64);
    /* docs are in doc_id order: walk both lists */
    for (size_t i = 0, k = 0; i < n && k < n_got; i++) {
        while (k < n_got && got[k] < docs[i].doc_id)
            k++;
        if (k < n_got && got[k] == docs[i].doc_id)
            docs[i].dup = 1;
    }
done:
    free(count);
    free(dest);
    free(back);
    free(got);
    return st;
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
 * when even all of them fall short. Collective: 64 allreduces at most. The caller's work buffer
 * (5 * n_groups) means nothing here can fail on one rank alone. */
static void find_thresholds(MPI_Comm comm, const cand_index *c, int n_groups, const uint64_t *need,
                            uint64_t *thr, uint64_t *work) {
    uint64_t *lo = work, *hi = lo + n_groups, *mid = hi + n_groups, *w = mid + n_groups,
             *gw = w + n_groups;
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

/* ---- the stages, in the order prep_select() runs them ------------------------------------- */

/* What the stages hand on to each other. Each stage returns a status agreed over the ranks
 * (the ones that cannot fail return nothing), so every rank runs the same stages and
 * collectives, and stops after the same one. */
typedef struct {
    MPI_Comm comm;
    const prep_opts *o;
    const prep_recipe *R;
    const prep_unit *units; /* (n_units) */
    size_t n_inputs, n_units;
    int rank, n_ranks;
    prep_stats *S;
    char msg[PREP_ERRMSG_BYTES]; /* this rank's failure */
    char *err;                   /* (err_bytes) the agreed failure, on every rank */
    size_t err_bytes;

    size_t u0, n_mine;    /* this rank's units: [u0, u0 + n_mine) */
    prep_unit_meta *meta; /* (n_mine) */
    uint64_t *counts;     /* (n_units) records per unit, every rank's */
    uint64_t *unit_first; /* (n_units) doc_id of the unit's first record */
    uint64_t *rec_base;   /* (n_units) record number of that record in its input file */
    char *all;            /* every rank's domain names, NUL after each */
    char **names;         /* (n_dom) sorted and unique, into all */
    size_t n_dom;
    doc_t *docs; /* (n_docs) this rank's unique valid documents, doc_id order */
    size_t n_docs;
    int by_bucket, n_groups; /* a group is a domain, or a (domain, bucket) with bucket shares */
    cand_index ci;           /* the documents with copies > 0 */
    uint64_t *need, *thr;    /* (n_groups) weight to pick by key, and the key threshold */
    uint64_t *gsupply;       /* (n_groups) */
    uint32_t *passes;        /* (n_groups) whole passes over the group */
    uint64_t *work;          /* (5 * n_groups) for find_thresholds */
    prep_sel *sel;           /* (n_sel) */
    size_t n_sel;
} select_state;

static int select_agree(select_state *s, int st) {
    return cluster_agree_msg(s->comm, st, s->msg, s->err, s->err_bytes, NULL);
}

static int select_nomem(select_state *s, const char *what) {
    snprintf(s->msg, sizeof s->msg, "out of memory %s", what);
    return PREP_ERR_NOMEM;
}

/* 1. this rank's unit metas; record counts of all units */
static int select_load_metas(select_state *s) {
    int st = PREP_OK;
    s->meta = calloc(s->n_mine ? s->n_mine : 1, sizeof *s->meta);
    s->counts = calloc(s->n_units ? s->n_units : 1, sizeof *s->counts);
    if (!s->meta || !s->counts)
        st = select_nomem(s, "reading unit metas");
    for (size_t k = 0; st == PREP_OK && k < s->n_mine; k++) {
        char path[4200];
        prep_unit_path(path, sizeof path, s->o->output, s->u0 + k, "meta");
        st = prep_unit_meta_read(path, &s->meta[k], s->msg, sizeof s->msg);
        if (st == PREP_OK)
            s->counts[s->u0 + k] = s->meta[k].n_records;
    }
    if ((st = select_agree(s, st)) != PREP_OK)
        return st;
    cluster_allreduce_u64_big(s->counts, s->n_units, s->comm);
    return PREP_OK;
}

/* 2. document ids: records numbered in input order; record numbers inside each file */
static int select_number(select_state *s) {
    s->rec_base = calloc(s->n_units ? s->n_units : 1, sizeof *s->rec_base);
    s->unit_first = calloc(s->n_units ? s->n_units : 1, sizeof *s->unit_first);
    if (!s->rec_base || !s->unit_first)
        return select_agree(s, select_nomem(s, "numbering documents"));
    uint64_t first = 0;
    for (size_t u = 0; u < s->n_units; u++) {
        s->unit_first[u] = first;
        first += s->counts[u];
        s->rec_base[u] = (u > 0 && s->units[u].input == s->units[u - 1].input)
                             ? s->rec_base[u - 1] + s->counts[u - 1]
                             : 0;
    }
    return select_agree(s, PREP_OK);
}

/* 3. domains: the union of every rank's names, sorted; the per-domain statistics */
static int select_domains(select_state *s) {
    const prep_recipe *R = s->R;
    prep_stats *S = s->S;
    int st = PREP_OK;
    size_t local_bytes = 0;
    for (size_t k = 0; k < s->n_mine; k++)
        for (uint32_t i = 0; i < s->meta[k].n_strings; i++)
            local_bytes += strlen(s->meta[k].strings[i]) + 1;
    char *mine = malloc(local_bytes ? local_bytes : 1), *p = mine;
    uint64_t *all_bytes = calloc((size_t)s->n_ranks, sizeof(uint64_t));
    uint64_t *disp = calloc((size_t)s->n_ranks, sizeof(uint64_t));
    if (!mine || !all_bytes || !disp)
        st = select_nomem(s, "gathering domains");
    for (size_t k = 0; st == PREP_OK && k < s->n_mine; k++) {
        const prep_unit_meta *m = &s->meta[k];
        /* only strings used as domains */
        uint8_t *used = calloc(m->n_strings ? m->n_strings : 1, 1);
        if (!used) {
            st = select_nomem(s, "gathering domains");
            break;
        }
        for (uint64_t i = 0; i < m->n_records; i++)
            if (m->recs[i].domain != PREP_NO_SEQ)
                used[m->recs[i].domain] = 1;
        for (uint32_t i = 0; i < m->n_strings; i++)
            if (used[i]) {
                size_t len = strlen(m->strings[i]) + 1;
                memcpy(p, m->strings[i], len);
                p += len;
            }
        free(used);
    }
    if ((st = select_agree(s, st)) != PREP_OK)
        goto done;
    uint64_t my_bytes = (uint64_t)(p - mine);
    MPI_Allgather(&my_bytes, 1, MPI_UINT64_T, all_bytes, 1, MPI_UINT64_T, s->comm);
    size_t total = 0;
    for (int r = 0; r < s->n_ranks; r++) {
        disp[r] = total;
        total += (size_t)all_bytes[r];
    }
    s->all = malloc(total ? total : 1);
    if ((st = select_agree(s, s->all ? PREP_OK : select_nomem(s, "gathering domains"))) != PREP_OK)
        goto done;
    if (cluster_allgatherv_big(mine, my_bytes, s->all, all_bytes, disp, 1, s->comm) != CLUSTER_OK) {
        snprintf(s->msg, sizeof s->msg, "gathering the domain names failed (out of memory?)");
        st = PREP_ERR_NOMEM;
        total = 0;
    }
    size_t n_names = 0;
    for (size_t i = 0; i < total; i++)
        n_names += s->all[i] == '\0';
    s->names = malloc((n_names ? n_names : 1) * sizeof *s->names);
    if (!s->names) {
        st = select_nomem(s, "sorting domains");
        goto agree;
    }
    for (size_t i = 0, k = 0; i < total; i += strlen(s->all + i) + 1)
        s->names[k++] = s->all + i;
    qsort(s->names, n_names, sizeof *s->names, cmp_str);
    for (size_t i = 0; i < n_names; i++)
        if (s->n_dom == 0 || strcmp(s->names[i], s->names[s->n_dom - 1]) != 0)
            s->names[s->n_dom++] = s->names[i];
    /* the names are every rank's: so are these checks */
    if (s->n_dom > PREP_MAX_DOMAINS) {
        snprintf(s->msg, sizeof s->msg, "%zu domains in the data; at most %d", s->n_dom,
                 PREP_MAX_DOMAINS);
        st = PREP_ERR_RECIPE;
    }
    if (st == PREP_OK && !R->shares_as_input)
        st = check_shares(R, s->names, s->n_dom, s->msg, sizeof s->msg);

    const size_t n_dom = s->n_dom;
    S->n_domains = (int)n_dom;
    S->n_buckets = R->n_edges;
    S->domain = calloc(n_dom ? n_dom : 1, sizeof *S->domain);
    int ok = S->domain != NULL;
    for (size_t d = 0; ok && d < n_dom; d++)
        ok = (S->domain[d] = strdup(s->names[d])) != NULL;
#define ALLOC_D(f) ok = (S->f = calloc(n_dom ? n_dom : 1, sizeof *S->f)) && ok
    ALLOC_D(docs);
    ALLOC_D(dups);
    ALLOC_D(supply);
    ALLOC_D(budget);
    ALLOC_D(sel_docs);
    ALLOC_D(sel_copies);
    ALLOC_D(sel_tokens);
    ALLOC_D(share_target);
#undef ALLOC_D
    size_t nh = (n_dom ? n_dom : 1) * (size_t)R->n_edges;
    ok = (S->hist_docs_before = calloc(nh, sizeof(uint64_t))) && ok;
    ok = (S->hist_tokens_before = calloc(nh, sizeof(uint64_t))) && ok;
    ok = (S->hist_docs_after = calloc(nh, sizeof(uint64_t))) && ok;
    ok = (S->hist_tokens_after = calloc(nh, sizeof(uint64_t))) && ok;
    if (!ok && st == PREP_OK)
        st = select_nomem(s, "for domain statistics");
agree:
    st = select_agree(s, st);
done:
    free(mine);
    free(all_bytes);
    free(disp);
    return st;
}

/* 4. this rank's documents: valid records, with global domain and bucket; record and reject
 * counts per input file */
static int select_documents(select_state *s) {
    const prep_recipe *R = s->R;
    prep_stats *S = s->S;
    int st = PREP_OK;
    size_t n_valid = 0;
    for (size_t k = 0; k < s->n_mine; k++)
        for (uint64_t i = 0; i < s->meta[k].n_records; i++)
            n_valid += s->meta[k].recs[i].reject == PREP_REJECT_NONE;
    s->docs = malloc((n_valid ? n_valid : 1) * sizeof *s->docs);
    uint32_t *dmap = NULL; /* (meta[k].n_strings) string -> domain */
    S->file_records = calloc(s->n_inputs ? s->n_inputs : 1, sizeof(uint64_t));
    S->file_rejects = calloc((s->n_inputs ? s->n_inputs : 1) * PREP_REJECT_N, sizeof(uint64_t));
    if (!s->docs || !S->file_records || !S->file_rejects)
        st = select_nomem(s, "listing documents");
    const uint32_t extra = (uint32_t)(R->bos != 0) + (uint32_t)(R->eos != 0);
    for (size_t k = 0; st == PREP_OK && k < s->n_mine; k++) {
        const prep_unit_meta *m = &s->meta[k];
        size_t u = s->u0 + k, in_idx = s->units[u].input;
        dmap = malloc((m->n_strings ? m->n_strings : 1) * sizeof *dmap);
        if (!dmap) {
            st = select_nomem(s, "listing documents");
            break;
        }
        for (uint32_t i = 0; i < m->n_strings; i++) {
            dmap[i] = UINT32_MAX;
            for (size_t d = 0; d < s->n_dom; d++)
                if (!strcmp(m->strings[i], s->names[d]))
                    dmap[i] = (uint32_t)d;
        }
        S->file_records[in_idx] += m->n_records;
        for (uint64_t i = 0; i < m->n_records; i++) {
            const prep_unit_rec *r = &m->recs[i];
            S->file_rejects[in_idx * PREP_REJECT_N + r->reject] += r->reject != 0;
            if (r->reject)
                continue;
            doc_t *d = &s->docs[s->n_docs++];
            memset(d, 0, sizeof *d);
            d->doc_id = s->unit_first[u] + i;
            d->record = s->rec_base[u] + i;
            d->n_tokens = r->n_tokens + extra;
            d->hash[0] = r->hash[0];
            d->hash[1] = r->hash[1];
            d->unit = (uint32_t)u;
            d->seq = r->seq;
            d->domain = dmap[r->domain];
            d->member = r->member;
            d->bucket = bucket_of(R, d->n_tokens);
        }
        free(dmap);
        dmap = NULL;
    }
    for (size_t k = 0; k < s->n_mine; k++) /* the documents hold what is needed from here on */
        prep_unit_meta_free(&s->meta[k]);
    if ((st = select_agree(s, st)) != PREP_OK)
        return st;
    cluster_allreduce_u64_big(S->file_records, s->n_inputs, s->comm);
    cluster_allreduce_u64_big(S->file_rejects, (uint64_t)s->n_inputs * PREP_REJECT_N, s->comm);
    for (size_t f = 0; f < s->n_inputs; f++) {
        S->n_records += S->file_records[f];
        for (int r = 0; r < PREP_REJECT_N; r++)
            S->rejects[r] += S->file_rejects[f * PREP_REJECT_N + r];
    }
    return PREP_OK;
}

/* 5. exact dedup across ranks (dedup above) */
static int select_dedup(select_state *s) {
    int st = s->R->dedup ? dedup(s->comm, s->docs, s->n_docs) : PREP_OK;
    if (st != PREP_OK)
        snprintf(s->err, s->err_bytes, "dedup failed (out of memory on some rank)");
    return st;
}

/* 5. what survives dedup, per domain and per (domain, bucket) */
static void select_supply(select_state *s) {
    prep_stats *S = s->S;
    const size_t nb = (size_t)s->R->n_edges, n_dom = s->n_dom;
    for (size_t i = 0; i < s->n_docs; i++) {
        const doc_t *d = &s->docs[i];
        S->docs[d->domain]++;
        if (d->dup) {
            S->dups[d->domain]++;
            continue;
        }
        S->supply[d->domain] += d->n_tokens;
        S->hist_docs_before[d->domain * nb + d->bucket]++;
        S->hist_tokens_before[d->domain * nb + d->bucket] += d->n_tokens;
    }
    cluster_allreduce_u64_big(S->docs, n_dom, s->comm);
    cluster_allreduce_u64_big(S->dups, n_dom, s->comm);
    cluster_allreduce_u64_big(S->supply, n_dom, s->comm);
    cluster_allreduce_u64_big(S->hist_docs_before, n_dom * nb, s->comm);
    cluster_allreduce_u64_big(S->hist_tokens_before, n_dom * nb, s->comm);
}

/* 6. candidates: each unique document's group, selection key and copies (from the bucket
 * weights, or one per pass with bucket shares), indexed by (group, key) */
static int select_candidates(select_state *s) {
    const prep_recipe *R = s->R;
    const int nb = R->n_edges;
    s->by_bucket = R->use_bucket_shares;
    s->n_groups = (int)s->n_dom * (s->by_bucket ? nb : 1);
    const size_t n_groups = (size_t)s->n_groups;
    s->need = calloc(n_groups ? n_groups : 1, sizeof *s->need);
    s->thr = calloc(n_groups ? n_groups : 1, sizeof *s->thr);
    s->gsupply = calloc(n_groups ? n_groups : 1, sizeof *s->gsupply);
    s->passes = calloc(n_groups ? n_groups : 1, sizeof *s->passes);
    s->work = calloc(n_groups ? 5 * n_groups : 1, sizeof *s->work);
    const uint64_t order_salt = prep_mix64(R->seed + 0x6f72646572ull);
    size_t n_cand = 0;
    for (size_t i = 0; i < s->n_docs; i++) {
        doc_t *d = &s->docs[i];
        if (d->dup)
            continue;
        d->group = s->by_bucket ? d->domain * (uint32_t)nb + d->bucket : d->domain;
        d->key = prep_mix64(d->doc_id ^ order_salt); /* a bijection: keys are unique */
        if (s->by_bucket) {
            d->copies = 1; /* per pass; passes decided in select_thresholds */
        } else {
            const double *w = R->weights;
            for (int k = 0; k < R->n_domains; k++)
                if (R->domains[k].has_weights && !strcmp(R->domains[k].name, s->names[d->domain]))
                    w = R->domains[k].weights;
            double wb = w[d->bucket], fl = floor(wb);
            uint64_t c = (uint64_t)fl + (uniform(R->seed, d->doc_id, 0x636f70696573ull) < wb - fl);
            d->copies = (uint32_t)(c < R->max_copies ? c : R->max_copies);
        }
        n_cand += d->copies > 0;
    }
    cand_index *ci = &s->ci;
    ci->by_key = malloc((n_cand ? n_cand : 1) * sizeof *ci->by_key);
    ci->prefix = calloc(n_cand + 1, sizeof *ci->prefix);
    ci->group_begin = calloc(n_groups + 1, sizeof *ci->group_begin);
    uint64_t *keys = malloc((n_cand ? n_cand : 1) * sizeof *keys);
    int ok = s->need && s->thr && s->gsupply && s->passes && s->work && ci->by_key && ci->prefix &&
             ci->group_begin && keys;
    for (size_t i = 0; ok && i < s->n_docs; i++)
        if (!s->docs[i].dup && s->docs[i].copies > 0)
            ci->by_key[ci->n++] = &s->docs[i];
    /* by (group, key): by key, then stably by group */
    for (size_t i = 0; ok && i < ci->n; i++)
        keys[i] = ci->by_key[i]->key;
    ok = ok && prep_sort_by_key(ci->by_key, ci->n, sizeof *ci->by_key, keys) == 0;
    for (size_t i = 0; ok && i < ci->n; i++)
        keys[i] = ci->by_key[i]->group;
    ok = ok && prep_sort_by_key(ci->by_key, ci->n, sizeof *ci->by_key, keys) == 0;
    free(keys);
    if (!ok) {
        snprintf(s->msg, sizeof s->msg, "selection ran out of memory");
        return select_agree(s, PREP_ERR_NOMEM);
    }
    for (size_t i = 0; i < ci->n; i++)
        ci->prefix[i + 1] = ci->prefix[i] + ci->by_key[i]->n_tokens * ci->by_key[i]->copies;
    for (size_t i = 0, g = 0; g <= n_groups; g++) {
        while (i < ci->n && ci->by_key[i]->group < g)
            i++;
        ci->group_begin[g] = i;
    }
    return select_agree(s, PREP_OK);
}

/* 6. thresholds: per group, whole passes and then the smallest keys (find_thresholds) until
 * the budget is met; the copies of every candidate */
static void select_thresholds(select_state *s) {
    const prep_recipe *R = s->R;
    const int nb = R->n_edges, n_groups = s->n_groups, by_bucket = s->by_bucket;
    const cand_index *ci = &s->ci;
    uint64_t *need = s->need, *gsupply = s->gsupply;
    uint32_t *passes = s->passes;
    for (int g = 0; g < n_groups; g++)
        gsupply[g] = ci->prefix[ci->group_begin[g + 1]] - ci->prefix[ci->group_begin[g]];
    MPI_Allreduce(MPI_IN_PLACE, gsupply, n_groups, MPI_UINT64_T, MPI_SUM, s->comm);
    for (int g = 0; g < n_groups; g++) {
        uint64_t budget = by_bucket ? s->S->budget[g / nb] : s->S->budget[g];
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
    find_thresholds(s->comm, ci, n_groups, need, s->thr, s->work);
    for (size_t i = 0; i < ci->n; i++) {
        doc_t *d = ci->by_key[i];
        int g = (int)d->group;
        if (by_bucket)
            d->copies = passes[g] + (need[g] > 0 && d->key <= s->thr[g]);
        else if (!(need[g] > 0 && d->key <= s->thr[g]))
            d->copies = 0;
    }
}

/* 7. the selected documents of this rank's units, in doc_id order */
static int select_keep(select_state *s) {
    prep_stats *S = s->S;
    const size_t nb = (size_t)s->R->n_edges, n_dom = s->n_dom;
    for (size_t i = 0; i < s->n_docs; i++)
        if (!s->docs[i].dup && s->docs[i].copies > 0) {
            const doc_t *d = &s->docs[i];
            s->n_sel++;
            S->sel_docs[d->domain]++;
            S->sel_copies[d->domain] += d->copies;
            S->sel_tokens[d->domain] += d->n_tokens * d->copies;
            S->hist_docs_after[d->domain * nb + d->bucket] += d->copies;
            S->hist_tokens_after[d->domain * nb + d->bucket] += d->n_tokens * d->copies;
        }
    s->sel = malloc((s->n_sel ? s->n_sel : 1) * sizeof *s->sel);
    if (!s->sel)
        snprintf(s->msg, sizeof s->msg, "selection ran out of memory");
    int st = select_agree(s, s->sel ? PREP_OK : PREP_ERR_NOMEM);
    if (st != PREP_OK)
        return st;
    for (size_t i = 0, k = 0; i < s->n_docs; i++)
        if (!s->docs[i].dup && s->docs[i].copies > 0) {
            const doc_t *d = &s->docs[i];
            prep_sel *o = &s->sel[k++];
            memset(o, 0, sizeof *o);
            o->doc_id = d->doc_id;
            o->record = d->record;
            o->n_tokens = d->n_tokens;
            o->unit = d->unit;
            o->seq = d->seq;
            o->domain = d->domain;
            o->copies = d->copies;
            o->member = d->member;
        }
    cluster_allreduce_u64_big(S->sel_docs, n_dom, s->comm);
    cluster_allreduce_u64_big(S->sel_copies, n_dom, s->comm);
    cluster_allreduce_u64_big(S->sel_tokens, n_dom, s->comm);
    cluster_allreduce_u64_big(S->hist_docs_after, n_dom * nb, s->comm);
    cluster_allreduce_u64_big(S->hist_tokens_after, n_dom * nb, s->comm);
    return PREP_OK;
}

static void select_state_free(select_state *s) {
    for (size_t k = 0; s->meta && k < s->n_mine; k++)
        prep_unit_meta_free(&s->meta[k]);
    free(s->meta);
    free(s->counts);
    free(s->unit_first);
    free(s->rec_base);
    free(s->all);
    free(s->names);
    free(s->docs);
    free(s->ci.by_key);
    free(s->ci.prefix);
    free(s->ci.group_begin);
    free(s->need);
    free(s->thr);
    free(s->gsupply);
    free(s->passes);
    free(s->work);
    free(s->sel);
}

/* ---- the stage ----------------------------------------------------------------------------- */

int prep_select(MPI_Comm comm, const prep_opts *o, size_t n_inputs, const prep_unit *units,
                size_t n_units, prep_sel **sel_out, size_t *n_sel_out, prep_stats *S, char *err,
                size_t err_bytes) {
    select_state s = {.comm = comm,
                      .o = o,
                      .R = &o->recipe,
                      .units = units,
                      .n_inputs = n_inputs,
                      .n_units = n_units,
                      .S = S,
                      .err = err,
                      .err_bytes = err_bytes};
    MPI_Comm_rank(comm, &s.rank);
    MPI_Comm_size(comm, &s.n_ranks);
    s.u0 = prep_unit_begin(s.rank, n_units, s.n_ranks);
    s.n_mine = prep_unit_begin(s.rank + 1, n_units, s.n_ranks) - s.u0;
    memset(S, 0, sizeof *S);
    *sel_out = NULL;
    *n_sel_out = 0;

    /* every status below is agreed over the ranks: all of them leave after the same stage */
    int st = select_load_metas(&s);
    if (st == PREP_OK)
        st = select_number(&s);
    if (st == PREP_OK)
        st = select_domains(&s);
    if (st == PREP_OK)
        st = select_documents(&s);
    if (st == PREP_OK)
        st = select_dedup(&s);
    if (st == PREP_OK) {
        select_supply(&s);
        select_budgets(s.R, s.names, S);
        st = select_candidates(&s);
    }
    if (st == PREP_OK) {
        select_thresholds(&s);
        st = select_keep(&s);
    }
    if (st == PREP_OK) {
        *sel_out = s.sel;
        *n_sel_out = s.n_sel;
        s.sel = NULL;
    }
    select_state_free(&s);
    return st;
}
