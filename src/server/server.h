/*
 * server.h: the HTTP side of `pagoda serve`: an OpenAI-compatible API over
 * libmicrohttpd on top of a running engine (completions and chat, plain and
 * streamed as server-sent events, models, health, metrics, tokenize).
 */
#ifndef PAGODA_SERVER_H
#define PAGODA_SERVER_H

#include <stddef.h>

#include "pagoda.h"

struct srv_options {
    const char *host;          /* address to bind, default 127.0.0.1 */
    int port;                  /* 0: any free port (see server_port) */
    const char *api_key;       /* NULL: no key needed */
    const char *alias;         /* model name clients use; required */
    const char *chat_template; /* NULL: the model's own */
    size_t max_body;           /* largest request body, bytes */
    int log;                   /* one line per request on stderr */
};

struct server;

/* Starts listening; the engine must outlive the server. */
int server_start(pagoda_engine *e, const struct srv_options *o, struct server **out, char *err,
                 size_t errlen);
/* The port actually bound. */
int server_port(const struct server *s);
/* Stops accepting, lets requests in flight finish for up to grace seconds,
 * aborts what is left, closes every connection and frees the server. */
void server_stop(struct server *s, double grace);

#endif
