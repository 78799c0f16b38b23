/*
 * sha256.h: SHA-256 digests (through libcrypto) for checking downloaded and
 * cached files against pinned hashes.
 */
#ifndef PAGODA_BASE_SHA256_H
#define PAGODA_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32
#define SHA256_HEX_LEN 64 /* without the terminating NUL */

/* The digest of n bytes at data. Returns 0, or a negative status if libcrypto fails. */
int sha256_buf(const void *data, size_t n, uint8_t out[SHA256_LEN], char *err, size_t errlen);

/* The digest of a whole file, read in chunks. */
int sha256_file(const char *path, uint8_t out[SHA256_LEN], char *err, size_t errlen);

/* Writes the lower-case hex form of a digest and a NUL into hex (65 bytes). */
void sha256_to_hex(const uint8_t digest[SHA256_LEN], char hex[SHA256_HEX_LEN + 1]);

#endif
