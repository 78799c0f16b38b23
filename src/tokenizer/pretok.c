/*
 * pretok.c: the pre-tokenizers of byte-level BPE models, chosen by
 * tokenizer.ggml.pre. Each is a list of Unicode regexes (PCRE2 with UTF and
 * UCP) applied in turn: every piece left by the previous regex is cut into
 * its matches and the gaps between them (gaps are kept as pieces too). The
 * patterns are those of the models' own tokenizer.json files, with
 * case-insensitive groups such as (?i:'s) spelled as '[sS] so only ASCII
 * letters fold (Unicode folding would also take U+017F for 's').
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tokenizer/tok_internal.h"

#define MAX_REGEX 6

/* GPT-2's pattern; many models reuse it. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
/* Llama 3: digits in groups of up to three, newlines attached to symbols. */
#define RE_LLAMA3                                                                        \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*" \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
/* Qwen2: as Llama 3 but every digit alone. */
#define RE_QWEN2                                                                         \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"     \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

struct pretok_family {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    bool ignore_merges;
    bool add_bos;
    const char *re[MAX_REGEX];
};

static const struct pretok_family families[] = {
    {"default", false, false,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
      "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"gpt-2|phi-2|mpt|olmo|jais|trillion|granite-docling|jina-es|jina-de|gigachat|jina-v2-es|"
     "jina-v2-de|a.x-4.0|mellum|modern-bert|exaone4|jina-v1-en|jina-v2-code|roberta-bpe",
     false, false, {RE_GPT2}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", true, true,
     {RE_LLAMA3}},
    {"dbrx|smaug-bpe", false, false, {RE_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|megrez|hunyuan|grok-2|solar-open", false,
     false, {RE_QWEN2}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, false,
     {"\\p{N}", RE_GPT2}},
    {"falcon", false, false,
     {"[\\p{P}\\$\\+<=>\\^~\\|`]+",
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
      "[0-9][0-9][0-9]"}},
    {"deepseek-llm", false, false,
     {"[\\r\\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
      "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
      "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}"
      "\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}"
      "\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
      "\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}"
      "\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}"
      "\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
      "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
      "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
      "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
      "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"
      "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}"
      "\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
      "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
      "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}"
      "\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
      "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
      "\\s+$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", false, false,
     {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-v3|hunyuan-dense|joyai-llm", false, false,
     {"\\p{N}{1,3}",
      "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"poro-chat|bloom|gpt3-finnish", false, false,
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+"}},
    {"viking", false, false,
     {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
      "\\p{N}"}},
    {"tekken", true, true,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
      "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
      "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"gpt-4o|llama4", false, false,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
      RE_CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
      "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" RE_CONTRACTIONS "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
      "[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"bailingmoe|bailingmoe2|llada-moe", false, false,
     {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"}},
    {"seed-coder", false, false,
     {RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+"
                      "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
};

struct pretok {
    int n;
    pcre2_code *code[MAX_REGEX];
};

static bool name_in(const char *names, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = names;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        if (!bar)
            return false;
        p = bar + 1;
    }
}

static int compile(struct pretok *p, const char *re, const char *name, char *err, size_t errlen)
{
    int ec;
    PCRE2_SIZE eo;
    /* DOLLAR_ENDONLY: "$" is the end of the piece, not also before a final
     * newline. MATCH_INVALID_UTF: bytes that are not UTF-8 never match, so
     * they stay in gap pieces and still reach byte-level BPE intact. */
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED,
                                  PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY |
                                      PCRE2_MATCH_INVALID_UTF,
                                  &ec, &eo, NULL);
    if (!c) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "pre-tokenizer '%s': regex does not compile at %zu: %s", name, (size_t)eo,
                       (const char *)msg);
    }
    /* JIT is an optimisation only: without it pcre2_match interprets */
    pcre2_jit_compile(c, PCRE2_JIT_COMPLETE);
    p->code[p->n++] = c;
    return 0;
}

int pretok_create(const char *pre, struct pretok **out, bool *ignore_merges,
                  bool *add_bos_default, char *err, size_t errlen)
{
    const char *name = *pre ? pre : "default";
    const struct pretok_family *f = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0] && !f; i++)
        if (name_in(families[i].names, name))
            f = &families[i];
    if (!f)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "pre-tokenizer '%s' (tokenizer.ggml.pre) is not supported", name);
    struct pretok *p = calloc(1, sizeof *p);
    if (!p)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    int rc = 0;
    for (int i = 0; i < MAX_REGEX && f->re[i] && rc == 0; i++)
        rc = compile(p, f->re[i], name, err, errlen);
    if (rc < 0) {
        pretok_free(p);
        return rc;
    }
    *ignore_merges = f->ignore_merges;
    *add_bos_default = f->add_bos;
    *out = p;
    return 0;
}

void pretok_free(struct pretok *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        pcre2_code_free(p->code[i]);
    free(p);
}

struct span_list {
    size_t *v; /* offset, length pairs */
    size_t n, cap;
};

static int span_push(struct span_list *l, size_t off, size_t len)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *v = realloc(l->v, cap * 2 * sizeof *v);
        if (!v)
            return PAGODA_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[2 * l->n] = off;
    l->v[2 * l->n + 1] = len;
    l->n++;
    return 0;
}

static int match_at(const pcre2_code *c, const char *s, size_t len, size_t pos,
                    pcre2_match_data *md)
{
    int rc = pcre2_match(c, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) /* very long pieces: the interpreter uses the heap */
        rc = pcre2_match(c, (PCRE2_SPTR)s, len, pos, PCRE2_NO_JIT, md, NULL);
    return rc;
}

/* Cuts one piece [off, off+len) of text into matches and gaps. */
static int split_piece(const pcre2_code *c, pcre2_match_data *md, const char *text, size_t off,
                       size_t len, struct span_list *out)
{
    const char *s = text + off;
    size_t start = 0, pos = 0;
    int rc;
    while (pos <= len) {
        int m = match_at(c, s, len, pos, md);
        if (m == PCRE2_ERROR_NOMATCH)
            break;
        if (m < 0)
            return PAGODA_EUNSUPPORTED; /* a match limit: the text is pathological */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > start && (rc = span_push(out, off + start, ms - start)) < 0)
            return rc;
        if (me == ms) {
            /* an empty match only marks a cut; search on from the next character */
            start = ms;
            if (ms >= len)
                break;
            pos = ms + tok_utf8_len((uint8_t)s[ms]);
            if (pos > len)
                pos = len;
            continue;
        }
        if ((rc = span_push(out, off + ms, me - ms)) < 0)
            return rc;
        start = pos = me;
    }
    if (start < len && (rc = span_push(out, off + start, len - start)) < 0)
        return rc;
    return 0;
}

int pretok_split(const struct pretok *p, const char *text, size_t len, size_t **spans,
                 size_t *n_words)
{
    struct span_list cur = {0}, next = {0};
    int rc = 0;
    *spans = NULL;
    *n_words = 0;
    if (len == 0)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md || (rc = span_push(&cur, 0, len)) < 0) {
        pcre2_match_data_free(md);
        free(cur.v);
        return PAGODA_ENOMEM;
    }
    for (int r = 0; r < p->n && rc == 0; r++) {
        next.n = 0;
        for (size_t i = 0; i < cur.n && rc == 0; i++)
            rc = split_piece(p->code[r], md, text, cur.v[2 * i], cur.v[2 * i + 1], &next);
        struct span_list tmp = cur;
        cur = next;
        next = tmp;
    }
    pcre2_match_data_free(md);
    free(next.v);
    if (rc < 0) {
        free(cur.v);
        return rc;
    }
    *spans = cur.v;
    *n_words = cur.n;
    return 0;
}
