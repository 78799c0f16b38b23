/*
 * test_tokenizer.c: the SPM and BPE tokenizers against llama.cpp's tokenizer
 * test vectors (every vocab/ggml-vocab-*.gguf with .inp/.out: the ids must
 * be equal), the prompt tokens of the reference models, decode round trips,
 * special tokens, the streaming detokenizer on characters split across
 * tokens, metadata validation on small synthesized files, and speed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/rng.h"
#include "gguf/gguf.h"
#include "pagoda.h"
#include "test.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

/* A path in the reference folder (a buffer large enough for any rel we build). */
static const char *ref_path(const char *rel)
{
    static char buf[4096 + 512];
    const char *dir = test_reference_dir();
    snprintf(buf, sizeof buf, "%s/%s", dir ? dir : ".", rel);
    return buf;
}


static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3
                   : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += len;
    }
    return true;
}

static struct tokenizer *load_tok(const char *rel, struct gguf_file **gf)
{
    const char *path = ref_path(rel);
    char err[256];
    struct gguf_file *g = NULL;
    struct tokenizer *t = NULL;
    int rc = gguf_open(path, &g, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", rel, err);
    if (rc)
        return NULL;
    rc = tokenizer_load(g, &t, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", rel, err);
    if (gf)
        *gf = g;
    else
        gguf_close(g);
    return rc ? NULL : t;
}

/* Encodes into a fresh array (caller frees); checks the ERANGE protocol on the way. */
static int32_t *encode(const struct tokenizer *t, const char *s, size_t len, bool add_special,
                       bool parse_special, size_t *n)
{
    size_t need = 0;
    int rc = tokenizer_encode(t, s, len, add_special, parse_special, NULL, 0, &need);
    CHECK(rc == 0 || rc == PAGODA_ERANGE);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    rc = tokenizer_encode(t, s, len, add_special, parse_special, ids, need, n);
    CHECK(rc == 0 && *n == need);
    return ids;
}

static void print_escaped(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

/* llama.cpp's vectors: strings separated by "\n__ggml_vocab_test__\n", one
 * line of expected ids per string. */
static void test_vocab(const char *name, int *total_pass, int *total)
{
    char rel[256];
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf", name);
    struct tokenizer *t = load_tok(rel, NULL);
    if (!t)
        return;
    size_t inp_len, out_len;
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.inp", name);
    char *inp = test_read_file(ref_path(rel), &inp_len);
    snprintf(rel, sizeof rel, "vocab/ggml-vocab-%s.gguf.out", name);
    char *out = test_read_file(ref_path(rel), &out_len);
    CHECKF(inp && out, "%s: test vectors missing", name);
    if (!inp || !out) {
        free(inp);
        free(out);
        tokenizer_free(t);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int n_case = 0, n_pass = 0, n_rt = 0;
    char *s = inp, *line = out;
    char *end;
    while ((end = strstr(s, sep)) != NULL) {
        size_t len = (size_t)(end - s);
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = 0;
        /* expected ids */
        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = line; *p && n_want < 1024;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            want[n_want++] = (int32_t)v;
            p = q;
        }
        size_t n;
        int32_t *got = encode(t, s, len, false, false, &n);
        bool ok = n == n_want && memcmp(got, want, n * sizeof *got) == 0;
        n_case++;
        n_pass += ok;
        if (!ok) {
            fprintf(stderr, "%s: '", name);
            print_escaped(stderr, s, len);
            fprintf(stderr, "'\n   want:%s\n   got: ", line);
            for (size_t k = 0; k < n; k++)
                fprintf(stderr, " %d", got[k]);
            fputc('\n', stderr);
        }
        CHECK(ok);
        /* decode(encode(x)) == x */
        char *dec = malloc(len * 4 + 16);
        size_t dn;
        int rc = tokenizer_decode(t, got, n, false, dec, len * 4 + 16, &dn);
        bool rt = rc == 0 && dn == len && memcmp(dec, s, len) == 0;
        n_rt += rt;
        if (!rt) {
            fprintf(stderr, "%s: round trip of '", name);
            print_escaped(stderr, s, len);
            fprintf(stderr, "' gave '");
            print_escaped(stderr, dec, dn);
            fprintf(stderr, "'\n");
        }
        CHECK(rt);
        free(dec);
        free(got);
        s = end + sizeof sep - 1;
        line = nl + 1;
    }
    CHECKF(n_case > 20, "%s: only %d test strings parsed", name, n_case);
    printf("vocab %-15s %-14s encode %2d/%2d exact, decode(encode(x)) == x %2d/%2d\n", name,
           tokenizer_kind(t) == TOKENIZER_SPM ? "spm" : tokenizer_pre_name(t), n_pass, n_case,
           n_rt, n_case);
    *total_pass += n_pass;
    *total += n_case;
    free(inp);
    free(out);
    tokenizer_free(t);
}

/* The prompt tokens llama.cpp recorded for each prompt of prompts.txt. */
static void test_prompts(const char *model, const char *expected)
{
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", model);
    struct tokenizer *t = load_tok(rel, NULL);
    size_t plen, jlen;
    char *prompts = test_read_file(ref_path("expected/prompts.txt"), &plen);
    snprintf(rel, sizeof rel, "expected/%s", expected);
    char *json = test_read_file(ref_path(rel), &jlen);
    CHECK(prompts && json);
    if (!t || !prompts || !json) {
        free(prompts);
        free(json);
        tokenizer_free(t);
        return;
    }
    int n_ok = 0, n = 0;
    char *line = prompts, *j = json;
    while (*line) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *key = strstr(j, "\"prompt_tokens\"");
        CHECKF(key != NULL, "%s: fewer prompt_tokens than prompts", expected);
        if (!key)
            break;
        char *p = strchr(key, '[') + 1;
        int32_t want[4096];
        size_t n_want = 0;
        while (*p != ']' && n_want < 4096) {
            char *q;
            want[n_want++] = (int32_t)strtol(p, &q, 10);
            p = q;
            while (*p == ',' || *p == ' ')
                p++;
        }
        j = p;
        size_t ng;
        int32_t *got = encode(t, line, len, true, false, &ng);
        bool ok = ng == n_want && memcmp(got, want, ng * sizeof *got) == 0;
        CHECKF(ok, "%s: prompt %d: %zu tokens, want %zu", model, n, ng, n_want);
        n_ok += ok;
        n++;
        free(got);
        if (!nl)
            break;
        line = nl + 1;
    }
    printf("prompts %-22s %d/%d prompt token lists equal\n", model, n_ok, n);
    CHECK(n >= 4);
    free(prompts);
    free(json);
    tokenizer_free(t);
}

static void test_special(void)
{
    struct tokenizer *bpe = load_tok("vocab/ggml-vocab-gpt-2.gguf", NULL);
    struct tokenizer *spm = load_tok("vocab/ggml-vocab-llama-spm.gguf", NULL);
    if (!bpe || !spm) {
        tokenizer_free(bpe);
        tokenizer_free(spm);
        return;
    }
    const char *s = "<|endoftext|>Hello<|endoftext|>";
    size_t n;
    int32_t *ids = encode(bpe, s, strlen(s), false, true, &n);
    CHECK(n >= 3 && ids[0] == 50256 && ids[n - 1] == 50256);
    free(ids);
    ids = encode(bpe, s, strlen(s), false, false, &n);
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any |= ids[i] == 50256;
    CHECKF(!any && n > 3, "control tokens must not come from plain text");
    /* decoding hides control tokens unless asked */
    char buf[128];
    size_t dn;
    CHECK(tokenizer_decode(bpe, ids, n, false, buf, sizeof buf, &dn) == 0 && dn == strlen(s) &&
          !memcmp(buf, s, dn));
    free(ids);
    int32_t eot[2] = {50256, 15496};
    CHECK(tokenizer_decode(bpe, eot, 2, false, buf, sizeof buf, &dn) == 0 && dn == 5 &&
          !memcmp(buf, "Hello", 5));
    CHECK(tokenizer_decode(bpe, eot, 2, true, buf, sizeof buf, &dn) == 0 && dn == 18 &&
          !memcmp(buf, "<|endoftext|>Hello", 18));
    CHECK(tokenizer_is_eog(bpe, 50256) && !tokenizer_is_eog(bpe, 15496));
    CHECK(!tokenizer_add_bos(bpe) && tokenizer_bos(bpe) == 50256);

    /* SPM: BOS added by default; "<s>" parsed only when asked; text after a
     * special token gets the leading space again */
    size_t n1, n2;
    int32_t *a = encode(spm, "Hello", 5, true, false, &n1);
    CHECK(n1 >= 2 && a[0] == 1 && tokenizer_bos(spm) == 1 && tokenizer_add_bos(spm));
    int32_t *b = encode(spm, "<s>Hello", 8, false, true, &n2);
    CHECK(n2 == n1 && !memcmp(a, b, n1 * sizeof *a));
    free(b);
    b = encode(spm, "<s>Hello", 8, false, false, &n2);
    CHECK(n2 > n1 && b[0] != 1);
    free(a);
    free(b);
    CHECK(tokenizer_is_eog(spm, 2) && tokenizer_eos(spm) == 2);
    CHECK(tokenizer_token_to_piece(spm, -1, false, &dn) == NULL);
    CHECK(tokenizer_token_to_piece(spm, tokenizer_n_vocab(spm), false, &dn) == NULL);
    const char *pc = tokenizer_token_to_piece(spm, 13, false, &dn); /* <0x0A> */
    CHECK(pc && dn == 1 && pc[0] == '\n');

    /* too small an output: ERANGE, the needed size, the first ids written */
    const char *txt = "The quick brown fox jumps over the lazy dog.";
    ids = encode(bpe, txt, strlen(txt), false, false, &n);
    int32_t two[2];
    size_t need;
    CHECK(tokenizer_encode(bpe, txt, strlen(txt), false, false, two, 2, &need) == PAGODA_ERANGE);
    CHECK(need == n && n > 2 && two[0] == ids[0] && two[1] == ids[1]);
    CHECK(tokenizer_decode(bpe, ids, n, false, buf, 4, &dn) == PAGODA_ERANGE &&
          dn == strlen(txt) && !memcmp(buf, txt, 4));
    int32_t bad = -3;
    CHECK(tokenizer_decode(bpe, &bad, 1, false, buf, sizeof buf, &dn) == PAGODA_EINVAL);
    free(ids);
    tokenizer_free(bpe);
    tokenizer_free(spm);
}

/* Streams tokens one by one: every chunk valid UTF-8, the whole equal to the text. */
static bool stream_roundtrip(const struct tokenizer *t, const char *s, size_t len,
                             int *split_chars)
{
    size_t n;
    int32_t *ids = encode(t, s, len, false, false, &n);
    struct tokenizer_stream *st;
    if (tokenizer_stream_create(t, false, true, &st) != 0) {
        free(ids);
        return false;
    }
    char *acc = malloc(len * 3 + 16);
    size_t an = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const char *txt;
        size_t tl, pl;
        ok &= tokenizer_stream_push(st, ids[i], &txt, &tl) == 0;
        ok &= utf8_valid(txt, tl);
        tokenizer_token_to_piece(t, ids[i], false, &pl);
        if (pl && tl == 0)
            (*split_chars)++; /* bytes held back: a character split across tokens */
        if (an + tl <= len * 3)
            memcpy(acc + an, txt, tl);
        an += tl;
    }
    const char *txt;
    size_t tl;
    ok &= tokenizer_stream_flush(st, &txt, &tl) == 0 && tl == 0;
    /* SPM spells a space as U+2581, so a U+2581 in the text comes back as
     * a space: the one thing an SPM round trip cannot keep */
    char *want = malloc(len + 1);
    size_t wn = 0;
    for (size_t i = 0; i < len;) {
        if (tokenizer_kind(t) == TOKENIZER_SPM && i + 3 <= len &&
            !memcmp(s + i, "\xe2\x96\x81", 3)) {
            want[wn++] = ' ';
            i += 3;
        } else {
            want[wn++] = s[i++];
        }
    }
    ok &= an == wn && memcmp(acc, want, wn) == 0;
    free(want);
    free(acc);
    free(ids);
    tokenizer_stream_free(st);
    return ok;
}

static void test_stream(void)
{
    struct tokenizer *tk[2] = {load_tok("vocab/ggml-vocab-gpt-2.gguf", NULL),
                               load_tok("vocab/ggml-vocab-llama-spm.gguf", NULL)};
    static const char *const pool[] = {
        "a",  "b", "Z",  " ", " ", "\n", "7", ".", "\xc3\xa9" /* é */, "\xc2\xbd" /* ½ */,
        "\xd0\xbd\xd0\xb5" /* не */, "\xe5\xa4\xa9" /* 天 */, "\xe2\x80\x8d" /* ZWJ */,
        "\xf0\x9f\xa6\x99" /* 🦙 */, "\xf0\x9f\x98\x81" /* 😁 */, "\xe1\x9e\x80" /* ក */,
        "\xe2\x96\x81" /* ▁ */, "'s", "\t"};
    struct rng r;
    rng_seed(&r, 1234);
    for (int k = 0; k < 2; k++) {
        if (!tk[k])
            continue;
        int n_ok = 0, split = 0;
        for (int trial = 0; trial < 200; trial++) {
            char s[512];
            size_t len = 0;
            int parts = 1 + (int)(rng_next(&r) % 40);
            for (int p = 0; p < parts; p++) {
                const char *c = pool[rng_next(&r) % (sizeof pool / sizeof pool[0])];
                size_t cl = strlen(c);
                memcpy(s + len, c, cl);
                len += cl;
            }
            bool ok = stream_roundtrip(tk[k], s, len, &split);
            n_ok += ok;
            if (!ok) {
                fprintf(stderr, "stream round trip failed for '");
                print_escaped(stderr, s, len);
                fprintf(stderr, "'\n");
            }
            CHECK(ok);
        }
        printf("stream %s: %d/200 random texts, %d tokens held back mid-character\n",
               k ? "spm" : "bpe", n_ok, split);
        CHECKF(split > 50, "the random texts should split characters across tokens");
    }
    struct tokenizer *spm = tk[1];
    if (spm) {
        /* 🦙 is four byte tokens in this vocabulary */
        const char *txt;
        size_t tl;
        struct tokenizer_stream *st;
        CHECK(tokenizer_stream_create(spm, false, false, &st) == 0);
        int32_t llama[4] = {3 + 0xf0, 3 + 0x9f, 3 + 0xa6, 3 + 0x99};
        for (int i = 0; i < 3; i++)
            CHECK(tokenizer_stream_push(st, llama[i], &txt, &tl) == 0 && tl == 0);
        CHECK(tokenizer_stream_push(st, llama[3], &txt, &tl) == 0 && tl == 4 &&
              !memcmp(txt, "\xf0\x9f\xa6\x99", 4));
        /* a byte that can never start a character: U+FFFD at once */
        CHECK(tokenizer_stream_push(st, 3 + 0xff, &txt, &tl) == 0 && tl == 3 &&
              !memcmp(txt, "\xef\xbf\xbd", 3));
        /* an unfinished character at the end: U+FFFD on flush */
        CHECK(tokenizer_stream_push(st, 3 + 0xe2, &txt, &tl) == 0 && tl == 0);
        CHECK(tokenizer_stream_push(st, 3 + 0x82, &txt, &tl) == 0 && tl == 0);
        CHECK(tokenizer_stream_flush(st, &txt, &tl) == 0 && tl == 3 &&
              !memcmp(txt, "\xef\xbf\xbd", 3));
        /* a broken sequence followed by ASCII: FFFD then the letter */
        CHECK(tokenizer_stream_push(st, 3 + 0xe2, &txt, &tl) == 0 && tl == 0);
        CHECK(tokenizer_stream_push(st, 3 + 'A', &txt, &tl) == 0 && tl == 4 &&
              !memcmp(txt, "\xef\xbf\xbd" "A", 4));
        /* continuing a prompt keeps the word's space; a new text drops it */
        int32_t hello = tokenizer_find(spm, "\xe2\x96\x81Hello", 8);
        CHECK(hello >= 0);
        CHECK(tokenizer_stream_push(st, hello, &txt, &tl) == 0 && tl == 6 &&
              !memcmp(txt, " Hello", 6));
        CHECK(tokenizer_stream_push(st, -1, &txt, &tl) == PAGODA_EINVAL);
        tokenizer_stream_free(st);
        CHECK(tokenizer_stream_create(spm, false, true, &st) == 0);
        CHECK(tokenizer_stream_push(st, 1, &txt, &tl) == 0 && tl == 0); /* BOS hidden */
        CHECK(tokenizer_stream_push(st, hello, &txt, &tl) == 0 && tl == 5 &&
              !memcmp(txt, "Hello", 5));
        tokenizer_stream_free(st);
    }
    tokenizer_free(tk[0]);
    tokenizer_free(tk[1]);
}

/* Arbitrary bytes (invalid UTF-8 included) must encode without trouble and,
 * with all 256 byte tokens in the vocabulary, decode back unchanged. */
static void test_random_bytes(void)
{
    static const char *const vocabs[] = {"vocab/ggml-vocab-gpt-2.gguf",
                                         "vocab/ggml-vocab-llama-spm.gguf",
                                         "vocab/ggml-vocab-falcon.gguf"};
    static const unsigned char common[] = {' ', 'a', 'e', '\n', '\'', '1', '.', 0xc3, 0xa9,
                                           0xe2, 0x80, 0xf0, 0x9f, 0xff, 0x00};
    struct rng r;
    rng_seed(&r, 99);
    for (size_t v = 0; v < 3; v++) {
        struct tokenizer *t = load_tok(vocabs[v], NULL);
        if (!t)
            continue;
        int n_rt = 0, n_case = 300;
        for (int c = 0; c < n_case; c++) {
            unsigned char s[300];
            size_t len = 1 + rng_next(&r) % sizeof s;
            for (size_t i = 0; i < len; i++)
                s[i] = rng_next(&r) % 2 ? common[rng_next(&r) % sizeof common]
                                        : (unsigned char)rng_next(&r);
            if (tokenizer_kind(t) == TOKENIZER_SPM)
                for (size_t i = 0; i + 2 < len; i++)
                    if (s[i] == 0xe2 && s[i + 1] == 0x96 && s[i + 2] == 0x81)
                        s[i] = 'x'; /* U+2581 would come back as a space */
            size_t n;
            int32_t *ids = encode(t, (const char *)s, len, c % 2, false, &n);
            char out[1024];
            size_t dn;
            int rc = tokenizer_decode(t, ids, n, false, out, sizeof out, &dn);
            n_rt += rc == 0 && dn == len && !memcmp(out, s, len);
            free(ids);
        }
        printf("random bytes %-34s decode(encode(x)) == x %d/%d\n", vocabs[v], n_rt, n_case);
        /* falcon's vocabulary lacks the bytes UTF-8 never uses (0xC0, 0xFF, ...):
         * those bytes are dropped, as llama.cpp drops them */
        if (v < 2)
            CHECK(n_rt == n_case);
        else
            CHECK(n_rt > 0);
        tokenizer_free(t);
    }
}

static void test_speed(void)
{
    static const char *const vocabs[] = {"vocab/ggml-vocab-gpt-2.gguf",
                                         "vocab/ggml-vocab-llama-spm.gguf",
                                         "vocab/ggml-vocab-deepseek-llm.gguf"};
    size_t inp_len;
    char *inp = test_read_file(ref_path("vocab/ggml-vocab-gpt-2.gguf.inp"), &inp_len);
    if (!inp)
        return;
    size_t len = 100 * 1024;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i += inp_len)
        memcpy(text + i, inp, len - i < inp_len ? len - i : inp_len);
    /* do not end inside a character */
    while (len && ((unsigned char)text[len - 1] & 0xc0) == 0x80)
        len--;
    if (len && (unsigned char)text[len - 1] >= 0xc0)
        len--;
    for (size_t v = 0; v < 3; v++) {
        double t0 = clock_now();
        struct tokenizer *t = load_tok(vocabs[v], NULL);
        double t1 = clock_now();
        if (!t)
            continue;
        size_t n;
        int32_t *ids = encode(t, text, len, false, false, &n);
        double t2 = clock_now();
        char *dec = malloc(len + 16);
        size_t dn;
        CHECK(tokenizer_decode(t, ids, n, false, dec, len + 16, &dn) == 0 && dn == len &&
              !memcmp(dec, text, len));
        printf("speed %-36s load %.0f ms, 100 KB -> %zu tokens in %.1f ms (%.1f MB/s)\n",
               vocabs[v], (t1 - t0) * 1e3, n, (t2 - t1) * 1e3, len / (t2 - t1) / 1e6);
        CHECKF(t2 - t1 < (SLOW_BUILD ? 10.0 : 0.5), "encoding 100 KB took %.2f s", t2 - t1);
        free(dec);
        free(ids);
        tokenizer_free(t);
    }
    free(text);
    free(inp);
}

/* ---- small synthesized files: validation and the SPM rules by hand ---- */

static const char *tmp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/pagoda_tok_test_%d.gguf", (int)getpid());
    return path;
}

/* Writes w, opens it and tries to load a tokenizer. Returns the status;
 * *t gets the tokenizer on success. */
static int try_load(struct gguf_writer *w, struct tokenizer **t, char *err, size_t errlen)
{
    struct gguf_file *g = NULL;
    *t = NULL;
    int rc = gguf_writer_write(w, tmp_path(), err, errlen);
    CHECKF(rc == 0, "writing the test file: %s", err);
    if (rc)
        return rc;
    rc = gguf_open(tmp_path(), &g, err, errlen);
    CHECKF(rc == 0, "opening the test file: %s", err);
    if (rc)
        return rc;
    rc = tokenizer_load(g, t, err, errlen);
    gguf_close(g);
    unlink(tmp_path());
    return rc;
}

/* A tiny SentencePiece vocabulary: specials, 256 byte tokens, a few pieces. */
static struct gguf_writer *tiny_spm(void)
{
    static const char *const extra[] = {"\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a", "ab",
                                        "\xe2\x96\x81" "ab", "ba", "\xe2\x96\x81" "b"};
    static const float extra_score[] = {-1, -2, -2, -3, -4, -9, -1, -5};
    enum { N_EXTRA = sizeof extra / sizeof extra[0], N = 3 + 256 + N_EXTRA };
    static char bytes[256][7];
    const char *toks[N];
    float scores[N];
    int32_t types[N];
    toks[0] = "<unk>", toks[1] = "<s>", toks[2] = "</s>";
    types[0] = 2, types[1] = 3, types[2] = 3;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        toks[3 + b] = bytes[b];
        types[3 + b] = 6;
    }
    for (int i = 0; i < N_EXTRA; i++) {
        toks[259 + i] = extra[i];
        types[259 + i] = 1;
        scores[259 + i] = extra_score[i];
    }
    for (int i = 0; i < 259; i++)
        scores[i] = 0;
    struct gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, N);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, N);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, N);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    return w;
}

static void expect_error(struct gguf_writer *w, int code, const char *needle)
{
    char err[256] = "";
    struct tokenizer *t;
    int rc = try_load(w, &t, err, sizeof err);
    CHECKF(rc == code && strstr(err, needle), "want %d mentioning '%s', got %d: %s", code,
           needle, rc, err);
    tokenizer_free(t);
    gguf_writer_free(w);
}

static void test_synthetic(void)
{
    char err[256];
    struct tokenizer *t;
    struct gguf_writer *w = tiny_spm();
    int rc = try_load(w, &t, err, sizeof err);
    gguf_writer_free(w);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        size_t n;
        /* "▁ab" (-9) loses to "▁a"+"b": best-scoring pairs merge first and
         * "▁a" (-3) beats "ab" (-4); then "▁a b" is a token worth -9 */
        int32_t *ids = encode(t, "ab", 2, false, false, &n);
        CHECKF(n == 1 && ids[0] == 259 + 5, "got %zu tokens, first %d", n, n ? ids[0] : -1);
        free(ids);
        /* "c" is no piece: byte fallback after the space token */
        ids = encode(t, "c", 1, true, false, &n);
        CHECK(n == 3 && ids[0] == 1 && ids[1] == 259 && ids[2] == 3 + 'c');
        free(ids);
        /* "bab": "▁b" -5, "ba" -1, "ab" -4 -> ba first, then ▁+ba has no token */
        ids = encode(t, "bab", 3, false, false, &n);
        CHECK(n == 3 && ids[0] == 259 && ids[1] == 259 + 6 && ids[2] == 259 + 2);
        free(ids);
        char buf[16];
        int32_t seq[3] = {1, 259 + 3, 259 + 2};
        CHECK(tokenizer_decode(t, seq, 3, false, buf, sizeof buf, &n) == 0 && n == 2 &&
              !memcmp(buf, "ab", 2));
        tokenizer_free(t);
    }

    w = tiny_spm();
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", false);
    rc = try_load(w, &t, err, sizeof err);
    gguf_writer_free(w);
    if (rc == 0) {
        size_t n;
        int32_t *ids = encode(t, "ab", 2, false, false, &n);
        CHECK(n == 1 && ids[0] == 259 + 4 && !tokenizer_add_space_prefix(t));
        free(ids);
        tokenizer_free(t);
    }

    w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "llama");
    expect_error(w, PAGODA_EFORMAT, "tokenizer.ggml.model");

    w = tiny_spm();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    expect_error(w, PAGODA_EUNSUPPORTED, "bert");

    w = tiny_spm();
    uint32_t nums[3] = {1, 2, 3};
    gguf_writer_set_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_UINT32, nums, 3);
    expect_error(w, PAGODA_EFORMAT, "tokenizer.ggml.tokens");

    w = tiny_spm();
    float few[3] = {0, 0, 0};
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, few, 3);
    expect_error(w, PAGODA_EFORMAT, "tokenizer.ggml.scores");

    w = tiny_spm();
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 5000);
    expect_error(w, PAGODA_EFORMAT, "bos_token_id");

    w = tiny_spm();
    gguf_writer_set_str(w, "tokenizer.ggml.eos_token_id", "two");
    expect_error(w, PAGODA_EFORMAT, "eos_token_id");

    w = tiny_spm();
    int32_t types[3] = {1, 9, 1};
    const char *three[3] = {"x", "y", "z"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", three, 3);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, few, 3);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
    expect_error(w, PAGODA_EFORMAT, "token_type[1]");

    w = tiny_spm();
    const char *dup[3] = {"x", "y", "x"};
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", dup, 3);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, few, 3);
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, nums, 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 0);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0);
    expect_error(w, PAGODA_EFORMAT, "twice");

    /* gpt2: merges required, the pre-tokenizer must be known */
    const char *bt[4] = {"a", "b", "ab", "<|endoftext|>"};
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bt, 4);
    expect_error(w, PAGODA_EFORMAT, "merges");

    const char *merges[1] = {"a b"};
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bt, 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    expect_error(w, PAGODA_EUNSUPPORTED, "no-such-pre");

    const char *badm[1] = {"ab"};
    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bt, 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", badm, 1);
    expect_error(w, PAGODA_EFORMAT, "merges[0]");

    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bt, 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    expect_error(w, PAGODA_EFORMAT, "BOS");

    w = gguf_writer_create();
    gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", bt, 4);
    gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 3);
    gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 0xffffffffu);
    rc = try_load(w, &t, err, sizeof err);
    gguf_writer_free(w);
    CHECKF(rc == 0, "%s", err);
    if (rc == 0) {
        /* llama-bpe adds BOS by default; an id of 0xFFFFFFFF means none */
        size_t n;
        int32_t *ids = encode(t, "abba", 4, true, false, &n);
        CHECK(n == 4 && ids[0] == 3 && ids[1] == 2 && ids[2] == 1 && ids[3] == 0);
        CHECK(tokenizer_eos(t) == TOKEN_NONE && tokenizer_is_eog(t, 3));
        free(ids);
        tokenizer_free(t);
    }
}

/* Word splits worked out by hand from each family's regexes, for the
 * pre-tokenizers that have no test vectors here (Llama 3, Qwen2, ...).
 * Words are separated by '|' in want. */
static void check_split(const char *pre, const char *text, const char *want)
{
    struct pretok *p;
    bool im, ab;
    char err[256];
    int rc = pretok_create(pre, &p, &im, &ab, err, sizeof err);
    CHECKF(rc == 0, "%s: %s", pre, err);
    if (rc)
        return;
    size_t *spans, n;
    rc = pretok_split(p, text, strlen(text), &spans, &n);
    CHECK(rc == 0);
    char got[1024];
    size_t g = 0;
    for (size_t i = 0; i < n && g + spans[2 * i + 1] + 2 < sizeof got; i++) {
        if (i)
            got[g++] = '|';
        memcpy(got + g, text + spans[2 * i], spans[2 * i + 1]);
        g += spans[2 * i + 1];
    }
    got[g] = 0;
    CHECKF(strcmp(got, want) == 0, "pre-tokenizer %s:\n   got  '%s'\n   want '%s'", pre, got,
           want);
    free(spans);
    pretok_free(p);
}

static void test_pretok(void)
{
    const char *s = "Hello, y'all! I'M 1234567 \n\n  x";
    check_split("llama-bpe", s, "Hello|,| y|'all|!| I|'M| |123|456|7| \n\n| | x");
    check_split("qwen2", s, "Hello|,| y|'all|!| I|'M| |1|2|3|4|5|6|7| \n\n| | x");
    check_split("gpt-2", s, "Hello|,| y|'|all|!| I|'|M| 1234567| \n\n | x");
    check_split("smollm", s, "Hello|,| y|'|all|!| I|'|M| |1|2|3|4|5|6|7| \n\n | x");
    check_split("llama-bpe", "a...\n\nb  \t", "a|...\n\n|b|  \t");
    check_split("qwen2", "\xce\xb1\xce\xb2 \xe4\xbd\xa0\xe5\xa5\xbd!!\r\n",
                "\xce\xb1\xce\xb2| \xe4\xbd\xa0\xe5\xa5\xbd|!!\r\n");
    check_split("gpt-4o", "HelloWorld it's", "Hello|World| it's");
    /* bytes that are not UTF-8 stay in their own piece */
    check_split("gpt-2", "ab\xff\xfe cd", "ab|\xff\xfe| cd");
    struct pretok *p;
    bool im = false, ab = false;
    char err[256];
    CHECK(pretok_create("llama-bpe", &p, &im, &ab, err, sizeof err) == 0 && im && ab);
    pretok_free(p);
    CHECK(pretok_create("qwen2", &p, &im, &ab, err, sizeof err) == 0 && !im && !ab);
    pretok_free(p);
    /* every family's regexes compile */
    static const char *const names[] = {"default", "gpt-2", "llama3", "dbrx", "qwen2",
                                        "starcoder", "falcon", "deepseek-llm", "deepseek-coder",
                                        "deepseek-v3", "poro-chat", "viking", "tekken", "gpt-4o",
                                        "bailingmoe", "seed-coder", "mpt", "refact", "smollm"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int rc = pretok_create(names[i], &p, &im, &ab, err, sizeof err);
        CHECKF(rc == 0, "%s: %s", names[i], err);
        if (rc == 0)
            pretok_free(p);
    }
}

int main(void)
{
    if (!test_reference_dir())
        return TEST_SKIP_EXIT;
    static const char *const vocabs[] = {"llama-spm",    "phi-3",          "gpt-2",
                                         "deepseek-coder", "deepseek-llm", "falcon",
                                         "mpt",          "refact",         "starcoder"};
    int pass = 0, total = 0;
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++)
        test_vocab(vocabs[i], &pass, &total);
    printf("all vocabularies: %d/%d test strings tokenized exactly\n", pass, total);
    test_prompts("stories260K.gguf", "stories260K.json");
    test_prompts("tiny-qwen2-f16.gguf", "tiny-qwen2-f16.json");
    test_pretok();
    test_special();
    test_stream();
    test_synthetic();
    test_random_bytes();
    test_speed();
    TEST_END();
}
