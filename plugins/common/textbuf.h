// A fixed-size text buffer for building messages without stdio: printf
// and friends pull in WASI imports (fd_write...), and these plugins are
// meant to need no WASI at all.
#ifndef DOCKET_TEXTBUF_H
#define DOCKET_TEXTBUF_H

#include <stddef.h>
#include <string.h>

typedef struct {
    char text[512];
    size_t len;
} textbuf_t;

static inline void textbuf_bytes(textbuf_t *b, const void *bytes, size_t n) {
    size_t room = sizeof b->text - 1 - b->len;
    if (n > room) n = room;
    memcpy(b->text + b->len, bytes, n);
    b->len += n;
    b->text[b->len] = '\0';
}

static inline void textbuf_str(textbuf_t *b, const char *s) { textbuf_bytes(b, s, strlen(s)); }

static inline void textbuf_long(textbuf_t *b, long value) {
    char digits[24];
    size_t n = 0;
    unsigned long v = value < 0 ? (unsigned long)(-value) : (unsigned long)value;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < sizeof digits);
    if (value < 0) textbuf_str(b, "-");
    while (n > 0) textbuf_bytes(b, &digits[--n], 1);
}

#endif
