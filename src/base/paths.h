/*
 * paths.h: where pagoda keeps downloaded models. The home folder is
 * $PAGODA_HOME, else $XDG_CACHE_HOME/pagoda, else ~/.cache/pagoda; models
 * live in <home>/models.
 */
#ifndef PAGODA_BASE_PATHS_H
#define PAGODA_BASE_PATHS_H

#include <stddef.h>

/* Writes the home folder's path into buf (not created). Fails when no
 * variable names a home or the path does not fit. */
int paths_home(char *buf, size_t buflen, char *err, size_t errlen);

/* Writes <home>/models into buf and creates it (and its parents) if needed. */
int paths_models_dir(char *buf, size_t buflen, char *err, size_t errlen);

/* Creates a folder and its missing parents (mode 0755); an existing folder is fine. */
int paths_mkdir_p(const char *path, char *err, size_t errlen);

/* Joins dir and name with one '/' into buf; fails when it does not fit. */
int paths_join(char *buf, size_t buflen, const char *dir, const char *name, char *err,
               size_t errlen);

#endif
