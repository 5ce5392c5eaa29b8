// A very small reader for the flat JSON configuration Docket hands a
// plugin (`host.config`). It understands what these examples need: a
// string value, or membership of a string in an array of strings, under a
// top-level key. Plugins with richer configuration should use a real JSON
// library; these stay dependency-free so that the build is one clang call.
#ifndef DOCKET_MINIJSON_H
#define DOCKET_MINIJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <ctype.h>

// Finds `"key"` followed by `:` in `json`; returns a pointer just past the
// colon (whitespace skipped), or NULL.
static inline const char *minijson_value(const char *json, size_t len, const char *key) {
    size_t key_len = strlen(key);
    const char *end = json + len;
    for (const char *p = json; p + key_len + 2 <= end; p++) {
        if (p[0] != '"' || memcmp(p + 1, key, key_len) != 0 || p[key_len + 1] != '"') {
            continue;
        }
        const char *q = p + key_len + 2;
        while (q < end && isspace((unsigned char)*q)) q++;
        if (q >= end || *q != ':') continue;
        q++;
        while (q < end && isspace((unsigned char)*q)) q++;
        return q < end ? q : NULL;
    }
    return NULL;
}

// Reads the JSON string starting at `p` (which must point at `"`), without
// unescaping: returns its length and sets `*start`, or returns -1.
static inline long minijson_string(const char *p, const char *end, const char **start) {
    if (p >= end || *p != '"') return -1;
    const char *q = p + 1;
    while (q < end && *q != '"') {
        if (*q == '\\') q++;
        q++;
    }
    if (q >= end) return -1;
    *start = p + 1;
    return (long)(q - (p + 1));
}

// Case-insensitive ASCII comparison of two byte strings.
static inline bool minijson_equal_fold(const char *a, size_t a_len, const char *b, size_t b_len) {
    if (a_len != b_len) return false;
    for (size_t i = 0; i < a_len; i++) {
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return false;
    }
    return true;
}

// Whether the array under `key` holds `needle` (case-insensitive).
static inline bool minijson_array_has(const char *json, size_t len, const char *key, const char *needle, size_t needle_len) {
    const char *end = json + len;
    const char *p = minijson_value(json, len, key);
    if (p == NULL || *p != '[') return false;
    p++;
    while (p < end && *p != ']') {
        if (*p == '"') {
            const char *start;
            long n = minijson_string(p, end, &start);
            if (n < 0) return false;
            if (minijson_equal_fold(start, (size_t)n, needle, needle_len)) return true;
            p = start + n + 1;
        } else {
            p++;
        }
    }
    return false;
}

// Copies the string under `key` into `out` (NUL-terminated, truncated to
// `out_size`); returns false if there is none.
static inline bool minijson_get_string(const char *json, size_t len, const char *key, char *out, size_t out_size) {
    const char *end = json + len;
    const char *p = minijson_value(json, len, key);
    const char *start;
    long n = p ? minijson_string(p, end, &start) : -1;
    if (n < 0 || out_size == 0) return false;
    size_t copy = (size_t)n < out_size - 1 ? (size_t)n : out_size - 1;
    memcpy(out, start, copy);
    out[copy] = '\0';
    return true;
}

#endif
