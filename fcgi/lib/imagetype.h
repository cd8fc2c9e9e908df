/*
 * imagetype: the image formats the server accepts (PNG, JPEG, GIF, WebP)
 * and their recognition by magic bytes, never by a claimed type. Used by
 * POST /images and by inline base64 image parts of messages.
 */
#ifndef EVR_IMAGETYPE_H
#define EVR_IMAGETYPE_H

#include <stddef.h>

/* The media type ("image/png", ...) the data starts like, or NULL. At
 * least the first 12 bytes are needed for WebP. */
const char *imagetype_sniff(const unsigned char *d, size_t n);

/* Is media_type one of the four accepted ones? */
int imagetype_known(const char *media_type);

#endif
