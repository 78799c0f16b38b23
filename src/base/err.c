/* err.c: error messages and status names. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int err_set(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void err_prefix(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    char head[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    size_t hl = strlen(head);
    size_t ml = strnlen(err, errlen - 1);
    if (hl + 2 >= errlen)
        return;
    /* Keep as much of the original message as fits behind the prefix. */
    if (hl + 2 + ml >= errlen)
        ml = errlen - hl - 3;
    memmove(err + hl + 2, err, ml);
    err[hl + 2 + ml] = '\0';
    memcpy(err, head, hl);
    err[hl] = ':';
    err[hl + 1] = ' ';
}

const char *pagoda_status_str(int status)
{
    switch (status) {
    case PAGODA_OK: return "ok";
    case PAGODA_EINVAL: return "invalid argument";
    case PAGODA_EIO: return "input/output error";
    case PAGODA_EFORMAT: return "malformed input";
    case PAGODA_ENOMEM: return "out of memory";
    case PAGODA_EUNSUPPORTED: return "unsupported";
    case PAGODA_ERANGE: return "out of range";
    case PAGODA_EBUSY: return "busy";
    case PAGODA_ENOTFOUND: return "not found";
    case PAGODA_ESHUTDOWN: return "shutting down";
    default: return "unknown error";
    }
}

const char *pagoda_version(void)
{
    return PAGODA_VERSION;
}
