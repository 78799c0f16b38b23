/*
 * safetensors.c: the safetensors reader. A file is an 8-byte little-endian
 * header length, a JSON object {name: {dtype, shape, data_offsets}} and the
 * raw tensor bytes; offsets count from the end of the header. Nothing from
 * the file is trusted: sizes, shapes and ranges are checked with overflow in
 * mind, and shard names from the index must be plain file names.
 */
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fp16.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20) /* JSON headers are a few MB at most */
#define ST_MAX_FILES 4096

static int map_file(const char *path, void **map, size_t *size, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, errlen, PAGODA_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, errlen, PAGODA_EIO, "%s: not a regular file", path);
    }
    *size = (size_t)st.st_size;
    *map = NULL;
    if (*size > 0) {
        void *p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err_set(err, errlen, PAGODA_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
        *map = p;
    }
    close(fd);
    return 0;
}

int st_read_json(const char *path, size_t max_bytes, struct cJSON **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errlen, errno == ENOENT ? PAGODA_ENOTFOUND : PAGODA_EIO, "%s: %s",
                       path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_bytes) {
        fclose(f);
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: not a regular file of at most %zu bytes",
                       path, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory reading %s", path);
    }
    const size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return err_set(err, errlen, PAGODA_EIO, "%s: short read", path);
    }
    buf[n] = 0;
    cJSON *j = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (!j)
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: invalid JSON", path);
    *out = j;
    return 0;
}

static size_t dtype_size(const char *s, enum st_dtype *dt)
{
    static const struct {
        const char *name;
        size_t size;
        enum st_dtype dt;
    } known[] = {
        {"F32", 4, ST_F32},     {"F16", 2, ST_F16},     {"BF16", 2, ST_BF16},
        {"F64", 8, ST_OTHER},   {"I64", 8, ST_OTHER},   {"U64", 8, ST_OTHER},
        {"I32", 4, ST_OTHER},   {"U32", 4, ST_OTHER},   {"I16", 2, ST_OTHER},
        {"U16", 2, ST_OTHER},   {"I8", 1, ST_OTHER},    {"U8", 1, ST_OTHER},
        {"BOOL", 1, ST_OTHER},  {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(s, known[i].name)) {
            *dt = known[i].dt;
            return known[i].size;
        }
    return 0;
}

/* A JSON number that is a whole value in [0, 2^53]. */
static int get_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return -1;
    const double d = j->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != floor(d))
        return -1;
    *out = (uint64_t)d;
    return 0;
}

static int add_tensor(struct st_model *m, int *cap, const char *name, const cJSON *desc, int file,
                      const char *path, char *err, size_t errlen)
{
    const uint8_t *base = m->maps[file];
    const size_t size = m->sizes[file];
    uint64_t hlen = 0;
    memcpy(&hlen, base, 8); /* little-endian hosts only, as everywhere in pagoda */
    const uint64_t data_start = 8 + hlen, data_size = size - data_start;

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(desc, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(desc, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(desc, "data_offsets");
    if (!cJSON_IsObject(desc) || !cJSON_IsString(dtype) || !cJSON_IsArray(shape) ||
        !cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: tensor '%s' needs dtype, shape and data_offsets [begin, end]", path,
                       name);
    struct st_tensor t;
    memset(&t, 0, sizeof t);
    const size_t es = dtype_size(dtype->valuestring, &t.dtype);
    if (!es || strlen(dtype->valuestring) >= sizeof t.dtype_name)
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: tensor '%s' has unknown dtype '%.20s'",
                       path, name, dtype->valuestring);
    strcpy(t.dtype_name, dtype->valuestring);
    t.n_dims = cJSON_GetArraySize(shape);
    if (t.n_dims > ST_MAX_DIMS)
        return err_set(err, errlen, PAGODA_EUNSUPPORTED, "%s: tensor '%s' has %d dimensions", path,
                       name, t.n_dims);
    uint64_t n = 1;
    for (int d = 0; d < t.n_dims; d++) {
        uint64_t v;
        if (get_uint(cJSON_GetArrayItem(shape, d), &v) || v > ((uint64_t)1 << 40))
            return err_set(err, errlen, PAGODA_EFORMAT, "%s: tensor '%s': bad shape entry %d",
                           path, name, d);
        if (v && n > UINT64_MAX / 16 / v)
            return err_set(err, errlen, PAGODA_EFORMAT, "%s: tensor '%s': shape too large", path,
                           name);
        n *= v;
        t.shape[d] = (int64_t)v;
    }
    uint64_t b, e;
    if (get_uint(cJSON_GetArrayItem(offs, 0), &b) || get_uint(cJSON_GetArrayItem(offs, 1), &e) ||
        b > e || e > data_size)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: tensor '%s': data_offsets outside the %llu data bytes", path, name,
                       (unsigned long long)data_size);
    if (e - b != n * es)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: tensor '%s': %llu bytes for %llu elements of %s", path, name,
                       (unsigned long long)(e - b), (unsigned long long)n, t.dtype_name);
    if (st_find(m, name))
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: tensor '%s' appears twice", path, name);
    t.n_elems = (int64_t)n;
    t.data = base + data_start + b;
    t.nbytes = (size_t)(e - b);
    t.file = file;
    if (!(t.name = strdup(name)))
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    if (m->n_tensors == *cap) {
        const int nc = *cap ? *cap * 2 : 64;
        struct st_tensor *nt = realloc(m->tensors, sizeof *nt * (size_t)nc);
        if (!nt) {
            free(t.name);
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        }
        m->tensors = nt;
        *cap = nc;
    }
    m->tensors[m->n_tensors++] = t;
    return 0;
}

/* Maps one file as m's next shard and adds its tensors. */
static int load_file(struct st_model *m, int *cap, const char *path, char *err, size_t errlen)
{
    const int file = m->n_files;
    void *map = NULL;
    size_t size = 0;
    int rc = map_file(path, &map, &size, err, errlen);
    if (rc)
        return rc;
    m->maps[file] = map;
    m->sizes[file] = size;
    m->n_files++;
    uint64_t hlen = 0;
    if (size < 8)
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: too short for a safetensors file", path);
    memcpy(&hlen, map, 8);
    if (hlen < 2 || hlen > ST_MAX_HEADER || hlen > size - 8)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: header length %llu does not fit the %zu-byte file", path,
                       (unsigned long long)hlen, size);
    cJSON *root = cJSON_ParseWithLength((const char *)map + 8, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: header is not a JSON object", path);
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        if (!c->string)
            continue;
        if (!strcmp(c->string, "__metadata__"))
            continue;
        if ((rc = add_tensor(m, cap, c->string, c, file, path, err, errlen)))
            break;
    }
    cJSON_Delete(root);
    return rc;
}

static bool plain_name(const char *s)
{
    const size_t n = strlen(s);
    return n > 12 && n < 256 && !strchr(s, '/') && s[0] != '.' &&
           !strcmp(s + n - 12, ".safetensors");
}

static int open_index(struct st_model *m, int *cap, const char *dir, const char *index,
                      char *err, size_t errlen)
{
    cJSON *j = NULL;
    int rc = st_read_json(index, (size_t)64 << 20, &j, err, errlen);
    if (rc)
        return rc;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(map) || !map->child) {
        cJSON_Delete(j);
        return err_set(err, errlen, PAGODA_EFORMAT, "%s: no weight_map object", index);
    }
    /* Shards in order of first mention. */
    const char **names = calloc(ST_MAX_FILES, sizeof *names);
    int n_names = 0;
    if (!names)
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    for (const cJSON *c = map->child; !rc && c; c = c->next) {
        if (!cJSON_IsString(c) || !plain_name(c->valuestring)) {
            rc = err_set(err, errlen, PAGODA_EFORMAT,
                         "%s: weight_map entry '%.64s' is not a .safetensors file name", index,
                         c->string ? c->string : "");
            break;
        }
        int k = 0;
        while (k < n_names && strcmp(names[k], c->valuestring))
            k++;
        if (k == n_names) {
            if (n_names == ST_MAX_FILES) {
                rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "%s: too many shards", index);
                break;
            }
            names[n_names++] = c->valuestring;
        }
    }
    for (int k = 0; !rc && k < n_names; k++) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, names[k]) >= sizeof path) {
            rc = err_set(err, errlen, PAGODA_EINVAL, "shard path too long");
            break;
        }
        rc = load_file(m, cap, path, err, errlen);
    }
    /* Every mapped name must be in the shard the index names. */
    for (const cJSON *c = map->child; !rc && c; c = c->next) {
        const struct st_tensor *t = st_find(m, c->string);
        int k = 0;
        while (k < n_names && strcmp(names[k], c->valuestring))
            k++;
        if (!t || t->file != k)
            rc = err_set(err, errlen, PAGODA_EFORMAT, "%s: tensor '%.64s' is not in %s", index,
                         c->string, c->valuestring);
    }
    free(names);
    cJSON_Delete(j);
    return rc;
}

int st_open(const char *path, struct st_model **out, char *err, size_t errlen)
{
    *out = NULL;
    struct st_model *m = calloc(1, sizeof *m);
    if (!m)
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    m->maps = calloc(ST_MAX_FILES, sizeof *m->maps);
    m->sizes = calloc(ST_MAX_FILES, sizeof *m->sizes);
    if (!m->maps || !m->sizes) {
        st_close(m);
        return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
    }
    int cap = 0, rc;
    struct stat st;
    if (stat(path, &st) != 0) {
        rc = err_set(err, errlen, PAGODA_ENOTFOUND, "%s: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        char p[4096];
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", path);
        if (access(p, F_OK) == 0) {
            rc = open_index(m, &cap, path, p, err, errlen);
        } else {
            snprintf(p, sizeof p, "%s/model.safetensors", path);
            if (access(p, F_OK) == 0)
                rc = load_file(m, &cap, p, err, errlen);
            else
                rc = err_set(err, errlen, PAGODA_ENOTFOUND,
                             "%s: no model.safetensors or model.safetensors.index.json", path);
        }
    } else {
        rc = load_file(m, &cap, path, err, errlen);
    }
    if (rc) {
        st_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

void st_close(struct st_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_tensors; i++)
        free(m->tensors[i].name);
    free(m->tensors);
    for (int i = 0; i < m->n_files; i++)
        if (m->maps[i])
            munmap(m->maps[i], m->sizes[i]);
    free(m->maps);
    free(m->sizes);
    free(m);
}

const struct st_tensor *st_find(const struct st_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    return NULL;
}

int st_read_f32(const struct st_tensor *t, float *dst, char *err, size_t errlen)
{
    const uint8_t *s = t->data;
    switch (t->dtype) {
    case ST_F32:
        memcpy(dst, s, (size_t)t->n_elems * 4);
        return 0;
    case ST_F16:
    case ST_BF16:
        for (int64_t i = 0; i < t->n_elems; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = t->dtype == ST_F16 ? f16_to_f32(h) : bf16_to_f32(h);
        }
        return 0;
    default:
        return err_set(err, errlen, PAGODA_EUNSUPPORTED,
                       "tensor '%s' has dtype %s (F32, F16 or BF16 expected)", t->name,
                       t->dtype_name);
    }
}
