/*
 * download.h: fetching files over HTTP(S) with libcurl for `pagoda pull`.
 *
 * A file is written to DEST.part and renamed to DEST only once it is whole
 * and its SHA-256 matches, so DEST is never half a file. A dropped connection
 * is resumed with a Range request, in this run or the next (the .part stays
 * for that); a checksum mismatch removes the .part. Errors name the cause a
 * user can act on: no network (DNS, refused connection), HTTP 404 / 401,
 * checksum mismatch, disk full.
 */
#ifndef PAGODA_BASE_DOWNLOAD_H
#define PAGODA_BASE_DOWNLOAD_H

#include <stddef.h>

/* Failures that callers tell apart; download functions return one of these
 * (or another negative pagoda_status) with the message in err. */
#define DOWNLOAD_EOFFLINE (-100)  /* host not found, connection refused, timeout */
#define DOWNLOAD_ENOTFOUND (-101) /* HTTP 404 */
#define DOWNLOAD_EDENIED (-102)   /* HTTP 401 / 403 */
#define DOWNLOAD_ECHECKSUM (-103) /* the bytes are not the ones announced */
#define DOWNLOAD_EDISKFULL (-104) /* no space (or a file size limit) for the file */
#define DOWNLOAD_EHTTP (-105)     /* any other HTTP error status */

struct download_opts {
    const char *url;
    const char *dest;          /* the final path; its folder must exist */
    const char *token;         /* sent as "Authorization: Bearer" to the URL's host, or NULL */
    const char *sha256;        /* expected digest (64 hex digits), or NULL: then a
                                  digest the server announces (X-Linked-Etag / ETag
                                  of 64 hex digits) is checked instead */
    const char *magic;         /* when set, the file must start with these bytes */
    const char *label;         /* names the file in messages and the progress bar */
    int progress;              /* draw a progress bar on stderr (the caller checks for a TTY) */
    int max_attempts;          /* tries in all when the connection drops; 0: 5 */
};

/* What a finished download was. */
struct download_info {
    long long size;         /* bytes in dest */
    long long resumed_from; /* bytes already in the .part when the last try began */
    int attempts;           /* requests made for the file */
    int sha256_checked;     /* 1 when a digest was known and matched */
    char sha256[65];        /* the file's digest, hex */
};

/* Downloads opts->url into opts->dest as described above. info may be NULL. */
int download_file(const struct download_opts *opts, struct download_info *info, char *err,
                  size_t errlen);

/* GETs a small document (an API answer) into a new NUL-terminated buffer
 * (*out, freed by the caller; *len excludes the NUL). Fails beyond max_bytes. */
int download_text(const char *url, const char *token, size_t max_bytes, char **out, size_t *len,
                  char *err, size_t errlen);

#endif
