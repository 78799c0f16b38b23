/*
 * download.c: resumable, checksummed HTTP downloads through libcurl (see
 * download.h). The body of a response goes into DEST.part only when the
 * status says it is the file (200, or 206 starting where the .part ends);
 * a server that ignores the Range header gets the .part restarted. Headers
 * of every response in a redirect chain are read, since a hub announces the
 * digest on the redirect and the CDN serves the bytes.
 */
#include "base/download.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/err.h"
#include "base/sha256.h"
#include "pagoda.h"

#define DL_CONNECT_TIMEOUT_S 20L
#define DL_STALL_TIME_S 60L /* no byte for this long counts as a dropped connection */
#define DL_MAX_REDIRECTS 10L
#define DL_DEFAULT_ATTEMPTS 5

static pthread_once_t dl_once = PTHREAD_ONCE_INIT;
static CURLcode dl_init_rc = CURLE_FAILED_INIT;

static void dl_global_init(void)
{
    dl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static double dl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The host (and port) part of a URL, for messages. */
static void dl_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n); /* never print credentials */
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static int dl_is_hex64(const char *s, size_t n)
{
    if (n != 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

/* ---- one request's state ---- */

struct dl_ctx {
    int fd;                  /* the .part, opened for appending */
    const char *part_path;
    long long offset;        /* bytes in the .part when the request began */
    long long written;       /* bytes appended by this request */
    int status;              /* of the response being read */
    long long content_length;/* of that response, -1 unknown */
    long long range_start;   /* from its Content-Range, -1 none */
    long long range_total;   /* from its Content-Range, -1 unknown */
    long long total;         /* the whole file's size once a body is accepted, -1 unknown */
    int body_decided;        /* this response's body was looked at */
    int body_wanted;         /* and it goes into the file */
    int resumed;             /* a 206 continued bytes kept from before */
    int write_errno;         /* a failed write(2) */
    int refused;             /* the write callback stopped the transfer; why is in refuse_msg */
    int refuse_code;
    char refuse_msg[512];
    char digest[65];         /* 64 hex digits announced by the server, or "" */
    int digest_linked;       /* it came from X-Linked-Etag (preferred over ETag) */
    /* progress bar */
    int progress;
    const char *label;
    double last_draw, start;
};

/* Reads a header line's value for name (case-insensitive), trimmed, into out. */
static int dl_header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
    size_t ln = strlen(name);
    if (n <= ln || strncasecmp(line, name, ln) != 0 || line[ln] != ':')
        return 0;
    const char *v = line + ln + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t m = (size_t)(end - v);
    if (m >= outlen)
        m = outlen - 1;
    memcpy(out, v, m);
    out[m] = '\0';
    return 1;
}

/* A digest in an ETag value: W/ and quotes stripped, then exactly 64 hex digits. */
static int dl_etag_digest(const char *v, char out[65])
{
    if (!strncmp(v, "W/", 2))
        v += 2;
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (!dl_is_hex64(v, n))
        return 0;
    for (size_t i = 0; i < 64; i++)
        out[i] = (char)tolower((unsigned char)v[i]);
    out[64] = '\0';
    return 1;
}

static size_t dl_on_header(char *buf, size_t size, size_t nmemb, void *user)
{
    struct dl_ctx *c = user;
    size_t n = size * nmemb;
    char v[256];
    if (n > 5 && !strncmp(buf, "HTTP/", 5)) {
        /* A new response (a redirect, a 100 Continue, or the file itself). */
        const char *sp = memchr(buf, ' ', n);
        c->status = sp ? atoi(sp + 1) : 0;
        c->content_length = -1;
        c->range_start = -1;
        c->range_total = -1;
        c->body_decided = 0;
        c->body_wanted = 0;
    } else if (dl_header_value(buf, n, "Content-Length", v, sizeof v)) {
        char *end;
        long long x = strtoll(v, &end, 10);
        if (end != v && *end == '\0' && x >= 0)
            c->content_length = x;
    } else if (dl_header_value(buf, n, "Content-Range", v, sizeof v)) {
        /* "bytes START-END/TOTAL" or "bytes * /TOTAL" (416) */
        long long a = -1, b = -1, t = -1;
        if (sscanf(v, "bytes %lld-%lld/%lld", &a, &b, &t) == 3 && a >= 0 && b >= a && t > b) {
            c->range_start = a;
            c->range_total = t;
        } else if (sscanf(v, "bytes */%lld", &t) == 1 && t >= 0) {
            c->range_total = t;
        }
    } else if (dl_header_value(buf, n, "X-Linked-Etag", v, sizeof v)) {
        if (dl_etag_digest(v, c->digest))
            c->digest_linked = 1;
    } else if (!c->digest_linked && dl_header_value(buf, n, "ETag", v, sizeof v)) {
        dl_etag_digest(v, c->digest);
    }
    return n;
}

static void dl_draw(struct dl_ctx *c, long long now_bytes, long long total, int final)
{
    double t = dl_now();
    if (!final && t - c->last_draw < 0.1)
        return;
    c->last_draw = t;
    double mib = 1024.0 * 1024.0;
    double rate = (double)(now_bytes - c->offset) / (t - c->start > 1e-3 ? t - c->start : 1e-3);
    /* Fits 80 columns, so the carriage return rewrites one line. */
    char label[21];
    snprintf(label, sizeof label, "%s", c->label ? c->label : "");
    if (total > 0) {
        int pct = (int)(100.0 * (double)now_bytes / (double)total);
        if (pct > 100)
            pct = 100;
        char bar[17];
        int fill = pct * 16 / 100;
        for (int i = 0; i < 16; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[16] = '\0';
        fprintf(stderr, "\r%-20s [%s] %3d%% %7.1f/%.1f MiB %6.1f MiB/s ", label, bar, pct,
                (double)now_bytes / mib, (double)total / mib, rate / mib);
    } else {
        fprintf(stderr, "\r%-20s %8.1f MiB %6.1f MiB/s ", label, (double)now_bytes / mib,
                rate / mib);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

static int dl_on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct dl_ctx *c = user;
    if (c->progress && c->body_wanted)
        dl_draw(c, c->offset + c->written, c->total, 0);
    return 0;
}

static size_t dl_refuse(struct dl_ctx *c, int code, const char *msg)
{
    c->refused = 1;
    c->refuse_code = code;
    snprintf(c->refuse_msg, sizeof c->refuse_msg, "%s", msg);
    return 0; /* curl stops with CURLE_WRITE_ERROR */
}

/* Decides, at the first byte of a body, whether it belongs in the file. */
static size_t dl_decide_body(struct dl_ctx *c)
{
    c->body_decided = 1;
    if (c->status == 206) {
        if (c->range_start != c->offset) {
            /* Not where the .part ends: start over rather than guess. */
            if (ftruncate(c->fd, 0) != 0)
                return dl_refuse(c, PAGODA_EIO, "cannot truncate the partial file");
            c->offset = 0;
            return dl_refuse(c, 1, "the server resumed at another offset");
        }
        c->total = c->range_total;
        c->resumed |= c->offset > 0;
    } else if (c->status == 200) {
        if (c->offset > 0) {
            /* The server ignored the Range request and sends the whole file. */
            if (ftruncate(c->fd, 0) != 0)
                return dl_refuse(c, PAGODA_EIO, "cannot truncate the partial file");
            c->offset = 0;
        }
        c->total = c->content_length;
    } else {
        return 1; /* an error page: read and drop it, the status tells the story */
    }
    c->body_wanted = 1;
    if (c->total > c->offset) {
        struct statvfs vfs;
        if (fstatvfs(c->fd, &vfs) == 0) {
            unsigned long long avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
            unsigned long long need = (unsigned long long)(c->total - c->offset);
            if (avail < need) {
                char msg[512];
                snprintf(msg, sizeof msg,
                         "disk full: %.1f MiB more are needed for %s but only %.1f MiB are "
                         "free",
                         (double)need / 1048576.0, c->part_path, (double)avail / 1048576.0);
                return dl_refuse(c, DOWNLOAD_EDISKFULL, msg);
            }
        }
    }
    return 1;
}

static size_t dl_on_body(char *buf, size_t size, size_t nmemb, void *user)
{
    struct dl_ctx *c = user;
    size_t n = size * nmemb;
    if (!c->body_decided && dl_decide_body(c) == 0)
        return 0;
    if (!c->body_wanted)
        return n;
    if (c->total >= 0 && c->offset + c->written + (long long)n > c->total)
        return dl_refuse(c, PAGODA_EFORMAT, "the server sent more bytes than it announced");
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(c->fd, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            c->write_errno = errno;
            return 0;
        }
        done += (size_t)w;
    }
    c->written += (long long)n;
    return n;
}

/* ---- curl handles ---- */

static CURL *dl_easy(const char *url, const char *token, struct curl_slist **headers,
                     char *errbuf, char *err, size_t errlen)
{
    pthread_once(&dl_once, dl_global_init);
    if (dl_init_rc != CURLE_OK) {
        err_set(err, errlen, PAGODA_EIO, "libcurl failed to start: %s",
                curl_easy_strerror(dl_init_rc));
        return NULL;
    }
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        err_set(err, errlen, PAGODA_EINVAL, "%s: only http:// and https:// URLs are fetched", url);
        return NULL;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        err_set(err, errlen, PAGODA_ENOMEM, "out of memory starting a download");
        return NULL;
    }
    *headers = NULL;
    if (token && *token) {
        if (strpbrk(token, "\r\n") || strlen(token) > 4096) {
            curl_easy_cleanup(h);
            err_set(err, errlen, PAGODA_EINVAL, "the access token has line breaks or is too long");
            return NULL;
        }
        /* curl sends a custom Authorization header only to the URL's own host,
         * never to a host it is redirected to (such as a CDN). */
        char auth[4200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        *headers = curl_slist_append(*headers, auth);
        if (!*headers) {
            curl_easy_cleanup(h);
            err_set(err, errlen, PAGODA_ENOMEM, "out of memory starting a download");
            return NULL;
        }
    }
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, DL_MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "pagoda/" PAGODA_VERSION);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, DL_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, DL_STALL_TIME_S);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 0L);
    if (*headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    return h;
}

/* A network-level failure as an error a user can act on. */
static int dl_net_error(CURLcode rc, const char *url, const char *errbuf, char *err,
                        size_t errlen)
{
    char host[256];
    dl_host(url, host, sizeof host);
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return err_set(err, errlen, DOWNLOAD_EOFFLINE,
                       "cannot find the host %s: offline, or DNS is not working (%s)", host,
                       detail);
    case CURLE_COULDNT_CONNECT:
        return err_set(err, errlen, DOWNLOAD_EOFFLINE,
                       "cannot connect to %s: offline, or the connection was refused (%s)",
                       host, detail);
    case CURLE_OPERATION_TIMEDOUT:
        return err_set(err, errlen, DOWNLOAD_EOFFLINE, "%s stopped answering: timed out (%s)",
                       host, detail);
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
        return err_set(err, errlen, DOWNLOAD_EOFFLINE,
                       "no secure connection to %s (%s): a proxy or captive portal in the "
                       "way?",
                       host, detail);
    case CURLE_TOO_MANY_REDIRECTS:
        return err_set(err, errlen, DOWNLOAD_EHTTP, "%s: too many redirects", url);
    default:
        return err_set(err, errlen, DOWNLOAD_EOFFLINE, "downloading %s failed: %s", url, detail);
    }
}

/* An HTTP error status as an error. */
static int dl_http_error(int status, const char *url, char *err, size_t errlen)
{
    if (status == 404)
        return err_set(err, errlen, DOWNLOAD_ENOTFOUND, "not found (HTTP 404): %s", url);
    if (status == 401 || status == 403)
        return err_set(err, errlen, DOWNLOAD_EDENIED,
                       "access denied (HTTP %d): %s; the repository may be private or gated: "
                       "accept its terms on the website and set HF_TOKEN to an access token",
                       status, url);
    return err_set(err, errlen, DOWNLOAD_EHTTP, "the server answered HTTP %d for %s", status, url);
}

/* Transfer errors after which a new request may pick up where this one stopped. */
static int dl_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

static long long dl_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Removes the .part when it holds nothing worth resuming. */
static void dl_drop_empty_part(const char *part)
{
    if (dl_file_size(part) == 0)
        unlink(part);
}

static int dl_check_magic(const char *path, const char *magic, const char *label, char *err,
                          size_t errlen)
{
    size_t n = strlen(magic);
    char buf[64];
    if (n > sizeof buf)
        n = sizeof buf;
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(buf, 1, n, f) : 0;
    if (f)
        fclose(f);
    if (got != n || memcmp(buf, magic, n) != 0)
        return err_set(err, errlen, PAGODA_EFORMAT,
                       "%s: the downloaded file is not of the expected kind (it does not start "
                       "with \"%s\"); refused",
                       label, magic);
    return 0;
}

/* Requests the file until the .part holds all of it (resuming after each
 * drop), or fails. c carries the server's digest across requests. */
static int dl_fetch(const struct download_opts *o, const char *label, const char *part,
                    struct dl_ctx *cp, int *attempts_out, long long *resumed_out, char *err,
                    size_t errlen)
{
    struct dl_ctx c = *cp;
    int max_attempts = o->max_attempts > 0 ? o->max_attempts : DL_DEFAULT_ATTEMPTS;
    int attempts = *attempts_out, stalls = 0;
    long long resumed_from = 0;
    char errbuf[CURL_ERROR_SIZE];

    for (;;) {
        attempts++;
        int fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            int e = errno;
            return err_set(err, errlen, e == ENOSPC ? DOWNLOAD_EDISKFULL : PAGODA_EIO,
                           "cannot write %s: %s", part, strerror(e));
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            return err_set(err, errlen, PAGODA_EIO, "%s: %s", part, strerror(e));
        }
        /* Two pulls of one file would interleave their bytes in the .part. */
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            close(fd);
            if (e == EWOULDBLOCK)
                return err_set(err, errlen, PAGODA_EBUSY,
                               "%s is being downloaded by another process (%s is locked)",
                               label, part);
            return err_set(err, errlen, PAGODA_EIO, "cannot lock %s: %s", part, strerror(e));
        }
        c.fd = fd;
        c.offset = (long long)st.st_size;
        c.written = 0;
        c.status = 0;
        c.body_decided = 0;
        c.body_wanted = 0;
        c.total = -1;
        c.write_errno = 0;
        c.refused = 0;
        c.refuse_msg[0] = '\0';
        c.start = dl_now();
        c.last_draw = 0;
        resumed_from = c.offset;

        struct curl_slist *headers = NULL;
        CURL *h = dl_easy(o->url, o->token, &headers, errbuf, err, errlen);
        if (!h) {
            close(fd);
            dl_drop_empty_part(part);
            return PAGODA_EINVAL; /* err says why */
        }
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, dl_on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, dl_on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        /* A plain Range header rather than curl's resume option, which fails
         * outright when a server answers 200 with the whole file. */
        char range[32];
        if (c.offset > 0) {
            snprintf(range, sizeof range, "%lld-", c.offset);
            curl_easy_setopt(h, CURLOPT_RANGE, range);
        }
        CURLcode cr = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        int sync_failed = c.written > 0 && fsync(fd) != 0 && errno != EINVAL;
        int sync_errno = errno;
        close(fd);
        if (c.progress && c.body_wanted)
            dl_draw(&c, c.offset + c.written, c.total, 1);

        if (c.write_errno || sync_failed) {
            int e = c.write_errno ? c.write_errno : sync_errno;
            if (e == ENOSPC || e == EDQUOT || e == EFBIG)
                return err_set(err, errlen, DOWNLOAD_EDISKFULL,
                               "disk full writing %s (%s); %lld bytes are kept there: free some "
                               "space and pull again to resume",
                               part, strerror(e), c.offset + c.written);
            return err_set(err, errlen, PAGODA_EIO, "cannot write %s: %s", part, strerror(e));
        }
        if (c.refused && c.refuse_code != 1) {
            dl_drop_empty_part(part);
            return err_set(err, errlen, c.refuse_code, "%s: %s", label, c.refuse_msg);
        }

        long long have = dl_file_size(part);
        int retry = 0;
        const char *why = NULL;
        if (c.refused) { /* resumed at the wrong offset: the .part was emptied */
            retry = 1;
            why = c.refuse_msg;
        } else if (cr == CURLE_OK && status == 416 && c.offset > 0) {
            /* Range not satisfiable: the .part may already hold the whole file. */
            if (c.range_total >= 0 && have == c.range_total)
                break;
            if (truncate(part, 0) != 0)
                return err_set(err, errlen, PAGODA_EIO, "cannot truncate %s", part);
            retry = 1;
            why = "the partial file did not fit the server's copy; starting over";
        } else if (cr == CURLE_OK && status >= 200 && status < 300) {
            if (c.total >= 0 && have < c.total) {
                retry = 1;
                why = "the connection closed early";
            } else if (c.total >= 0 && have > c.total) {
                unlink(part);
                return err_set(err, errlen, PAGODA_EFORMAT,
                               "%s: the file is longer than the server announced; removed",
                               label);
            } else {
                break; /* whole */
            }
        } else if (cr == CURLE_OK) {
            dl_drop_empty_part(part);
            return dl_http_error((int)status, o->url, err, errlen);
        } else if (dl_retryable(cr) && !(attempts == 1 && status == 0) &&
                   (c.body_wanted || status < 300)) {
            /* Retried: a transfer that broke off (never a first try that got no
             * answer at all: that is a network problem to report at once). */
            retry = 1;
            why = errbuf[0] ? errbuf : curl_easy_strerror(cr);
        } else {
            dl_drop_empty_part(part);
            return dl_net_error(cr, o->url, errbuf, err, errlen);
        }

        /* A try that moved the file forward does not count against the limit. */
        stalls = c.written > 0 ? 0 : stalls + 1;
        if (retry && stalls >= max_attempts) {
            if (cr != CURLE_OK)
                return dl_net_error(cr, o->url, errbuf, err, errlen);
            return err_set(err, errlen, DOWNLOAD_EOFFLINE,
                           "%s: gave up after %d tries (%s); %lld bytes are kept in %s: pull "
                           "again to resume",
                           label, attempts, why, have, part);
        }
        fprintf(stderr, "pagoda: %s: interrupted with %lld bytes kept (%s); resuming\n", label,
                have, why);
        if (stalls > 0)
            sleep((unsigned)(stalls < 5 ? stalls : 5));
    }

    *cp = c;
    *attempts_out = attempts;
    *resumed_out = resumed_from;
    return 0;
}

int download_file(const struct download_opts *o, struct download_info *info, char *err,
                  size_t errlen)
{
    if (!o || !o->url || !o->dest)
        return err_set(err, errlen, PAGODA_EINVAL, "download: no URL or destination");
    const char *label = o->label ? o->label : o->dest;
    if (o->sha256 && !dl_is_hex64(o->sha256, strlen(o->sha256)))
        return err_set(err, errlen, PAGODA_EINVAL, "%s: '%s' is not a SHA-256 digest", label,
                       o->sha256);
    char part[4096];
    int pn = snprintf(part, sizeof part, "%s.part", o->dest);
    if (pn < 0 || (size_t)pn >= sizeof part)
        return err_set(err, errlen, PAGODA_ERANGE, "path too long: %s", o->dest);

    struct dl_ctx c;
    memset(&c, 0, sizeof c);
    c.part_path = part;
    c.progress = o->progress;
    c.label = label;
    c.total = -1;
    int attempts = 0, rc = 0;
    long long resumed_from = 0, size = 0;
    char hex[SHA256_HEX_LEN + 1];
    const char *want = NULL;
    for (int pass = 0;; pass++) {
        c.resumed = 0;
        rc = dl_fetch(o, label, part, &c, &attempts, &resumed_from, err, errlen);
        if (rc < 0)
            return rc;
        size = dl_file_size(part);
        uint8_t d[SHA256_LEN];
        rc = sha256_file(part, d, err, errlen);
        if (rc < 0)
            return rc;
        sha256_to_hex(d, hex);
        want = o->sha256 ? o->sha256 : (c.digest[0] ? c.digest : NULL);
        if (!want || !strcasecmp(want, hex))
            break;
        unlink(part);
        if (pass == 0 && c.resumed) {
            /* The kept bytes may be from another version of the file. */
            fprintf(stderr,
                    "pagoda: %s: the checksum does not match after resuming; downloading the "
                    "whole file again\n",
                    label);
            continue;
        }
        return err_set(err, errlen, DOWNLOAD_ECHECKSUM,
                       "%s: checksum mismatch: the download has SHA-256 %s but %s announced "
                       "%s; the file was refused and removed",
                       label, hex, o->sha256 ? "the repository listing" : "the server", want);
    }
    if (o->magic && (rc = dl_check_magic(part, o->magic, label, err, errlen)) < 0) {
        unlink(part);
        return rc;
    }
    if (rename(part, o->dest) != 0) {
        int e = errno;
        return err_set(err, errlen, PAGODA_EIO, "cannot rename %s to %s: %s", part, o->dest,
                       strerror(e));
    }
    if (info) {
        info->size = size;
        info->resumed_from = resumed_from;
        info->attempts = attempts;
        info->sha256_checked = want != NULL;
        memcpy(info->sha256, hex, sizeof info->sha256);
    }
    return 0;
}

/* ---- small documents ---- */

struct dl_mem {
    char *buf;
    size_t len, cap, max;
    int too_big;
};

static size_t dl_on_mem(char *data, size_t size, size_t nmemb, void *user)
{
    struct dl_mem *m = user;
    size_t n = size * nmemb;
    if (m->len + n > m->max) {
        m->too_big = 1;
        return 0;
    }
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 16384;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *nb = realloc(m->buf, cap);
        if (!nb)
            return 0;
        m->buf = nb;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, data, n);
    m->len += n;
    m->buf[m->len] = '\0';
    return n;
}

int download_text(const char *url, const char *token, size_t max_bytes, char **out, size_t *len,
                  char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers = NULL;
    CURL *h = dl_easy(url, token, &headers, errbuf, err, errlen);
    if (!h)
        return PAGODA_EINVAL;
    struct curl_slist *all = curl_slist_append(headers, "Accept: application/json");
    if (all) {
        headers = all;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    }
    struct dl_mem m = {.max = max_bytes};
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, dl_on_mem);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    CURLcode cr = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    int rc = 0;
    if (m.too_big)
        rc = err_set(err, errlen, PAGODA_ERANGE, "%s: the answer is larger than %zu bytes", url,
                     max_bytes);
    else if (cr == CURLE_WRITE_ERROR)
        rc = err_set(err, errlen, PAGODA_ENOMEM, "out of memory reading %s", url);
    else if (cr != CURLE_OK)
        rc = dl_net_error(cr, url, errbuf, err, errlen);
    else if (status < 200 || status >= 300)
        rc = dl_http_error((int)status, url, err, errlen);
    if (rc < 0) {
        free(m.buf);
        return rc;
    }
    if (!m.buf) {
        m.buf = malloc(1);
        if (!m.buf)
            return err_set(err, errlen, PAGODA_ENOMEM, "out of memory");
        m.buf[0] = '\0';
    }
    *out = m.buf;
    *len = m.len;
    return 0;
}
