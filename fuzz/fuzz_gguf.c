/*
 * fuzz_gguf.c: a libFuzzer target for the GGUF reader. Any input must either
 * be rejected with a message or give a file whose every value, nested array
 * and tensor byte range can be touched without reading out of bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint8_t sink;

static void touch_bytes(const void *p, uint64_t n)
{
    if (n == 0)
        return;
    const uint8_t *b = p;
    sink ^= b[0];
    sink ^= b[n - 1];
}

static void walk_value(const struct gguf_value *v, int depth)
{
    if (depth > 64)
        __builtin_trap(); /* the reader caps nesting far below this */
    switch (v->type) {
    case GGUF_TYPE_STRING:
        touch_bytes(v->v.str.ptr, v->v.str.len);
        break;
    case GGUF_TYPE_ARRAY: {
        size_t esz = gguf_vtype_size(v->v.arr.type);
        if (esz) {
            touch_bytes(v->v.arr.data, v->v.arr.n * esz);
        } else {
            for (uint64_t i = 0; i < v->v.arr.n; i++) {
                if (v->v.arr.items[i].type != v->v.arr.type)
                    __builtin_trap();
                walk_value(&v->v.arr.items[i], depth + 1);
            }
        }
        break;
    }
    default:
        sink ^= (uint8_t)gguf_vtype_size(v->type);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gguf_file *g = NULL;
    char err[256];
    err[0] = '\0';
    if (gguf_open_memory(data, size, &g, err, sizeof err) != 0) {
        if (err[0] == '\0' || g)
            __builtin_trap(); /* every failure must say why, and return nothing */
        return 0;
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        touch_bytes(g->kv[i].key.ptr, g->kv[i].key.len);
        walk_value(&g->kv[i].value, 0);
        char key[128];
        size_t n = g->kv[i].key.len < sizeof key - 1 ? (size_t)g->kv[i].key.len : sizeof key - 1;
        memcpy(key, g->kv[i].key.ptr, n);
        key[n] = '\0';
        int64_t iv;
        double dv;
        struct gguf_str sv;
        (void)gguf_find_kv(g, key);
        (void)gguf_get_int(g, key, &iv);
        (void)gguf_get_float(g, key, &dv);
        (void)gguf_get_str(g, key, &sv);
        (void)gguf_get_arr(g, key);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct gguf_tensor *t = &g->tensors[i];
        touch_bytes(t->name.ptr, t->name.len);
        touch_bytes(t->data, t->nbytes);
        if ((const uint8_t *)t->data < data ||
            (size_t)((const uint8_t *)t->data - data) > size - t->nbytes)
            __builtin_trap();
        char name[128];
        size_t n = t->name.len < sizeof name - 1 ? (size_t)t->name.len : sizeof name - 1;
        memcpy(name, t->name.ptr, n);
        name[n] = '\0';
        (void)gguf_find_tensor(g, name);
    }
    gguf_close(g);
    return 0;
}
