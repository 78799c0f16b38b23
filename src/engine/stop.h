/*
 * stop.h: stop strings over generated text that grows a token at a time. A
 * stop string may be split across tokens, so text that could still become
 * one is held back; text after a complete one is dropped.
 */
#ifndef PAGODA_ENGINE_STOP_H
#define PAGODA_ENGINE_STOP_H

#include <stdbool.h>
#include <stddef.h>

/* text holds *len bytes (NUL-terminated); the first `from` were already
 * shown. Returns how far the text may be shown: before any tail that is the
 * start of a stop string. When a stop string is complete, *hit is set and
 * the text is cut where the earliest one starts (*len updated). */
size_t stop_scan(char *text, size_t *len, size_t from, const char *const *stops, int n_stops,
                 bool *hit);

#endif
