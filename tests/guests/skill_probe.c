/*
 * skill_probe: the test skill of tests/families/cis/ and tests/system/skills_test.ts. One
 * source, several builds (the `//! wasm` lines, read by guests/build.sh):
 *   skill_probe            reactor, exports its memory, memory_set with an i32 result
 *   skill_probe_imported   the same with its memory imported as env.memory
 *   skill_probe_void       memory_set declared without a result (the seed's declaration)
 *   skill_no_alloc         no alloc export (refused before it runs)
 *   skill_no_execute       no execute export
 *
 * The input says what to do ({"op": …}); the output reports every return code, so the tests
 * see exactly what each host function did:
 *   ai     {prompt, cap, retry?}      ai_prompt with a cap-byte buffer; retry with room for it all
 *   get    {key, cap, retry?}         memory_get likewise
 *   set    {key, value}               memory_set
 *   http   {url, body?, cap, retry?, again?}  http_request; again: the same call once more after a full read
 *   count  {}                         the counter: get "count", add one, set it
 *   badptr {}                         memory_get / ai_prompt / http_request with pointers outside memory
 *   badlen {}                         negative lengths and capacity
 *   spin   {}                         never returns (the time limit ends it)
 *   alloc  {mb}                       mallocs 1 MiB blocks until mb or failure
 *   memloop {n}                       n memory_set + memory_get round trips (bench/skill_bench.ts)
 *   notjson {}                        returns text that is not JSON
 *   echo                              returns the input
 */
//! wasm skill_probe: -mexec-model=reactor
//! wasm skill_probe_imported: -mexec-model=reactor -Wl,--import-memory
//! wasm skill_probe_void: -mexec-model=reactor -DCIS_MEMORY_SET_VOID
//! wasm skill_no_alloc: -mexec-model=reactor -DNO_ALLOC
//! wasm skill_no_execute: -mexec-model=reactor -DNO_EXECUTE
#include "cis.h"

#ifndef NO_ALLOC
CIS_DEFINE_ALLOC()
#endif

/* Blocks the alloc op holds on to. */
__attribute__((unused)) static void *volatile held;

__attribute__((unused)) static void put_result(cis_buf *out, const char *name, int32_t rc, const char *buf, int32_t cap) {
    cis_buf_printf(out, ",\"%s_rc\":%d", name, (int)rc);
    if (rc >= 0 && buf) {
        int32_t n = rc < cap ? rc : cap;
        cis_buf_printf(out, ",\"%s\":", name);
        cis_buf_json_string(out, buf, (size_t)n);
    }
}

__attribute__((unused)) static int64_t int_or(const char *input, const char *key, int64_t fallback) {
    int64_t v;
    return cis_json_get_int(input, key, &v) == 0 ? v : fallback;
}

/* Runs one snprintf-style call (kind ai/get/http) with a cap-byte buffer, then optionally a retry. */
__attribute__((unused)) static void sized(cis_buf *out, const char *input, const char *kind) {
    int32_t cap = (int32_t)int_or(input, "cap", 64);
    int retry = cis_json_get_bool(input, "retry") == 1;
    int again = cis_json_get_bool(input, "again") == 1;
    int32_t arg_len = 0, body_len = 0;
    char *arg = cis_json_get_string(input, kind[0] == 'a' ? "prompt" : kind[0] == 'g' ? "key" : "url", &arg_len);
    char *body = cis_json_get_string(input, "body", &body_len);
    if (!arg) arg = calloc(1, 1);
    char *buf = malloc((size_t)cap + 1);
    int32_t rc;
#define CALL(b, c)                                                                                 \
    (kind[0] == 'a'   ? cis_ai_prompt(arg, arg_len, (b), (c))                                      \
     : kind[0] == 'g' ? cis_memory_get(arg, arg_len, (b), (c))                                     \
                      : cis_http_request(arg, arg_len, body, body ? body_len : 0, (b), (c)))
    rc = CALL(buf, cap);
    put_result(out, "first", rc, buf, cap);
    if (retry && rc > cap) {
        char *full = malloc((size_t)rc + 1);
        int32_t rc2 = CALL(full, rc);
        put_result(out, "retry", rc2, full, rc);
        if (again) {
            int32_t rc3 = CALL(full, rc);
            put_result(out, "again", rc3, full, rc);
        }
        free(full);
    } else if (again) {
        int32_t rc3 = CALL(buf, cap);
        put_result(out, "again", rc3, buf, cap);
    }
#undef CALL
    free(buf);
    free(arg);
    free(body);
}

#ifndef NO_EXECUTE
CIS_EXPORT("execute") char *execute(const char *input) {
    cis_buf out = {0};
    char *op = cis_json_get_string(input, "op", NULL);
    if (!op) return strdup("{\"error\":\"no op\"}");
    cis_buf_puts(&out, "{\"op\":");
    cis_buf_json_string(&out, op, strlen(op));
    if (strcmp(op, "ai") == 0) {
        sized(&out, input, "ai");
    } else if (strcmp(op, "get") == 0) {
        sized(&out, input, "get");
    } else if (strcmp(op, "http") == 0) {
        sized(&out, input, "http");
    } else if (strcmp(op, "set") == 0) {
        int32_t key_len = 0, value_len = 0;
        char *key = cis_json_get_string(input, "key", &key_len);
        char *value = cis_json_get_string(input, "value", &value_len);
        int64_t repeat = int_or(input, "value_bytes", -1);
        if (repeat >= 0) { /* a value of that many bytes (quota tests) */
            free(value);
            value = malloc((size_t)repeat + 1);
            memset(value, 'v', (size_t)repeat);
            value_len = (int32_t)repeat;
        }
#ifdef CIS_MEMORY_SET_VOID
        cis_memory_set(key ? key : "", key_len, value ? value : "", value_len);
        cis_buf_puts(&out, ",\"set\":\"void\"");
#else
        int32_t rc = cis_memory_set(key ? key : "", key_len, value ? value : "", value_len);
        cis_buf_printf(&out, ",\"set_rc\":%d", (int)rc);
#endif
        free(key);
        free(value);
    } else if (strcmp(op, "count") == 0) {
        char value[32];
        int32_t rc = cis_memory_get("count", 5, value, (int32_t)sizeof value - 1);
        long long count = 0;
        if (rc >= 0 && rc < (int32_t)sizeof value) {
            value[rc] = 0;
            count = strtoll(value, NULL, 10);
        }
        count++;
        int n = snprintf(value, sizeof value, "%lld", count);
#ifdef CIS_MEMORY_SET_VOID
        cis_memory_set("count", 5, value, n);
        cis_buf_printf(&out, ",\"get_rc\":%d,\"count\":%lld", (int)rc, count);
#else
        int32_t set_rc = cis_memory_set("count", 5, value, n);
        cis_buf_printf(&out, ",\"get_rc\":%d,\"set_rc\":%d,\"count\":%lld", (int)rc, (int)set_rc, count);
#endif
    } else if (strcmp(op, "badptr") == 0) {
        char small[8];
        int32_t far = 0x7ffffff0;
        cis_buf_printf(&out, ",\"get_key\":%d", (int)cis_memory_get((const char *)(uintptr_t)far, 8, small, 8));
        cis_buf_printf(&out, ",\"get_value\":%d", (int)cis_memory_get("k", 1, (char *)(uintptr_t)far, 64));
        cis_buf_printf(&out, ",\"ai_prompt\":%d", (int)cis_ai_prompt((const char *)(uintptr_t)far, 4, small, 8));
        cis_buf_printf(&out, ",\"ai_result\":%d", (int)cis_ai_prompt("hi", 2, (char *)(uintptr_t)far, 64));
        cis_buf_printf(&out, ",\"http_url\":%d",
                       (int)cis_http_request((const char *)(uintptr_t)far, 10, NULL, 0, small, 8));
        cis_buf_printf(&out, ",\"http_result\":%d",
                       (int)cis_http_request("http://x", 8, NULL, 0, (char *)(uintptr_t)far, 64));
#ifndef CIS_MEMORY_SET_VOID
        cis_buf_printf(&out, ",\"set_value\":%d", (int)cis_memory_set("k", 1, (const char *)(uintptr_t)far, 64));
#endif
    } else if (strcmp(op, "badlen") == 0) {
        char small[8];
        cis_buf_printf(&out, ",\"get_key\":%d", (int)cis_memory_get("k", -1, small, 8));
        cis_buf_printf(&out, ",\"get_cap\":%d", (int)cis_memory_get("k", 1, small, -1));
        cis_buf_printf(&out, ",\"get_empty\":%d", (int)cis_memory_get("", 0, small, 8));
        cis_buf_printf(&out, ",\"ai_empty\":%d", (int)cis_ai_prompt("", 0, small, 8));
        cis_buf_printf(&out, ",\"http_len\":%d", (int)cis_http_request("http://x", -3, NULL, 0, small, 8));
        cis_buf_printf(&out, ",\"key_utf8\":%d", (int)cis_memory_get("\xff\xfe", 2, small, 8));
    } else if (strcmp(op, "spin") == 0) {
        volatile uint64_t n = 0;
        for (;;) n++;
    } else if (strcmp(op, "alloc") == 0) {
        int64_t want = int_or(input, "mb", 16), got = 0;
        while (got < want) {
            void **block = malloc(1 << 20);
            if (!block) break;
            *block = held; /* chained from a global, so the compiler cannot drop the allocation */
            held = block;
            got++;
        }
        cis_buf_printf(&out, ",\"allocated_mb\":%lld,\"failed\":%s", (long long)got, got < want ? "true" : "false");
    } else if (strcmp(op, "memloop") == 0) {
        int64_t n = int_or(input, "n", 100), errors = 0;
        char key[8] = "k00", value[16];
        for (int64_t i = 0; i < n; i++) {
            key[1] = (char)('a' + i % 16);
            int len = snprintf(value, sizeof value, "v%lld", (long long)i);
#ifdef CIS_MEMORY_SET_VOID
            cis_memory_set(key, 3, value, len);
#else
            if (cis_memory_set(key, 3, value, len) != 0) errors++;
#endif
            if (cis_memory_get(key, 3, value, (int32_t)sizeof value) != len) errors++;
        }
        cis_buf_printf(&out, ",\"n\":%lld,\"errors\":%lld", (long long)n, (long long)errors);
    } else if (strcmp(op, "notjson") == 0) {
        return strdup("this is not JSON");
    } else if (strcmp(op, "echo") == 0) {
        free(out.data);
        return strdup(input);
    }
    free(op);
    cis_buf_puts(&out, "}");
    return cis_buf_finish(&out);
}
#endif

#ifdef NO_EXECUTE
CIS_EXPORT("run") int32_t run(int32_t x) { return x; }
#endif
