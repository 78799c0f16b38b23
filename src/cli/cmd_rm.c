/*
 * cmd_rm.c: `pagoda rm NAME...`: deletes models from the cache
 * (<home>/models). NAME is what `pagoda list` shows ("ORG/REPO/FILE.gguf"),
 * with or without ".gguf", or just the file name when only one cached file
 * has it; "default" is the default model. Only *.gguf files (and their
 * unfinished *.part downloads) inside the cache are ever removed, and
 * folders left empty are removed with them.
 */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/paths.h"
#include "cli/cli.h"

#define RM_MAX_MATCHES 16

struct rm_scan {
    const char *root;
    size_t root_len;
    const char *base;   /* the file name looked for */
    char *hits[RM_MAX_MATCHES];
    int n;              /* matches (may exceed RM_MAX_MATCHES) */
    int oom;
};

/* One scan at a time: nftw takes no user pointer. */
static struct rm_scan *rm_cur;

static bool rm_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcasecmp(s + n - m, suffix);
}

static int rm_visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    struct rm_scan *s = rm_cur;
    if (flag != FTW_F || !S_ISREG(st->st_mode) || strcmp(path + ftw->base, s->base))
        return 0;
    if (strncmp(path, s->root, s->root_len) || path[s->root_len] != '/')
        return 0;
    if (s->n < RM_MAX_MATCHES) {
        s->hits[s->n] = strdup(path + s->root_len + 1);
        if (!s->hits[s->n]) {
            s->oom = 1;
            return 1;
        }
    }
    s->n++;
    return 0;
}

/* A name that stays inside the cache: relative, no "." or ".." parts. */
static bool rm_safe_name(const char *name)
{
    if (!*name || name[0] == '/' || strlen(name) > 2048)
        return false;
    const char *p = name;
    for (;;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

static bool rm_is_file(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Removes the folders between path's folder and root that are now empty. */
static void rm_prune(const char *root, const char *path)
{
    char d[8192];
    snprintf(d, sizeof d, "%s", path);
    size_t rl = strlen(root);
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash || (size_t)(slash - d) <= rl)
            return;
        *slash = '\0';
        if (rmdir(d) != 0)
            return;
    }
}

/* Finds the cached file name stands for; writes its name inside root into
 * rel. Returns 0, or 1 after printing why there is none (or several). */
static int rm_resolve(const char *root, const char *name, char *rel, size_t rellen)
{
    if (!strcmp(name, "default") || !strcmp(name, "stories15M"))
        name = "stories15M.gguf";
    if (!rm_safe_name(name))
        return cli_fail("rm: '%s' is not a model name (see `pagoda list`)", name);
    if (!rm_ends_with(name, ".gguf") && !rm_ends_with(name, ".gguf.part")) {
        /* "ORG/REPO/FILE" for "ORG/REPO/FILE.gguf" */
        int n = snprintf(rel, rellen, "%s.gguf", name);
        if (n < 0 || (size_t)n >= rellen)
            return cli_fail("rm: name too long: %s", name);
    } else if (snprintf(rel, rellen, "%s", name) >= (int)rellen) {
        return cli_fail("rm: name too long: %s", name);
    }
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (rm_is_file(path))
        return 0;
    char part[8200];
    snprintf(part, sizeof part, "%s.part", path);
    if (rm_is_file(part))
        return 0; /* only an unfinished download: remove that */

    /* A bare file name: look for it in the whole cache. */
    if (strchr(rel, '/'))
        return cli_fail("rm: no cached model named '%s' (see `pagoda list`)", name);
    struct rm_scan s = {.root = root, .root_len = strlen(root), .base = rel};
    rm_cur = &s;
    int walk = nftw(root, rm_visit, 16, FTW_PHYS);
    rm_cur = NULL;
    int rc = 0;
    if (s.oom || walk != 0) {
        rc = cli_fail("rm: cannot search %s", root);
    } else if (s.n == 0) {
        rc = cli_fail("rm: no cached model named '%s' (see `pagoda list`)", name);
    } else if (s.n > 1) {
        fprintf(stderr, "pagoda: rm: several cached files are named %s:\n", rel);
        for (int i = 0; i < s.n && i < RM_MAX_MATCHES; i++)
            fprintf(stderr, "  %s\n", s.hits[i]);
        rc = cli_fail("rm: '%s' is ambiguous: give the whole name", name);
    } else {
        snprintf(rel, rellen, "%s", s.hits[0]);
    }
    for (int i = 0; i < s.n && i < RM_MAX_MATCHES; i++)
        free(s.hits[i]);
    return rc;
}

static int rm_one(const char *root, const char *name)
{
    char rel[4096];
    if (rm_resolve(root, name, rel, sizeof rel))
        return 1;
    char path[8192], part[8200];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(part, sizeof part, "%s.part", path);
    struct stat st;
    long long bytes = 0;
    bool removed = false;
    const char *const victims[2] = {path, part};
    for (int i = 0; i < 2; i++) {
        if (!rm_is_file(victims[i]) || lstat(victims[i], &st) != 0)
            continue;
        if (unlink(victims[i]) != 0)
            return cli_fail("rm: cannot remove %s: %s", victims[i], strerror(errno));
        bytes += (long long)st.st_size;
        removed = true;
    }
    if (!removed)
        return cli_fail("rm: no cached model named '%s' (see `pagoda list`)", name);
    rm_prune(root, path);
    printf("removed %s (%.1f MiB)\n", rel, (double)bytes / (1024.0 * 1024.0));
    return 0;
}

static void rm_usage(FILE *f)
{
    fprintf(f, "usage: pagoda rm NAME...\n\n"
               "Removes models from the local cache. NAME is one that `pagoda list` shows\n"
               "(ORG/REPO/FILE.gguf; the .gguf may be left out), a file name found only\n"
               "once in the cache, or `default`. An unfinished download of the file goes\n"
               "too.\n");
}

int cmd_rm(int argc, char **argv)
{
    int n_names = 0;
    bool names_only = false;
    for (int i = 1; i < argc; i++) {
        if (!names_only && (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))) {
            rm_usage(stdout);
            return 0;
        }
        if (!names_only && !strcmp(argv[i], "--")) {
            names_only = true;
        } else if (!names_only && argv[i][0] == '-') {
            rm_usage(stderr);
            return cli_fail("rm: unknown option '%s'", argv[i]);
        } else {
            argv[++n_names] = argv[i]; /* names to the front, in order */
        }
    }
    if (n_names == 0) {
        rm_usage(stderr);
        return cli_fail("rm: which model? (see `pagoda list`)");
    }
    char root[4096], err[512];
    if (paths_models_dir(root, sizeof root, err, sizeof err) < 0)
        return cli_fail("rm: %s", err);
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        root[--rl] = '\0';
    int rc = 0;
    for (int i = 1; i <= n_names; i++)
        if (rm_one(root, argv[i]))
            rc = 1;
    return rc;
}
