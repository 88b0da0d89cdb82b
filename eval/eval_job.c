/* eval_job.c - what the eval commands share (eval_job.h): the common options, the job's start,
 * the model and state of a group behind the memory plan's check, the output directory
 * (config.json, the journal, resume), rounds of items over the replicas, the greedy answer.
 *
 * Rounds: round r hands sched[r * R + k] to replica k (R replicas) and gathers the round's
 * results on rank 0, which appends them to results.jsonl and syncs the file. Which replica ran
 * an item never shows in the results: a task's item line depends only on the item. */
#include "eval_job.h"
#include "cluster.h"
#include "infer.h"
#include "tokenizer.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ==== options =================================================================================*/

eval_job_opts eval_job_opts_default(const char *cmd) {
    eval_job_opts j;
    memset(&j, 0, sizeof j);
    j.cmd = cmd;
    j.threads = 1;
    j.run = infer_opts_default();
    return j;
}

int eval_parse_long(const char *cmd, const char *s, const char *opt, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    const long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "%s: %s '%s' is not an integer in [%ld, %ld]\n", cmd, opt, s, lo, hi);
        return EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* bytes, with a K, M, G or T suffix (powers of 1024); 0 or -1 */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    const char *units = "KMGT", *u = *end ? strchr(units, *end) : NULL;
    const int shift = u ? 10 * (int)(u - units + 1) : 0;
    if (u)
        end++;
    if (end == s || *s == '-' || *end || errno || v == 0 || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int eval_job_opt(eval_job_opts *j, int c, const char *name, const char *arg) {
    char err[256];
    switch (c) {
    case 'o':
        j->output = arg;
        return 0;
    case 'v':
        j->verbose = 1;
        return 0;
    case EVAL_O_TOK:
        j->tokenizer = arg;
        return 0;
    case EVAL_O_TP:
        return eval_parse_long(j->cmd, arg, "--tp", 0, 1 << 20, &j->tp);
    case EVAL_O_THREADS:
        return eval_parse_long(j->cmd, arg, "--threads", 1, 1024, &j->threads);
    case EVAL_O_TRAIN:
        return eval_parse_long(j->cmd, arg, "--training-length", 1, INT32_MAX, &j->training_length);
    case EVAL_O_MEMLIMIT:
        if (parse_size(arg, &j->mem_limit) == 0)
            return 0;
        fprintf(stderr, "%s: --mem-limit '%s' is not a size in bytes (suffixes K, M, G, T)\n",
                j->cmd, arg);
        return EXIT_USAGE;
    case EVAL_O_RUN:
        if (infer_opts_parse(&j->run, name, arg, err, sizeof err) == INFER_OK)
            return 0;
        fprintf(stderr, "%s: %s\n", j->cmd, err);
        return EXIT_USAGE;
    default:
        return -1;
    }
}

int eval_job_parse(int argc, char **argv, const struct option *task_opts, eval_job_opts *j,
                   int (*task_opt)(void *ctx, int c, const char *arg), void *ctx,
                   void (*usage)(FILE *f)) {
    static const struct option common[] = {EVAL_JOB_OPTIONS,
                                           {"help", no_argument, 0, 'h'},
                                           {"version", no_argument, 0, EVAL_O_VERSION}};
    enum { N_COMMON = sizeof common / sizeof common[0], MAX_OPTS = 64 };
    struct option opts[MAX_OPTS];
    size_t n = 0;
    for (; n < N_COMMON; n++)
        opts[n] = common[n];
    for (const struct option *t = task_opts; t->name && n + 1 < MAX_OPTS; t++)
        opts[n++] = *t;
    memset(&opts[n], 0, sizeof opts[n]);
    optind = 1;
    int c, idx = 0, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "m:o:vh", opts, &idx)) != -1) {
        if (c == 'h' || c == EVAL_O_VERSION) {
            if (c == 'h')
                usage(stdout);
            else
                printf("longctx %s\n", LONGCTX_VERSION);
            return 0;
        }
        if (c == '?') {
            usage(stderr);
            return EXIT_USAGE;
        }
        if ((rc = eval_job_opt(j, c, opts[idx].name, optarg)) < 0)
            rc = task_opt(ctx, c, optarg);
        idx = 0;
    }
    if (rc)
        return rc;
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", j->cmd, argv[optind]);
        return EXIT_USAGE;
    }
    if (!j->output) {
        fprintf(stderr, "%s: --output is required\n", j->cmd);
        return EXIT_USAGE;
    }
    return -1;
}

void eval_run_opts_json(json_object *o, const infer_opts *r) {
    json_object_object_add(o, "kv_dtype",
                           json_object_new_string(r->kv_dtype == INFER_DT_F32 ? "f32" : "bf16"));
    json_object_object_add(o, "act_dtype", json_object_new_string(infer_act_name(r->act_dtype)));
    json_object_object_add(o, "prefill_chunk", json_object_new_int(r->prefill_chunk));
    json_object_object_add(o, "mem_topk", json_object_new_int(r->mem_topk));
}

/* ==== the job =================================================================================*/

int eval_job_run(MPI_Comm world, int rc, const eval_job_opts *j,
                 int (*job)(void *ctx, const cluster_groups *cg), void *ctx) {
    cluster_groups cg;
    if (rc < 0 && cluster_groups_make(world, (int)j->tp, &cg) != CLUSTER_OK) {
        fprintf(stderr,
                "%s: --tp %ld must divide the %d MPI ranks (world size = replicas x "
                "tensor-parallel size)\n",
                j->cmd, j->tp, cg.size);
        rc = EXIT_USAGE;
    }
    if (rc < 0) {
        cluster_log_setup("eval", cg.rank, cg.size,
                          j->verbose ? CLUSTER_LOG_DEBUG : CLUSTER_LOG_INFO);
        cluster_signals_install();
        rc = job(ctx, &cg);
        cluster_groups_free(&cg);
    }
    return rc;
}

int eval_world_failure(const cluster_groups *cg, int rc) {
    int failed = -1;
    if (cg->size == 1)
        return rc;
    char msg[1024] = "", got[1024];
    if (rc)
        cluster_log_last_error(msg, sizeof msg);
    const int st = cluster_agree_msg(cg->world, rc ? -rc : 0, msg, got, sizeof got, &failed);
    if (st < 0 && cg->rank == 0 && failed != 0)
        LOG_ERROR("rank %d failed: %s", failed, got[0] ? got : "(no message)");
    return st < 0 ? -st : 0;
}

int eval_tokenizer_load(const eval_job_opts *j, const char *model_dir, int required,
                        tokenizer **out) {
    static const char *names[] = {"tokenizer.json", "tokenizer.model"};
    char path[4200];
    *out = NULL;
    for (int i = 0; i < 2 || j->tokenizer; i++) {
        if (j->tokenizer)
            snprintf(path, sizeof path, "%s", j->tokenizer);
        else
            snprintf(path, sizeof path, "%s/%s", model_dir, names[i]);
        if (!j->tokenizer && access(path, R_OK) != 0)
            continue;
        if (tokenizer_load(path, out) == TOK_OK)
            return 0;
        LOG_ERROR("%s: %s", path, tokenizer_errmsg(*out));
        tokenizer_free(*out);
        *out = NULL;
        return EXIT_USAGE;
    }
    if (!required)
        return 0;
    LOG_ERROR("%s has no tokenizer.json or tokenizer.model: give --tokenizer FILE", model_dir);
    return EXIT_USAGE;
}

/* o against the model's config and the plan of a rank against --mem-limit, before anything is
 * loaded or written: a run that cannot fit is refused in seconds, not after the weights are
 * read */
static int plan_check(const eval_job_opts *j, const cluster_groups *cg, const char *path,
                      const infer_opts *o) {
    infer_config c;
    int wbytes = 4;
    char err[512] = "";
    int st = infer_config_load(path, &c, &wbytes, err, sizeof err);
    if (st != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), err);
        return st == INFER_ERR_IO ? EXIT_RUNTIME : EXIT_USAGE;
    }
    if (infer_opts_check(&c, o, cg->tp_size, err, sizeof err) != INFER_OK) {
        LOG_ERROR("%s: %s", path, err);
        return EXIT_USAGE;
    }
    infer_plan p;
    infer_plan_make(&c, wbytes, o, cg->tp_size, &p);
    const double G = 1073741824.0;
    if (j->mem_limit && p.total_bytes > j->mem_limit) {
        LOG_ERROR("%s: a rank of tensor-parallel size %d needs %llu bytes (%.2f GiB: weights "
                  "%.2f, KV cache %.2f for %d positions, activations %.2f), more than --mem-limit "
                  "%llu bytes (%.2f GiB); try --kv-dtype bf16, a larger --tp, a smaller "
                  "--prefill-chunk or shorter --lengths",
                  path, cg->tp_size, (unsigned long long)p.total_bytes, p.total_bytes / G,
                  p.weights_bytes / G, p.kv_bytes / G, o->max_ctx, p.act_bytes / G,
                  (unsigned long long)j->mem_limit, j->mem_limit / G);
        return EXIT_USAGE;
    }
    LOG_INFO("%s: the plan of a rank: %llu bytes (%.2f GiB: weights %.2f, KV cache %.2f for %d "
             "positions, activations %.2f)%s",
             path, (unsigned long long)p.total_bytes, p.total_bytes / G, p.weights_bytes / G,
             p.kv_bytes / G, o->max_ctx, p.act_bytes / G,
             j->mem_limit ? ", within --mem-limit" : "");
    return 0;
}

int eval_plan_check(const eval_job_opts *j, const cluster_groups *cg, const char *path,
                    infer_opts o) {
    o.threads = (int)j->threads;
    return cluster_agree_first(cg->world, plan_check(j, cg, path, &o));
}

int eval_model_open(const eval_job_opts *j, const cluster_groups *cg, const char *path,
                    infer_opts o, infer_model **m, infer_state **s) {
    *m = NULL;
    *s = NULL;
    o.threads = (int)j->threads;
    int rc = 0, st;
    if ((st = infer_model_load(path, cg->tp, m)) != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), infer_model_errmsg(*m));
        rc = st == INFER_ERR_ARG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    rc = cluster_agree_first(cg->world, rc);
    if (rc == 0 && (st = infer_state_create(*m, &o, cg->tp, s)) != INFER_OK) {
        LOG_ERROR("cannot create the state for %d positions: %s", o.max_ctx, infer_strerror(st));
        rc = EXIT_RUNTIME;
    }
    rc = cluster_agree_first(cg->world, rc);
    if (rc) {
        infer_state_free(*s);
        infer_model_free(*m);
        *s = NULL;
        *m = NULL;
    }
    return rc;
}

int eval_keep_row(void *sink, int pos, const float *logits) {
    eval_last_sink *k = sink;
    (void)pos;
    memcpy(k->row, logits, k->V * sizeof *k->row);
    return infer_logits_find_nonfinite(logits, k->V) >= 0 ? INFER_ERR_NUMERIC : 0;
}

/* ==== the output directory ====================================================================*/

char *eval_path(const char *dir, const char *name) {
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int eval_model_hash_hex(const char *path, char hex[17]) {
    uint64_t h;
    char err[512] = "";
    const int st = infer_model_hash(path, &h, err, sizeof err);
    if (st != INFER_OK) {
        LOG_ERROR("%s: %s", infer_strerror(st), err);
        return EXIT_RUNTIME;
    }
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
    LOG_INFO("model %s: hash %s (xxh3-64 of its config and tensor headers)", path, hex);
    return 0;
}

/* the whole file, NUL-terminated (malloc'd); NULL with errno (ENOENT: there is none) */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) + 1 == cap) {
            char *q = realloc(b, cap *= 2);
            if (!q)
                free(b);
            b = q;
        }
    const int bad = ferror(f);
    fclose(f);
    if (!b || bad) {
        free(b);
        errno = b ? EIO : ENOMEM;
        return NULL;
    }
    b[len] = '\0';
    *n = len;
    return b;
}

/* the keys a model's identity is recorded under: its path (informational once there is a
 * hash) and its hash; a string, or an array for several models */
static int model_key(const char *k) {
    return !strcmp(k, "model") || !strcmp(k, "models") || !strcmp(k, "model_hash");
}

static const char *str_at(json_object *v, size_t k) {
    if (json_object_is_type(v, json_type_array))
        v = json_object_array_get_idx(v, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

/* The models of a rerun: the same hashes in the same order (then their paths are only logged),
 * or no hash in either config and the same paths. 0, or EXIT_USAGE (logged). */
static int models_check(const char *cpath, json_object *old, json_object *cur) {
    json_object *ho = NULL, *hc = NULL, *po = NULL, *pc = NULL;
    json_object_object_get_ex(old, "model_hash", &ho);
    json_object_object_get_ex(cur, "model_hash", &hc);
    if (!json_object_object_get_ex(old, "models", &po))
        json_object_object_get_ex(old, "model", &po);
    if (!json_object_object_get_ex(cur, "models", &pc))
        json_object_object_get_ex(cur, "model", &pc);
    const int many = json_object_is_type(pc, json_type_array);
    const size_t n = many ? json_object_array_length(pc) : 1;
    if (!ho && !hc && json_object_equal(po, pc))
        return 0; /* no hash: the paths are the identity */
    if (!ho || !hc || json_object_get_type(ho) != json_object_get_type(hc) ||
        json_object_get_type(po) != json_object_get_type(pc) ||
        (many && json_object_array_length(po) != n) ||
        (many && json_object_array_length(ho) != n)) {
        LOG_ERROR("%s holds another run's configuration (%s differ): give another --output, or "
                  "remove the directory to start over",
                  cpath,
                  ho && hc     ? "the models"
                  : !ho && !hc ? "model"
                               : "model_hash");
        return EXIT_USAGE;
    }
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        const char *a = str_at(ho, k), *b = str_at(hc, k);
        if (strcmp(a, b)) {
            LOG_ERROR("%s holds another run's configuration: model %s has hash %s, the model of "
                      "the run there (%s) had %s: another model (config.json or a tensor header "
                      "differs); give another --output, or remove the directory to start over",
                      cpath, str_at(pc, k), b, str_at(po, k), a);
            rc = EXIT_USAGE;
        } else if (strcmp(str_at(po, k), str_at(pc, k))) {
            LOG_INFO("model %s: the same model (hash %s) as the run there had at %s (the path is "
                     "informational)",
                     str_at(pc, k), b, str_at(po, k));
        }
    }
    return rc;
}

/* A rerun's config against the one in the directory: 0 or EXIT_USAGE (logged, naming the keys
 * that differ). */
static int config_check(const char *cpath, const char *old_text, const char *config) {
    json_object *old = json_tokener_parse(old_text), *cur = json_tokener_parse(config);
    int rc = 0;
    if (!json_object_is_type(old, json_type_object) || !cur) {
        LOG_ERROR("%s is not the config.json of an eval run: give another --output", cpath);
        rc = EXIT_USAGE;
    }
    char keys[512] = "";
    for (int pass = 0; rc == 0 && pass < 2; pass++) { /* keys of cur, then those of old only */
        json_object_object_foreach(pass ? old : cur, k, v) {
            json_object *w = NULL;
            const int there = json_object_object_get_ex(pass ? cur : old, k, &w);
            if (model_key(k) || (pass && there) || (there && json_object_equal(v, w)))
                continue;
            const size_t at = strlen(keys);
            snprintf(keys + at, sizeof keys - at, "%s%s", at ? ", " : "", k);
        }
    }
    if (rc == 0 && keys[0]) {
        LOG_ERROR("%s holds another run's configuration (%s differ): give another --output, or "
                  "remove the directory to start over",
                  cpath, keys);
        rc = EXIT_USAGE;
    }
    if (rc == 0)
        rc = models_check(cpath, old, cur);
    json_object_put(old);
    json_object_put(cur);
    return rc;
}

/* Rank 0: the directory, its config (a rerun must match it), and the lines of items finished
 * before (a last line cut by a kill is dropped and cut from the file). An exit code. */
static int dir_open(eval_out *o, const char *config, eval_line_item_fn line_item, void *ctx) {
    if (mkdir(o->dir, 0777) != 0 && errno != EEXIST) {
        LOG_ERROR("%s: %s", o->dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    char *cpath = eval_path(o->dir, "config.json"), *rpath = eval_path(o->dir, "results.jsonl");
    int rc = cpath && rpath ? 0 : EXIT_RUNTIME;
    size_t n = 0;
    errno = 0;
    char *old = rc ? NULL : slurp(cpath, &n);
    if (rc == 0 && !old && errno != ENOENT) {
        LOG_ERROR("%s: %s", cpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && old)
        rc = config_check(cpath, old, config);
    struct stat sb;
    if (rc == 0 && !old && stat(rpath, &sb) == 0) { /* a journal of unknown origin: not ours */
        LOG_ERROR("%s exists but %s does not: results of another run; give another --output, or "
                  "remove them to start over",
                  rpath, cpath);
        rc = EXIT_USAGE;
    }
    if (rc == 0 && !old) {
        FILE *f = fopen(cpath, "wb");
        if (!f || fputs(config, f) < 0 || fclose(f) != 0) {
            LOG_ERROR("%s: %s", cpath, strerror(errno));
            rc = EXIT_RUNTIME;
        }
    }
    errno = 0;
    char *res = rc == 0 && old ? slurp(rpath, &n) : NULL;
    if (rc == 0 && old && !res && errno != ENOENT) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    size_t keep = 0; /* bytes of whole lines */
    for (size_t at = 0, lineno = 1; res && at < n; lineno++) {
        char *nl = memchr(res + at, '\n', n - at);
        if (!nl)
            break; /* cut by a kill: dropped */
        *nl = '\0';
        uint64_t item;
        if (!line_item(res + at, ctx, &item) || item >= o->n_items) {
            LOG_ERROR("%s: line %zu is not an item of this run", rpath, lineno);
            rc = EXIT_RUNTIME;
            break;
        }
        if (!o->lines[item]) {
            if (!(o->lines[item] = strdup(res + at))) {
                rc = EXIT_RUNTIME;
                break;
            }
            o->n_done++;
        }
        at = (size_t)(nl - res) + 1;
        keep = at;
    }
    if (rc == 0 && res && keep < n && truncate(rpath, (off_t)keep) != 0) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    if (rc == 0 && !(o->journal = fopen(rpath, "ab"))) {
        LOG_ERROR("%s: %s", rpath, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(res);
    free(old);
    free(cpath);
    free(rpath);
    return rc;
}

int eval_out_open(eval_out *o, const cluster_groups *cg, int rc, const char *dir,
                  const char *config, size_t n_items, eval_line_item_fn line_item, void *ctx) {
    memset(o, 0, sizeof *o);
    o->dir = dir;
    o->n_items = n_items;
    o->lines = calloc(n_items ? n_items : 1, sizeof *o->lines);
    o->done = calloc(n_items ? n_items : 1, 1);
    if (rc == 0 && (!o->lines || !o->done || (cg->rank == 0 && !config)))
        rc = EXIT_RUNTIME;
    if (rc == 0 && cg->rank == 0)
        rc = dir_open(o, config, line_item, ctx);
    rc = cluster_agree_first(cg->world, rc);
    for (size_t i = 0; rc == 0 && cg->rank == 0 && i < n_items; i++)
        o->done[i] = o->lines[i] != NULL;
    uint64_t n_done = o->n_done;
    if (rc == 0) {
        MPI_Bcast(o->done, (int)n_items, MPI_UINT8_T, 0, cg->world);
        MPI_Bcast(&n_done, 1, MPI_UINT64_T, 0, cg->world);
        o->n_done = (size_t)n_done;
    }
    return rc;
}

size_t eval_out_pending(const eval_out *o, size_t from, size_t to, uint64_t *pending) {
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        if (!o->done[i])
            pending[n++] = i;
    return n;
}

int eval_schedule_rr(const uint64_t *pending, size_t n_pending, size_t R, int64_t **sched,
                     size_t *n_rounds) {
    *n_rounds = R ? (n_pending + R - 1) / R : 0;
    if (!(*sched = malloc((*n_rounds * R + 1) * sizeof **sched)))
        return EXIT_RUNTIME;
    for (size_t j = 0; j < *n_rounds * R; j++)
        (*sched)[j] = j < n_pending ? (int64_t)pending[j] : EVAL_NO_ITEM;
    return 0;
}

/* rank 0: round's lines from the gathered records into o->lines and the journal, synced */
static int journal_round(eval_out *o, const int64_t *round, size_t R, const char *all,
                         size_t n_all) {
    const char **rec = NULL;
    if (cluster_records_index(all, n_all, o->n_items, &rec) != 0)
        return EXIT_RUNTIME;
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < R; j++) {
        if (round[j] == EVAL_NO_ITEM)
            continue;
        const uint64_t i = (uint64_t)round[j];
        uint64_t n;
        const char *b = rec[i] ? cluster_record_bytes(rec[i], &n) : NULL;
        if (!b || !(o->lines[i] = strndup(b, (size_t)n)) ||
            fprintf(o->journal, "%s\n", o->lines[i]) < 0)
            rc = EXIT_RUNTIME;
    }
    /* the round's lines reach the disk before the next round: a kill loses at most one */
    if (rc == 0 && (fflush(o->journal) != 0 || fsync(fileno(o->journal)) != 0))
        rc = EXIT_RUNTIME;
    if (rc)
        LOG_ERROR("%s/results.jsonl: %s", o->dir, errno ? strerror(errno) : "a result is missing");
    free(rec);
    return rc;
}

int eval_out_rounds(eval_out *o, const cluster_groups *cg, const int64_t *sched, size_t n_rounds,
                    eval_run_fn run, void *ctx, size_t *n_ran) {
    const size_t R = (size_t)cg->n_replicas;
    int rc = 0, st;
    for (size_t round = 0; rc == 0 && round < n_rounds; round++) {
        const int64_t k = sched[round * R + (size_t)cg->replica];
        char *line = NULL;
        cluster_records mine = {0};
        if (k != EVAL_NO_ITEM) {
            rc = cluster_agree_first(cg->tp, run(ctx, (uint64_t)k, &line));
            if (rc == 0 && cg->tp_rank == 0 &&
                cluster_records_add(&mine, (uint64_t)k, line, strlen(line)) != CLUSTER_OK)
                rc = EXIT_RUNTIME;
        }
        free(line);
        rc = eval_world_failure(cg, rc);
        char *all = NULL;
        size_t n_all = 0;
        if (rc == 0 && (st = cluster_records_gather(cg->world, &mine, &all, &n_all))) {
            LOG_ERROR("cannot gather the results on rank 0: %s", cluster_strerror(st));
            rc = EXIT_RUNTIME;
        }
        cluster_records_free(&mine);
        errno = 0;
        if (rc == 0 && cg->rank == 0)
            rc = journal_round(o, sched + round * R, R, all, n_all);
        free(all);
        for (size_t j = round * R; j < (round + 1) * R; j++)
            *n_ran += sched[j] != EVAL_NO_ITEM;
        rc = cluster_agree_first(cg->world, rc);
        if (rc == 0 && cluster_stop_agreed(cg->world)) {
            LOG_WARN("stopped by a signal after %zu of %zu items; rerun to resume",
                     o->n_done + *n_ran, o->n_items);
            rc = EXIT_STOPPED;
        }
    }
    return rc;
}

int eval_out_close(eval_out *o, const cluster_groups *cg, int rc) {
    if (o->journal && fclose(o->journal) != 0 && rc == 0) {
        LOG_ERROR("%s/results.jsonl: %s", o->dir, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    o->journal = NULL;
    if (rc == 0 && cg->rank == 0) { /* results.jsonl in item order */
        char *path = eval_path(o->dir, "results.jsonl"), *tmp = eval_path(o->dir, ".results.tmp");
        FILE *f = tmp ? fopen(tmp, "wb") : NULL;
        rc = f ? 0 : EXIT_RUNTIME;
        for (size_t i = 0; rc == 0 && i < o->n_items; i++)
            if (fprintf(f, "%s\n", o->lines[i]) < 0)
                rc = EXIT_RUNTIME;
        if (f && (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0))
            rc = EXIT_RUNTIME;
        if (rc == 0 && rename(tmp, path) != 0)
            rc = EXIT_RUNTIME;
        if (rc)
            LOG_ERROR("%s: %s", path ? path : o->dir, strerror(errno));
        free(path);
        free(tmp);
    }
    return cluster_agree_first(cg->world, rc);
}

void eval_out_free(eval_out *o) {
    if (o->journal)
        fclose(o->journal);
    for (size_t i = 0; o->lines && i < o->n_items; i++)
        free(o->lines[i]);
    free(o->lines);
    free(o->done);
    memset(o, 0, sizeof *o);
}

int eval_write_json(const char *dir, const char *name, json_object *o) {
    char *path = eval_path(dir, name);
    FILE *f = path ? fopen(path, "wb") : NULL;
    int rc = 0;
    if (!f || fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY)) < 0 ||
        fclose(f) != 0) {
        LOG_ERROR("%s: %s", path ? path : dir, strerror(errno));
        rc = EXIT_RUNTIME;
    }
    free(path);
    return rc;
}

double eval_line_number(const char *line, const char *key) {
    json_object *o = json_tokener_parse(line), *v;
    double x = NAN;
    if (o && json_object_object_get_ex(o, key, &v))
        x = json_object_get_double(v);
    json_object_put(o);
    return x;
}

int eval_line_has(const char *line, const char *key) {
    json_object *o = json_tokener_parse(line);
    const int has = o && json_object_object_get_ex(o, key, NULL);
    json_object_put(o);
    return has;
}

/* ==== one item ================================================================================*/

int eval_generate(infer_state *s, const infer_config *cfg, int prefill_st, const float *row, int V,
                  void *work, int n_prompt, int n_new, uint32_t *gen, int *n_gen,
                  const char **numeric, unsigned long long item) {
    /* non-finite logits end the item, not the job: it is recorded with the error and score 0
     * (a model that overflows at long lengths is what these grids measure), and a rerun does not
     * stop on it again */
    *n_gen = 0;
    *numeric = prefill_st == INFER_ERR_NUMERIC ? "non-finite logits in the prefill" : NULL;
    uint64_t rng = 0; /* greedy: unused */
    uint32_t next = *numeric ? 0 : (uint32_t)infer_sample(row, V, 0.0f, 0, 1.0f, &rng, work);
    while (!*numeric && *n_gen < n_new && (int64_t)next != cfg->eos_id) {
        gen[(*n_gen)++] = next;
        if (*n_gen == n_new)
            break;
        const int st =
            infer_forward_sample(s, next, n_prompt + *n_gen - 1, 0.0f, 0, 1.0f, &rng, &next);
        if (st == INFER_ERR_NUMERIC) {
            *numeric = "non-finite logits in the decode";
        } else if (st != INFER_OK) {
            LOG_ERROR("item %llu: decode: %s", item, infer_strerror(st));
            return EXIT_RUNTIME;
        }
    }
    if (*numeric) {
        LOG_WARN("item %llu: %s: recorded with score 0", item, *numeric);
        *n_gen = 0;
    }
    return 0;
}

char *eval_utf8_clean(const char *text, size_t n, size_t *out_n) {
    char *clean = malloc(3 * n + 1);
    if (!clean)
        return NULL;
    size_t k = 0;
    for (size_t at = 0; at < n;) {
        uint32_t cp;
        const size_t len = tok_utf8_next((const unsigned char *)text + at, n - at, &cp);
        if (cp == TOK_INVALID_CP) {
            memcpy(clean + k, "\xef\xbf\xbd", 3);
            k += 3;
        } else {
            memcpy(clean + k, text + at, len);
            k += len;
        }
        at += len;
    }
    clean[k] = '\0';
    *out_n = k;
    return clean;
}
