/*
 * pagoda.h: the public interface of pagoda, an LLM inference engine and server.
 *
 * Functions that can fail return a pagoda_status (0 on success, negative on
 * failure) and write a message the caller can print into a caller-owned buffer
 * (char *err, size_t errlen). Nothing in the library exits the process.
 */
#ifndef PAGODA_H
#define PAGODA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PAGODA_VERSION "0.1.0"

typedef enum pagoda_status {
    PAGODA_OK = 0,
    PAGODA_EINVAL = -1,      /* a bad argument or flag */
    PAGODA_EIO = -2,         /* a file or socket could not be read or written */
    PAGODA_EFORMAT = -3,     /* input is malformed (corrupt file, bad JSON, ...) */
    PAGODA_ENOMEM = -4,      /* an allocation failed */
    PAGODA_EUNSUPPORTED = -5,/* well-formed but not something pagoda handles */
    PAGODA_ERANGE = -6,      /* a value is outside what the caller allowed */
} pagoda_status;

/* A short, static English name of a status ("invalid argument", ...). */
const char *pagoda_status_str(int status);

/* The library version string. */
const char *pagoda_version(void);

#ifdef __cplusplus
}
#endif

#endif
