/* stop.c: stop-string matching on streamed text (see stop.h). */
#include "engine/stop.h"

#include <string.h>

size_t stop_scan(char *text, size_t *len, size_t from, const char *const *stops, int n_stops,
                 bool *hit)
{
    size_t safe = *len;
    *hit = false;
    for (int i = 0; i < n_stops; i++) {
        const size_t sl = strlen(stops[i]);
        /* A stop string can only be new if it ends in text not yet shown. */
        const size_t start = from > sl ? from - sl : 0;
        const char *at = memmem(text + start, *len - start, stops[i], sl);
        if (at) {
            const size_t cut = (size_t)(at - text);
            if (!*hit || cut < safe)
                safe = cut;
            *hit = true;
            continue;
        }
        if (*hit)
            continue;
        for (size_t k = sl - 1; k > 0; k--)
            if (k <= *len && !memcmp(text + *len - k, stops[i], k)) {
                if (*len - k < safe)
                    safe = *len - k;
                break;
            }
    }
    if (*hit) {
        *len = safe;
        text[safe] = '\0';
    }
    return safe;
}
