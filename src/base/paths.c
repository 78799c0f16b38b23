/* paths.c: the model cache folder ($PAGODA_HOME) and mkdir -p. */
#include "base/paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/err.h"

static int paths_fmt(char *buf, size_t buflen, char *err, size_t errlen, const char *a,
                     const char *b)
{
    int n = snprintf(buf, buflen, "%s%s", a, b);
    if (n < 0 || (size_t)n >= buflen)
        return err_set(err, errlen, PAGODA_ERANGE, "path too long: %s%s", a, b);
    return PAGODA_OK;
}

int paths_home(char *buf, size_t buflen, char *err, size_t errlen)
{
    const char *home = getenv("PAGODA_HOME");
    if (home && *home)
        return paths_fmt(buf, buflen, err, errlen, home, "");
    const char *xdg = getenv("XDG_CACHE_HOME");
    /* The XDG spec says a relative value is to be ignored. */
    if (xdg && xdg[0] == '/')
        return paths_fmt(buf, buflen, err, errlen, xdg, "/pagoda");
    const char *user = getenv("HOME");
    if (user && *user)
        return paths_fmt(buf, buflen, err, errlen, user, "/.cache/pagoda");
    return err_set(err, errlen, PAGODA_EINVAL,
                   "no cache folder: set PAGODA_HOME (or HOME) in the environment");
}

int paths_mkdir_p(const char *path, char *err, size_t errlen)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0)
        return err_set(err, errlen, PAGODA_EINVAL, "empty folder name");
    if (len >= sizeof tmp)
        return err_set(err, errlen, PAGODA_ERANGE, "path too long: %s", path);
    memcpy(tmp, path, len + 1);
    /* Create each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        if (tmp[i - 1] == '/')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return err_set(err, errlen, PAGODA_EIO, "cannot create folder %s: %s", tmp,
                           strerror(errno));
        tmp[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return err_set(err, errlen, PAGODA_EIO, "%s exists and is not a folder", path);
    return PAGODA_OK;
}

int paths_join(char *buf, size_t buflen, const char *dir, const char *name, char *err,
               size_t errlen)
{
    size_t dl = strlen(dir);
    const char *sep = (dl > 0 && dir[dl - 1] == '/') ? "" : "/";
    int n = snprintf(buf, buflen, "%s%s%s", dir, sep, name);
    if (n < 0 || (size_t)n >= buflen)
        return err_set(err, errlen, PAGODA_ERANGE, "path too long: %s%s%s", dir, sep, name);
    return PAGODA_OK;
}

int paths_models_dir(char *buf, size_t buflen, char *err, size_t errlen)
{
    char home[4096];
    int rc = paths_home(home, sizeof home, err, errlen);
    if (rc < 0)
        return rc;
    rc = paths_join(buf, buflen, home, "models", err, errlen);
    if (rc < 0)
        return rc;
    return paths_mkdir_p(buf, err, errlen);
}
