/*
 * test_forward_invariance.c: a sequence's logits are bitwise the same whether
 * its prompt runs in one batch or in chunks of 1, 7 or 64 tokens, and whether
 * its tokens share forward passes with other sequences (of other lengths, at
 * other positions) or run alone, at 1 or 2 threads. Checked on random-weight
 * models, whose near-ties would expose any drift.
 */
#include "base/rng.h"
#include "model/model.h"
#include "ops/types.h"
#include "test.h"

#define N_SEQ 5
#define MAX_POS 160
#define BS 16

struct seq_state {
    int n_prompt;
    int32_t tokens[MAX_POS];
    int32_t blocks[MAX_POS / BS];
};

/* Runs every sequence's prompt (in chunks of `chunk`, several sequences per
 * pass when `mix`) then n_gen greedy-free decode steps feeding fixed tokens;
 * stores the logits of every step of every sequence. */
static int run(const struct model *m, struct pool *pool, struct seq_state *seqs, int chunk, int mix,
               int n_gen, float *out /* [N_SEQ][n_gen + 1][V] */)
{
    char err[256];
    const int V = m->hp.n_vocab;
    struct fwd_ctx *fc = fwd_ctx_create(m, pool, 256, MAX_POS, err, sizeof err);
    struct kv_store kv;
    kv_store_layout(&kv, m->hp.n_layer, m->hp.n_head_kv, m->hp.head_dim, BS, PG_TYPE_F16);
    kv.n_blocks = N_SEQ * (MAX_POS / BS);
    kv.data = calloc((size_t)kv.n_blocks, kv.block_bytes);
    const int32_t *tables[N_SEQ];
    for (int s = 0; s < N_SEQ; s++)
        tables[s] = seqs[s].blocks;
    int32_t tok[256], pos[256], seq[256], rows[256];
    float *logits = malloc(sizeof(float) * (size_t)V * 256);
    int done[N_SEQ] = {0};
    int rc = 0;
    /* Prefill: each pass takes up to `chunk` tokens from one sequence (or from
     * every sequence when mixing), so positions interleave across sequences. */
    for (;;) {
        int n = 0, nl = 0;
        int rowseq[256];
        for (int s = 0; s < N_SEQ; s++) {
            if (!mix && n > 0)
                break;
            int take = seqs[s].n_prompt - done[s];
            if (take > chunk)
                take = chunk;
            for (int i = 0; i < take; i++) {
                tok[n] = seqs[s].tokens[done[s] + i];
                pos[n] = done[s] + i;
                seq[n] = s;
                n++;
            }
            done[s] += take;
            if (take > 0 && done[s] == seqs[s].n_prompt) {
                rows[nl] = n - 1;
                rowseq[nl++] = s;
            }
        }
        if (n == 0)
            break;
        struct fwd_batch b = {n, tok, pos, seq, tables, nl, rows};
        if ((rc = model_forward(m, fc, &kv, &b, logits, err, sizeof err))) {
            fprintf(stderr, "%s\n", err);
            break;
        }
        for (int r = 0; r < nl; r++)
            memcpy(out + ((size_t)rowseq[r] * (n_gen + 1)) * V, logits + (size_t)r * V,
                   sizeof(float) * V);
    }
    /* Decode: one token per sequence per pass (all together when mixing). */
    for (int g = 0; rc == 0 && g < n_gen; g++) {
        for (int s0 = 0; s0 < N_SEQ; s0 += mix ? N_SEQ : 1) {
            int n = 0;
            for (int s = s0; s < (mix ? N_SEQ : s0 + 1); s++) {
                int p = seqs[s].n_prompt + g;
                tok[n] = seqs[s].tokens[p];
                pos[n] = p;
                seq[n] = s;
                rows[n] = n;
                n++;
            }
            struct fwd_batch b = {n, tok, pos, seq, tables, n, rows};
            if ((rc = model_forward(m, fc, &kv, &b, logits, err, sizeof err))) {
                fprintf(stderr, "%s\n", err);
                break;
            }
            for (int r = 0; r < n; r++)
                memcpy(out + ((size_t)(s0 + r) * (n_gen + 1) + g + 1) * V, logits + (size_t)r * V,
                       sizeof(float) * V);
        }
    }
    free(logits);
    free(kv.data);
    fwd_ctx_free(fc);
    return rc;
}

static void check_model(const char *path)
{
    char err[512];
    struct model *m;
    if (model_load(path, &m, err, sizeof err)) {
        CHECKF(0, "%s", err);
        return;
    }
    const int V = m->hp.n_vocab, n_gen = 6;
    struct seq_state seqs[N_SEQ];
    struct rng r;
    rng_seed(&r, 11);
    int lens[N_SEQ] = {1, 9, 70, 33, 130};
    for (int s = 0; s < N_SEQ; s++) {
        seqs[s].n_prompt = lens[s];
        for (int i = 0; i < lens[s] + n_gen; i++)
            seqs[s].tokens[i] = (int32_t)(rng_next(&r) % (uint64_t)V);
        /* Each sequence's blocks scattered through the pool. */
        for (int b = 0; b < MAX_POS / BS; b++)
            seqs[s].blocks[b] = (int32_t)(b * N_SEQ + (N_SEQ - 1 - s));
    }
    const size_t per = (size_t)N_SEQ * (n_gen + 1) * V;
    float *ref = malloc(sizeof(float) * per), *got = malloc(sizeof(float) * per);
    struct pool *p1 = pool_create(1, err, sizeof err), *p2 = pool_create(2, err, sizeof err);
    CHECK(run(m, p1, seqs, 256, 0, n_gen, ref) == 0);
    struct {
        int chunk, mix;
        struct pool *pool;
    } cases[] = {{1, 0, p2}, {7, 1, p2}, {64, 1, p1}, {256, 1, p2}, {13, 0, p2}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memset(got, 0, sizeof(float) * per);
        CHECK(run(m, cases[c].pool, seqs, cases[c].chunk, cases[c].mix, n_gen, got) == 0);
        CHECKF(memcmp(ref, got, sizeof(float) * per) == 0,
               "%s: logits differ with chunk %d, %s, %d thread(s)", path, cases[c].chunk,
               cases[c].mix ? "mixed batches" : "one sequence per pass", pool_size(cases[c].pool));
    }
    pool_destroy(p1);
    pool_destroy(p2);
    free(ref);
    free(got);
    model_free(m);
}

int main(void)
{
    const char *dir = test_reference_dir();
    if (!dir)
        return TEST_SKIP_EXIT;
    const char *models[] = {"tiny-llama-q4_k_m.gguf", "tiny-llama-q8_0.gguf", "tiny-llama-f16.gguf",
                            "tiny-llama-q4_1.gguf", "tiny-qwen2-q8_0.gguf", "stories260K.gguf"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char path[8320];
        snprintf(path, sizeof path, "%s/models/%s", dir, models[i]);
        check_model(path);
    }
    TEST_END();
}
