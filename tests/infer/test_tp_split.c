/* test_tp_split.c - the tensor-parallel seams at 1, 2, 4 and 8 ranks: each rank's local counts
 * are ggml's slices (recomputed here), the KV heads of its query heads, and its weight slices
 * equal the same rows or columns of the whole model loaded on MPI_COMM_SELF (the embedding and
 * lm_head by vocabulary rows; tied, one slice), in both load modes (RAM: preads of the slices;
 * MMAP: row slices point into the mapping, column slices are copies). Each rank reads exactly
 * the bytes of its slices (computed here from the shapes), and the ranks together read the
 * files' tensor bytes (from the file sizes) plus what they replicate: the norms, and the KV
 * heads when there are more ranks than KV heads. The whole model's HF tensors equal the files'
 * bytes (read here with stdio). A failure on one rank (a missing shard, a truncated one, an
 * address space too small for its slices) fails every rank with one message naming that rank
 * and the cause. A state is created on the model's ranks and refused on others, and a split the
 * heads do not allow is refused at load.
 *
 * usage: test_tp_split STORIES_BIN|- [hf:DTYPE:DIR]... [missing:DIR] [trunc:DIR] [nomem:DIR]
 *   hf:      an HF model directory whose tensors are all of DTYPE (F32, BF16, F16)
 *   missing, trunc: DIR/r<rank> is this rank's copy of a sharded model; the last rank's lacks
 *            model-00002-of-00003.safetensors (missing) or has model-00003-of-00003 truncated
 *   nomem:   an HF model the last rank loads with its address space capped just above its use
 * With no arguments: the stories260K asset alone. tests/infer/test_tp_split.sh makes the rest. */
#include "check.h"
#include "infer_internal.h"

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>

static int rank, n_ranks;

/* ggml's slice, written out again: i0 = rank * ceil(n / P), i1 = min(i0 + ceil(n / P), n) */
static void ggml_slice(int n, int *i0, int *len) {
    const int share = (n + n_ranks - 1) / n_ranks;
    int a = rank * share, b = a + share;
    a = a < n ? a : n;
    b = b < n ? b : n;
    *i0 = a;
    *len = b - a;
}

static size_t elt(int dtype) {
    return dtype == INFER_DT_F32 ? 4 : 2;
}

/* 1 if rows [r0, r0 + n) x cols [c0, c0 + nc) of whole (cols wide) equal slice (nc wide) */
static int same_block(infer_mat whole, int64_t cols, infer_mat slice, int64_t r0, int64_t n,
                      int64_t c0, int64_t nc) {
    if (whole.dtype != slice.dtype)
        return 0;
    const size_t e = elt(whole.dtype);
    const char *a = whole.p, *b = slice.p;
    for (int64_t r = 0; r < n; r++)
        if (memcmp(a + ((size_t)(r0 + r) * (size_t)cols + (size_t)c0) * e,
                   b + (size_t)r * (size_t)nc * e, (size_t)nc * e))
            return 0;
    return 1;
}

/* the n-th (from 0) .safetensors file of dir into path; 0 when there are fewer */
static int nth_safetensors(const char *dir, int n, char *path, size_t path_bytes) {
    DIR *d = opendir(dir);
    struct dirent *de;
    int k = 0, found = 0;
    while (d && !found && (de = readdir(d))) {
        const size_t len = strlen(de->d_name);
        if (len > 12 && !strcmp(de->d_name + len - 12, ".safetensors") && k++ == n) {
            snprintf(path, path_bytes, "%s/%s", dir, de->d_name);
            found = 1;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* the tensor bytes in the files: HF, the safetensors files' sizes less their headers (the test
 * models have no padding between tensors); llama2.c, the file less its header and freq_cis */
static uint64_t file_tensor_bytes(const char *path, const infer_config *c, int hf) {
    uint64_t total = 0;
    char name[4200];
    for (int i = 0; hf ? nth_safetensors(path, i, name, sizeof name) : i == 0; i++) {
        FILE *f = fopen(hf ? name : path, "rb");
        uint64_t head = 0;
        if (f && (hf ? fread(&head, 8, 1, f) == 1 : 1) && fseek(f, 0, SEEK_END) == 0)
            total +=
                (uint64_t)ftell(f) -
                (hf ? 8 + head : 28 + 4 * (uint64_t)c->seq_len * (uint64_t)(c->dim / c->n_heads));
        if (f)
            fclose(f);
    }
    return total;
}

/* the whole HF model's matrices equal the files' bytes (infer_st gives the offsets) */
static void check_whole_against_files(const char *dir, const infer_model *w) {
    const infer_config *c = &w->cfg;
    char path[4200];
    int n_checked = 0;
    for (int i = 0; nth_safetensors(dir, i, path, sizeof path); i++) {
        infer_st *st = NULL;
        CHECK_EQ_INT(infer_st_open(path, &st), INFER_OK);
        for (size_t k = 0; st && k < infer_st_count(st); k++) {
            const infer_tensor_info *t = infer_st_tensor(st, k);
            const infer_mat *m = NULL;
            int l = -1;
            char what[128] = "";
            if (!strcmp(t->name, "model.embed_tokens.weight"))
                m = &w->emb;
            else if (!strcmp(t->name, "lm_head.weight"))
                m = &w->wcls;
            else if (sscanf(t->name, "model.layers.%d.%127s", &l, what) == 2 && l >= 0 &&
                     l < c->n_layers) {
                const infer_layer *y = &w->layers[l];
                m = !strcmp(what, "self_attn.q_proj.weight")   ? &y->wq
                    : !strcmp(what, "self_attn.k_proj.weight") ? &y->wk
                    : !strcmp(what, "self_attn.v_proj.weight") ? &y->wv
                    : !strcmp(what, "self_attn.o_proj.weight") ? &y->wo
                    : !strcmp(what, "mlp.gate_proj.weight")    ? &y->w1
                    : !strcmp(what, "mlp.up_proj.weight")      ? &y->w3
                    : !strcmp(what, "mlp.down_proj.weight")    ? &y->w2
                                                               : NULL;
            }
            if (!m)
                continue; /* a norm: widened, checked through the logits tests */
            char *buf = malloc(t->bytes);
            FILE *f = fopen(path, "rb");
            CHECK(buf && f && fseek(f, (long)t->offset, SEEK_SET) == 0 &&
                  fread(buf, 1, t->bytes, f) == t->bytes);
            CHECK_EQ_INT(m->dtype, t->dtype);
            if (buf && memcmp(buf, m->p, t->bytes)) {
                fprintf(stderr, "%s: %s differs from the file\n", path, t->name);
                CHECK(0);
            }
            n_checked++;
            if (f)
                fclose(f);
            free(buf);
        }
        infer_st_free(st);
    }
    CHECK_EQ_INT(n_checked, 7 * c->n_layers + (c->shared_classifier ? 1 : 2));
}

/* the slices of m (split over the world) against whole (one rank), and the byte counts */
static void check_model(const char *path, int hf, size_t e, int mode) {
    infer_model *whole = NULL, *m = NULL;
    CHECK_EQ_INT(infer_model_load_mode(path, INFER_LOAD_RAM, MPI_COMM_SELF, &whole), INFER_OK);
    CHECK_EQ_INT(infer_model_load_mode(path, mode, MPI_COMM_WORLD, &m), INFER_OK);
    if (!whole || !m || whole->errmsg[0] || m->errmsg[0]) {
        fprintf(stderr, "%s: %s / %s\n", path, whole ? whole->errmsg : "?", m ? m->errmsg : "?");
        infer_model_free(whole);
        infer_model_free(m);
        return;
    }
    const infer_config *c = &m->cfg;
    const infer_split *t = &m->tp;
    const int64_t D = c->dim, H = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    const int64_t hd = m->head_dim, nh = c->n_heads, nkv = c->n_kv_heads;
    const int tied = c->shared_classifier;
    CHECK_EQ_INT(whole->tp.n_ranks, 1);
    CHECK_EQ_INT(whole->tp.vocab, V);
    if (hf && mode == INFER_LOAD_RAM && rank == 0)
        check_whole_against_files(path, whole);
    /* the local counts */
    int i0, n;
    CHECK_EQ_INT(t->rank, rank);
    CHECK_EQ_INT(t->n_ranks, n_ranks);
    ggml_slice((int)nh, &i0, &n);
    CHECK_EQ_INT(t->head0, i0);
    CHECK_EQ_INT(t->n_heads, n);
    if (nkv >= n_ranks) {
        ggml_slice((int)nkv, &i0, &n);
        CHECK_EQ_INT(t->kv_head0, i0);
        CHECK_EQ_INT(t->n_kv_heads, n);
    } else { /* replicated: the KV head of query head head0 */
        CHECK_EQ_INT(t->kv_head0, t->head0 / (nh / nkv));
        CHECK_EQ_INT(t->n_kv_heads, 1);
    }
    ggml_slice((int)H, &i0, &n);
    CHECK_EQ_INT(t->hidden0, i0);
    CHECK_EQ_INT(t->hidden_dim, n);
    ggml_slice((int)V, &i0, &n);
    CHECK_EQ_INT(t->vocab0, i0);
    CHECK_EQ_INT(t->vocab, n);
    /* the slices: the same bits as the whole model's */
    const int64_t q = t->n_heads * hd, kv = t->n_kv_heads * hd;
    int bad = 0;
    for (int64_t l = 0; l < L; l++) {
        const infer_layer *a = &whole->layers[l], *b = &m->layers[l];
        bad += !same_block(a->wq, D, b->wq, t->head0 * hd, q, 0, D);
        bad += !same_block(a->wk, D, b->wk, t->kv_head0 * hd, kv, 0, D);
        bad += !same_block(a->wv, D, b->wv, t->kv_head0 * hd, kv, 0, D);
        bad += !same_block(a->w1, D, b->w1, t->hidden0, t->hidden_dim, 0, D);
        bad += !same_block(a->w3, D, b->w3, t->hidden0, t->hidden_dim, 0, D);
        bad += !same_block(a->wo, nh * hd, b->wo, 0, D, t->head0 * hd, q);
        bad += !same_block(a->w2, H, b->w2, 0, D, t->hidden0, t->hidden_dim);
        bad += memcmp(a->rms_att, b->rms_att, (size_t)D * 4) != 0;
        bad += memcmp(a->rms_ffn, b->rms_ffn, (size_t)D * 4) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(memcmp(whole->rms_final, m->rms_final, (size_t)D * 4) == 0);
    CHECK(same_block(whole->emb, D, m->emb, t->vocab0, t->vocab, 0, D));
    CHECK(same_block(whole->wcls, D, m->wcls, t->vocab0, t->vocab, 0, D));
    CHECK(!tied || m->wcls.p == m->emb.p); /* tied: one slice */
    CHECK(tied || m->wcls.p != m->emb.p);
    /* bytes: this rank's slices, exactly; the norms read in the stored dtype, kept in f32 */
    const uint64_t slices = e * (uint64_t)(t->vocab * D * (tied ? 1 : 2) +
                                           L * (2 * q * D + 2 * kv * D + 3 * t->hidden_dim * D));
    const uint64_t norms = (uint64_t)(2 * L + 1) * (uint64_t)D;
    CHECK_EQ_U64(infer_model_bytes_read(m), slices + e * norms);
    CHECK_EQ_U64(infer_model_weight_bytes(m), slices + 4 * norms);
    CHECK_EQ_U64(infer_model_bytes_read(whole), file_tensor_bytes(path, c, hf));
    /* the ranks together: the files once, plus what is replicated */
    uint64_t mine = infer_model_bytes_read(m), sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    const uint64_t kv_extra = n_ranks > nkv ? (uint64_t)(L * 2 * (n_ranks - nkv) * hd * D) * e : 0;
    const uint64_t want =
        file_tensor_bytes(path, c, hf) + (uint64_t)(n_ranks - 1) * e * norms + kv_extra;
    CHECK_EQ_U64(sum, want);
    /* the rank with the largest shares holds what the plan predicts */
    infer_opts o = infer_opts_default();
    o.max_ctx = 16;
    infer_plan p;
    infer_plan_make(c, (int)e, &o, n_ranks, &p);
    if (rank == 0) {
        const double r = (double)infer_model_weight_bytes(m) / (double)p.weights_bytes;
        CHECK(r > 0.99 && r < 1.01);
        printf("%s %s tp %d: rank 0 read %llu bytes, holds %llu (plan %llu); all ranks read "
               "%llu = files %llu + replicated %llu\n",
               path, mode == INFER_LOAD_RAM ? "ram" : "mmap", n_ranks, (unsigned long long)mine,
               (unsigned long long)infer_model_weight_bytes(m), (unsigned long long)p.weights_bytes,
               (unsigned long long)sum, (unsigned long long)file_tensor_bytes(path, c, hf),
               (unsigned long long)(sum - file_tensor_bytes(path, c, hf)));
    }
    /* a state is created on the model's ranks and refused on other ranks */
    infer_state *s = NULL;
    CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_WORLD, &s), INFER_OK);
    infer_state_free(s);
    if (n_ranks > 1) {
        CHECK_EQ_INT(infer_state_create(m, &o, MPI_COMM_SELF, &s), INFER_ERR_ARG);
        infer_state_free(s);
    }
    infer_model_free(m);
    infer_model_free(whole);
}

/* every rank fails with the same message, naming the last rank (the failing one) and what */
static void check_failure(const char *dir, int mode, int want_st, const char *what,
                          const char *what2) {
    char path[4200], name[64];
    snprintf(path, sizeof path, "%s/r%d", dir, rank);
    infer_model *m = NULL;
    const int st = infer_model_load_mode(path, mode, MPI_COMM_WORLD, &m);
    CHECK_EQ_INT(st, want_st);
    const char *msg = infer_model_errmsg(m);
    snprintf(name, sizeof name, "rank %d of %d: ", n_ranks - 1, n_ranks);
    CHECK(n_ranks == 1 || strncmp(msg, name, strlen(name)) == 0);
    CHECK(strstr(msg, what) != NULL);
    CHECK(!what2 || strstr(msg, what2) != NULL);
    if (rank == 0)
        printf("%s (%s): %s\n", dir, mode == INFER_LOAD_RAM ? "ram" : "mmap", msg);
    /* one message: rank 0's is every rank's */
    char first[sizeof m->errmsg] = "";
    snprintf(first, sizeof first, "%s", msg);
    MPI_Bcast(first, (int)sizeof first, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(strcmp(first, msg) == 0);
    infer_model_free(m);
}

/* the last rank's address space is capped just above what it uses: its slices do not fit */
static void check_nomem(const char *dir) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    if (rank == 0)
        printf("SKIP nomem: a sanitizer reserves the address space itself\n");
    (void)dir;
#else
    struct rlimit old;
    int capped = 0;
    if (rank == n_ranks - 1 && getrlimit(RLIMIT_AS, &old) == 0) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        unsigned long long vm_kb = 0;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "VmSize: %llu kB", &vm_kb) == 1)
                break;
        if (f)
            fclose(f);
        struct rlimit cap = old;
        cap.rlim_cur = (rlim_t)(vm_kb * 1024 + (64u << 10));
        capped = vm_kb > 0 && setrlimit(RLIMIT_AS, &cap) == 0;
        CHECK(capped);
    }
    infer_model *m = NULL;
    const int st = infer_model_load(dir, MPI_COMM_WORLD, &m);
    if (capped)
        setrlimit(RLIMIT_AS, &old);
    CHECK_EQ_INT(st, INFER_ERR_NOMEM);
    const char *msg = infer_model_errmsg(m);
    char name[64];
    snprintf(name, sizeof name, "rank %d of %d: ", n_ranks - 1, n_ranks);
    CHECK(n_ranks == 1 || strncmp(msg, name, strlen(name)) == 0);
    CHECK(strstr(msg, "out of memory") != NULL);
    if (rank == 0)
        printf("%s (address space capped on the last rank): %s\n", dir, msg);
    infer_model_free(m);
#endif
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    char stories[4096];
    if (argc > 1 && strcmp(argv[1], "-"))
        snprintf(stories, sizeof stories, "%s", argv[1]);
    else
        snprintf(stories, sizeof stories, "%s/models/stories260K/stories260K.bin",
                 check_assets_dir());
    FILE *f = fopen(stories, "rb");
    if (f) {
        fclose(f);
        check_model(stories, 0, 4, INFER_LOAD_RAM);
        check_model(stories, 0, 4, INFER_LOAD_MMAP);
    } else if (rank == 0) {
        printf("SKIP stories260K: asset missing: %s\n", stories);
    }
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strncmp(a, "hf:", 3)) {
            const char *dir = strchr(a + 3, ':');
            const size_t e = !strncmp(a + 3, "F32:", 4) ? 4 : 2;
            CHECK(dir != NULL);
            for (int mode = INFER_LOAD_RAM; dir && mode <= INFER_LOAD_MMAP; mode++)
                check_model(dir + 1, 1, e, mode);
        } else if (!strncmp(a, "missing:", 8)) {
            for (int mode = INFER_LOAD_RAM; mode <= INFER_LOAD_MMAP; mode++)
                check_failure(a + 8, mode, INFER_ERR_IO, "model-00002-of-00003.safetensors",
                              "No such file");
        } else if (!strncmp(a, "trunc:", 6)) {
            for (int mode = INFER_LOAD_RAM; mode <= INFER_LOAD_MMAP; mode++)
                check_failure(a + 6, mode, INFER_ERR_FORMAT, "model-00003-of-00003.safetensors",
                              "outside the");
        } else if (!strncmp(a, "nomem:", 6)) {
            check_nomem(a + 6);
        } else {
            fprintf(stderr, "test_tp_split: unknown argument %s\n", a);
            CHECK(0);
        }
    }
    /* 3 ranks do not divide 8 heads: refused at load, by every rank, with the reason */
    if (f && n_ranks == 4) {
        MPI_Comm three;
        infer_model *m = NULL;
        MPI_Comm_split(MPI_COMM_WORLD, rank < 3, rank, &three);
        if (rank < 3) {
            CHECK_EQ_INT(infer_model_load(stories, three, &m), INFER_ERR_ARG);
            CHECK(m && strstr(infer_model_errmsg(m), "attention heads"));
            infer_model_free(m);
        }
        MPI_Comm_free(&three);
    }
    /* every rank's verdict */
    int failed = check_n_failed, any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    if (any && !check_n_failed)
        fprintf(stderr, "test_tp_split: another rank failed\n");
    return any && !check_n_failed ? 1 : check_exit("test_tp_split");
}
