/*
 * cmd_list.c: `pagoda list`: the GGUF files in the model cache
 * (<home>/models, see base/paths.h) with their size, weight type,
 * architecture and model name, as a table or as JSON. A name is the file's
 * path inside the cache folder ("stories15M.gguf", "ORG/REPO/FILE.gguf"):
 * what `pagoda rm` takes. Unfinished downloads (*.part) are mentioned apart.
 */
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/paths.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/quant_recipe.h"
#include "ops/types.h"

struct list_entry {
    char *name;          /* path inside the models folder */
    long long size;
    bool partial;        /* a *.gguf.part download in progress */
    char type[32];       /* "Q4_K_M", or the dominant tensor type */
    long long file_type; /* general.file_type, -1 absent */
    char arch[64];
    char model_name[128];
    char error[256];     /* why the file could not be read, or "" */
};

struct list_scan {
    const char *root;
    size_t root_len;
    struct list_entry *e;
    int n, cap;
    int oom;
};

/* One scan at a time: nftw takes no user pointer. */
static struct list_scan *list_cur;

static bool list_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcasecmp(s + n - m, suffix);
}

static int list_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    struct list_scan *s = list_cur;
    if (flag != FTW_F || !S_ISREG(st->st_mode))
        return 0;
    bool partial = list_ends_with(path, ".gguf.part");
    if (!partial && !list_ends_with(path, ".gguf"))
        return 0;
    if (strncmp(path, s->root, s->root_len) || path[s->root_len] != '/')
        return 0;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        struct list_entry *ne = realloc(s->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            s->oom = 1;
            return 1;
        }
        s->e = ne;
        s->cap = cap;
    }
    struct list_entry *e = &s->e[s->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(path + s->root_len + 1);
    if (!e->name) {
        s->oom = 1;
        return 1;
    }
    e->size = (long long)st->st_size;
    e->partial = partial;
    e->file_type = -1;
    s->n++;
    return 0;
}

static int list_cmp(const void *a, const void *b)
{
    const struct list_entry *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void list_copy_str(char *dst, size_t dstlen, struct gguf_str s)
{
    size_t n = s.len < dstlen - 1 ? (size_t)s.len : dstlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch; /* keep the table one line */
    }
    dst[n] = '\0';
}

/* Fills in what the file's header says. */
static void list_inspect(const char *root, struct list_entry *e)
{
    if (e->partial)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, e->name);
    struct gguf_file *g = NULL;
    char err[256];
    if (gguf_open(path, &g, err, sizeof err) < 0) {
        snprintf(e->error, sizeof e->error, "%s", err);
        snprintf(e->type, sizeof e->type, "?");
        return;
    }
    struct gguf_str s;
    if (gguf_get_str(g, "general.architecture", &s))
        list_copy_str(e->arch, sizeof e->arch, s);
    if (gguf_get_str(g, "general.name", &s))
        list_copy_str(e->model_name, sizeof e->model_name, s);
    int64_t ft;
    if (gguf_get_int(g, "general.file_type", &ft))
        e->file_type = ft;
    const char *ftn = e->file_type >= 0 ? quant_file_type_name(e->file_type) : NULL;
    if (ftn) {
        snprintf(e->type, sizeof e->type, "%s", ftn);
    } else {
        /* No declared type: the one holding the most bytes. */
        uint64_t bytes[256] = {0};
        for (uint64_t i = 0; i < g->n_tensors; i++)
            if (g->tensors[i].type >= 0 && g->tensors[i].type < 256)
                bytes[g->tensors[i].type] += g->tensors[i].nbytes;
        int best = -1;
        for (int t = 0; t < 256; t++)
            if (bytes[t] && (best < 0 || bytes[t] > bytes[best]))
                best = t;
        snprintf(e->type, sizeof e->type, "%s", best >= 0 ? type_name(best) : "-");
    }
    gguf_close(g);
}

static void list_size_str(long long b, char *out, size_t outlen)
{
    if (b >= (1LL << 30))
        snprintf(out, outlen, "%.2f GiB", (double)b / (double)(1LL << 30));
    else if (b >= (1LL << 20))
        snprintf(out, outlen, "%.1f MiB", (double)b / (double)(1LL << 20));
    else
        snprintf(out, outlen, "%.1f KiB", (double)b / 1024.0);
}

static void list_usage(FILE *f)
{
    fprintf(f, "usage: pagoda list [--json]\n\n"
               "Shows the models in the local cache ($PAGODA_HOME/models, default\n"
               "~/.cache/pagoda/models): name (what `pagoda rm` takes), size, weight type,\n"
               "architecture and model name. --json prints them as a JSON array.\n");
}

static int list_json(const char *root, const struct list_entry *e, int n)
{
    cJSON *arr = cJSON_CreateArray();
    bool ok = arr != NULL;
    for (int i = 0; ok && i < n; i++) {
        if (e[i].partial)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, e[i].name);
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(arr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddStringToObject(o, "name", e[i].name) &&
             cJSON_AddStringToObject(o, "path", path) &&
             cJSON_AddNumberToObject(o, "size", (double)e[i].size) &&
             cJSON_AddStringToObject(o, "type", e[i].type) &&
             (e[i].file_type >= 0 ? cJSON_AddNumberToObject(o, "file_type", (double)e[i].file_type)
                                  : cJSON_AddNullToObject(o, "file_type")) &&
             cJSON_AddStringToObject(o, "architecture", e[i].arch) &&
             cJSON_AddStringToObject(o, "model_name", e[i].model_name) &&
             (!e[i].error[0] || cJSON_AddStringToObject(o, "error", e[i].error));
    }
    char *text = ok ? cJSON_Print(arr) : NULL;
    cJSON_Delete(arr);
    if (!text)
        return cli_fail("list: out of memory");
    puts(text);
    free(text);
    return 0;
}

static void list_text(const char *root, const struct list_entry *e, int n)
{
    int n_models = 0, n_partial = 0;
    size_t w = 4;
    long long total = 0;
    for (int i = 0; i < n; i++) {
        if (e[i].partial) {
            n_partial++;
            continue;
        }
        n_models++;
        total += e[i].size;
        size_t l = strlen(e[i].name);
        if (l > w)
            w = l;
    }
    if (w > 72)
        w = 72;
    if (n_models == 0) {
        printf("no models in %s; `pagoda pull default` fetches one\n", root);
    } else {
        printf("%-*s %10s  %-8s %-10s %s\n", (int)w, "NAME", "SIZE", "TYPE", "ARCH", "MODEL");
        for (int i = 0; i < n; i++) {
            if (e[i].partial)
                continue;
            char sz[32];
            list_size_str(e[i].size, sz, sizeof sz);
            if (e[i].error[0])
                printf("%-*s %10s  %-8s unreadable: %s\n", (int)w, e[i].name, sz, e[i].type,
                       e[i].error);
            else
                printf("%-*s %10s  %-8s %-10s %s\n", (int)w, e[i].name, sz, e[i].type,
                       e[i].arch[0] ? e[i].arch : "-",
                       e[i].model_name[0] ? e[i].model_name : "-");
        }
        char sz[32];
        list_size_str(total, sz, sizeof sz);
        printf("%d model%s, %s in %s\n", n_models, n_models == 1 ? "" : "s", sz, root);
    }
    if (n_partial) {
        for (int i = 0; i < n; i++) {
            if (!e[i].partial)
                continue;
            char sz[32];
            list_size_str(e[i].size, sz, sizeof sz);
            printf("unfinished download: %s (%s so far; pulling it again resumes)\n", e[i].name,
                   sz);
        }
    }
}

int cmd_list(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            list_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else {
            list_usage(stderr);
            return cli_fail("list: unexpected argument '%s'", argv[i]);
        }
    }
    char root[4096], err[512];
    if (paths_models_dir(root, sizeof root, err, sizeof err) < 0)
        return cli_fail("list: %s", err);
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        root[--rl] = '\0';

    struct list_scan s = {.root = root, .root_len = rl};
    list_cur = &s;
    int walk = nftw(root, list_visit, 16, FTW_PHYS);
    list_cur = NULL;
    int rc = 0;
    if (s.oom) {
        rc = cli_fail("list: out of memory");
    } else if (walk != 0) {
        rc = cli_fail("list: cannot read %s", root);
    } else {
        if (s.n > 1)
            qsort(s.e, (size_t)s.n, sizeof *s.e, list_cmp);
        for (int i = 0; i < s.n; i++)
            list_inspect(root, &s.e[i]);
        if (json)
            rc = list_json(root, s.e, s.n);
        else
            list_text(root, s.e, s.n);
    }
    for (int i = 0; i < s.n; i++)
        free(s.e[i].name);
    free(s.e);
    return rc;
}
