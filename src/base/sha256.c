/* sha256.c: SHA-256 over libcrypto's EVP interface (buffers and files). */
#include "base/sha256.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "base/err.h"

/* Feeds either a buffer (f == NULL) or a stream into one EVP digest. */
static int sha256_run(const void *data, size_t n, FILE *f, const char *path,
                      uint8_t out[SHA256_LEN], char *err, size_t errlen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return err_set(err, errlen, PAGODA_ENOMEM, "sha256: cannot create a digest context");
    int rc = PAGODA_OK;
    unsigned int len = 0;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        rc = err_set(err, errlen, PAGODA_EUNSUPPORTED, "sha256: digest unavailable");
        goto done;
    }
    if (!f) {
        if (n > 0 && EVP_DigestUpdate(ctx, data, n) != 1) {
            rc = err_set(err, errlen, PAGODA_EIO, "sha256: digest update failed");
            goto done;
        }
    } else {
        unsigned char chunk[1 << 16];
        size_t got;
        while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
            if (EVP_DigestUpdate(ctx, chunk, got) != 1) {
                rc = err_set(err, errlen, PAGODA_EIO, "sha256: digest update failed");
                goto done;
            }
        }
        if (ferror(f)) {
            rc = err_set(err, errlen, PAGODA_EIO, "%s: read error", path);
            goto done;
        }
    }
    if (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != SHA256_LEN)
        rc = err_set(err, errlen, PAGODA_EIO, "sha256: digest final failed");
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

int sha256_buf(const void *data, size_t n, uint8_t out[SHA256_LEN], char *err, size_t errlen)
{
    return sha256_run(data, n, NULL, NULL, out, err, errlen);
}

int sha256_file(const char *path, uint8_t out[SHA256_LEN], char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return err_set(err, errlen, PAGODA_EIO, "%s: %s", path, strerror(errno));
    int rc = sha256_run(NULL, 0, f, path, out, err, errlen);
    fclose(f);
    return rc;
}

void sha256_to_hex(const uint8_t digest[SHA256_LEN], char hex[SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < SHA256_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[SHA256_HEX_LEN] = '\0';
}
