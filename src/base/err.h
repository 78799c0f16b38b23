/*
 * err.h: error reporting inside pagoda. A function that can fail takes
 * (char *err, size_t errlen), fills it with one printable line and returns a
 * negative pagoda_status. err may be NULL or errlen 0: the message is dropped.
 */
#ifndef PAGODA_BASE_ERR_H
#define PAGODA_BASE_ERR_H

#include <stddef.h>
#include "pagoda.h"

#if defined(__GNUC__)
#define PG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PG_PRINTF(a, b)
#endif

/* Writes a printf-style message into err and returns code, so callers can
 * `return err_set(err, errlen, PAGODA_EFORMAT, "...", ...);`. */
int err_set(char *err, size_t errlen, int code, const char *fmt, ...) PG_PRINTF(4, 5);

/* Prepends "prefix: " to the message already in err (for context on the way up). */
void err_prefix(char *err, size_t errlen, const char *fmt, ...) PG_PRINTF(3, 4);

#endif
