/*
 * cis.h -- the skill ABI of spearhost (SPEC.md section 9, seed 004), for C skills.
 *
 * A skill is a WASI reactor (-mexec-model=reactor) that exports
 *   execute(input_ptr) -> output_ptr   NUL-terminated UTF-8 JSON in, NUL-terminated JSON out
 *   alloc(size) -> ptr, dealloc(ptr, size)   (CIS_DEFINE_ALLOC() defines both with malloc/free)
 * and imports host functions from the module "cis":
 *   cis_ai_prompt, cis_memory_get, cis_memory_set, cis_http_request.
 * Results follow snprintf: the full length is returned and min(length, cap) bytes written;
 * calling again with the same inputs and a larger buffer returns the kept result (the host
 * does not repeat the request). Errors are negative SPEAR_E* values (spear_abi.h).
 *
 * Helpers: *_alloc variants that size the buffer for you, a small reader for flat JSON inputs
 * (cis_json_get_string / _int / _bool) and a growable output buffer with JSON escaping.
 * Everything here is static inline: include it in one or many files.
 */
#ifndef SPEARHOST_CIS_H
#define SPEARHOST_CIS_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spear_abi.h"

#define CIS_IMPORT(name) __attribute__((import_module("cis"), import_name(name)))
#define CIS_EXPORT(name) __attribute__((export_name(name)))

CIS_IMPORT("ai_prompt")
int32_t cis_ai_prompt(const char *prompt, int32_t prompt_len, char *result, int32_t result_cap);
CIS_IMPORT("memory_get")
int32_t cis_memory_get(const char *key, int32_t key_len, char *value, int32_t value_cap);
#ifdef CIS_MEMORY_SET_VOID
/* The seed's declaration, without a result: both link (errors are then only logged). */
CIS_IMPORT("memory_set")
void cis_memory_set(const char *key, int32_t key_len, const char *value, int32_t value_len);
#else
CIS_IMPORT("memory_set")
int32_t cis_memory_set(const char *key, int32_t key_len, const char *value, int32_t value_len);
#endif
CIS_IMPORT("http_request")
int32_t cis_http_request(const char *url, int32_t url_len, const char *body, int32_t body_len, char *result,
                         int32_t result_cap);

/* Defines the alloc/dealloc exports the host uses to pass the input. */
#define CIS_DEFINE_ALLOC()                                                                         \
    CIS_EXPORT("alloc") void *cis_export_alloc(int32_t size) { return malloc((size_t)size); }     \
    CIS_EXPORT("dealloc") void cis_export_dealloc(void *ptr, int32_t size) {                       \
        (void)size;                                                                                \
        free(ptr);                                                                                 \
    }

/* ---- sized calls: a malloc'd NUL-terminated result, or NULL with *rc = -errno ---- */

#define CIS_FIRST_CAP 256

/* Runs `call(buf, cap)` twice at most: the second time with room for the whole kept result. */
#define CIS_SIZED_CALL(rc_out, expr_with_buf_cap)                                                  \
    do {                                                                                           \
        int32_t cap = CIS_FIRST_CAP;                                                               \
        char *buf = malloc((size_t)cap + 1);                                                       \
        if (!buf) {                                                                                \
            *(rc_out) = -SPEAR_ENOMEM;                                                             \
            return NULL;                                                                           \
        }                                                                                          \
        int32_t n = (expr_with_buf_cap);                                                           \
        if (n > cap) {                                                                             \
            char *bigger = realloc(buf, (size_t)n + 1);                                            \
            if (!bigger) {                                                                         \
                free(buf);                                                                         \
                *(rc_out) = -SPEAR_ENOMEM;                                                         \
                return NULL;                                                                       \
            }                                                                                      \
            buf = bigger;                                                                          \
            cap = n;                                                                               \
            n = (expr_with_buf_cap);                                                               \
        }                                                                                          \
        if (n < 0) {                                                                               \
            free(buf);                                                                             \
            *(rc_out) = n;                                                                         \
            return NULL;                                                                           \
        }                                                                                          \
        buf[n] = 0;                                                                                \
        *(rc_out) = n;                                                                             \
        return buf;                                                                                \
    } while (0)

static inline char *cis_ai_prompt_alloc(const char *prompt, int32_t *rc) {
    CIS_SIZED_CALL(rc, cis_ai_prompt(prompt, (int32_t)strlen(prompt), buf, cap));
}

static inline char *cis_memory_get_alloc(const char *key, int32_t *rc) {
    CIS_SIZED_CALL(rc, cis_memory_get(key, (int32_t)strlen(key), buf, cap));
}

static inline char *cis_http_request_alloc(const char *url, const char *body, int32_t body_len, int32_t *rc) {
    CIS_SIZED_CALL(rc, cis_http_request(url, (int32_t)strlen(url), body, body_len, buf, cap));
}

/* ---- reading flat JSON objects ---- */

static inline const char *cis_json_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* Skips one JSON value; NULL if malformed. */
static inline const char *cis_json_skip(const char *p) {
    p = cis_json_ws(p);
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && p[1]) p++;
        return *p == '"' ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; *p; p++) {
            if (*p == '"') {
                p = cis_json_skip(p);
                if (!p) return NULL;
                p--;
            } else if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
    return p;
}

static inline void cis_utf8_put(char **out, char *end, uint32_t cp) {
    char tmp[4];
    int n;
    if (cp < 0x80) {
        tmp[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        tmp[0] = (char)(0xc0 | (cp >> 6));
        tmp[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        tmp[0] = (char)(0xe0 | (cp >> 12));
        tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        tmp[0] = (char)(0xf0 | (cp >> 18));
        tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        tmp[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    for (int i = 0; i < n; i++, (*out)++)
        if (*out < end) **out = tmp[i];
}

static inline uint32_t cis_hex4(const char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0xfffd;
    }
    return v;
}

/*
 * Decodes the JSON string at p (at its opening quote) into out (cap bytes, NUL-terminated when
 * room); returns the decoded length, or -1 if p is not a well-formed string.
 */
static inline int32_t cis_json_decode_string(const char *p, char *out, size_t cap) {
    if (*p != '"') return -1;
    char *o = out, *end = out + (cap ? cap - 1 : 0);
    for (p++; *p && *p != '"'; p++) {
        if (*p != '\\') {
            if (o < end) *o = *p;
            o++;
            continue;
        }
        p++;
        uint32_t cp;
        switch (*p) {
        case 'n': cp = '\n'; break;
        case 't': cp = '\t'; break;
        case 'r': cp = '\r'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'u':
            if (strnlen(p + 1, 4) < 4) return -1;
            cp = cis_hex4(p + 1);
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u' && strnlen(p + 3, 4) == 4) {
                uint32_t lo = cis_hex4(p + 3);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            break;
        case 0: return -1;
        default: cp = (unsigned char)*p; break;
        }
        cis_utf8_put(&o, end, cp);
    }
    if (*p != '"') return -1;
    if (cap) *(o < end ? o : end) = 0;
    return (int32_t)(o - out);
}

/* The value of `key` in the top-level JSON object, or NULL. */
static inline const char *cis_json_find(const char *json, const char *key) {
    const char *p = cis_json_ws(json);
    if (*p != '{') return NULL;
    p = cis_json_ws(p + 1);
    size_t key_len = strlen(key);
    while (*p == '"') {
        const char *k = p + 1;
        const char *after = cis_json_skip(p);
        if (!after) return NULL;
        int match = (size_t)(after - 1 - k) == key_len && memcmp(k, key, key_len) == 0;
        p = cis_json_ws(after);
        if (*p != ':') return NULL;
        p = cis_json_ws(p + 1);
        if (match) return p;
        p = cis_json_skip(p);
        if (!p) return NULL;
        p = cis_json_ws(p);
        if (*p != ',') return NULL;
        p = cis_json_ws(p + 1);
    }
    return NULL;
}

/* A string member, malloc'd and NUL-terminated (length in *len if not NULL); NULL if absent. */
static inline char *cis_json_get_string(const char *json, const char *key, int32_t *len) {
    const char *v = cis_json_find(json, key);
    if (!v || *v != '"') return NULL;
    int32_t n = cis_json_decode_string(v, NULL, 0);
    if (n < 0) return NULL;
    char *out = malloc((size_t)n + 1);
    if (!out) return NULL;
    cis_json_decode_string(v, out, (size_t)n + 1);
    if (len) *len = n;
    return out;
}

/* An integer member into *out; 0 if found, -1 if absent or not a number. */
static inline int cis_json_get_int(const char *json, const char *key, int64_t *out) {
    const char *v = cis_json_find(json, key);
    if (!v) return -1;
    char *end;
    long long n = strtoll(v, &end, 10);
    if (end == v) return -1;
    *out = (int64_t)n;
    return 0;
}

/* A boolean member: 1 true, 0 false, -1 absent. */
static inline int cis_json_get_bool(const char *json, const char *key) {
    const char *v = cis_json_find(json, key);
    if (!v) return -1;
    if (strncmp(v, "true", 4) == 0) return 1;
    if (strncmp(v, "false", 5) == 0) return 0;
    return -1;
}

/* ---- building the output ---- */

typedef struct {
    char *data;
    size_t len, cap;
    int failed;
} cis_buf;

static inline void cis_buf_put(cis_buf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = 0;
}

static inline void cis_buf_puts(cis_buf *b, const char *s) { cis_buf_put(b, s, strlen(s)); }

static inline void cis_buf_printf(cis_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        cis_buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cis_buf_put(b, big, (size_t)n);
    free(big);
}

/* Appends s (n bytes) as a quoted JSON string; bytes that are not UTF-8 become U+FFFD. */
static inline void cis_buf_json_string(cis_buf *b, const char *s, size_t n) {
    cis_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            cis_buf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            cis_buf_put(b, esc, 6);
        } else if (c < 0x80) {
            cis_buf_put(b, (const char *)&s[i], 1);
        } else {
            /* Copy a valid UTF-8 sequence whole; anything else is replaced. */
            size_t need = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
            size_t k = 1;
            while (need && k < need && i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80) k++;
            if (need && k == need) {
                cis_buf_put(b, &s[i], need);
                i += need - 1;
            } else {
                cis_buf_put(b, "\xef\xbf\xbd", 3);
            }
        }
    }
    cis_buf_put(b, "\"", 1);
}

/* The finished output (the buffer's memory), or a fixed error JSON if building it ran out of memory. */
static inline char *cis_buf_finish(cis_buf *b) {
    if (b->failed || !b->data) return (char *)"{\"error\":\"out of memory\"}";
    return b->data;
}

#endif /* SPEARHOST_CIS_H */
