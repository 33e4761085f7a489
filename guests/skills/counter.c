/*
 * counter: a skill with memory. Every run adds `by` (default 1) to the counter kept in the
 * skill's memory and returns it; {"reset": true} sets it to 0 first. The store is SQLite on the
 * host, so the count survives restarts and is shared by every process running this skill.
 *
 *   spear skill add guests/build/skills/counter.wasm --name counter
 *   spear skill run counter                      -> {"count":1}
 *   spear skill run counter --input '{"by":5}'   -> {"count":6}
 *   spear skill memory counter get count         -> 6
 */
#include "cis.h"

CIS_DEFINE_ALLOC()

CIS_EXPORT("execute") char *execute(const char *input) {
    cis_buf out = {0};
    int64_t by = 1, count = 0;
    cis_json_get_int(input, "by", &by);
    if (cis_json_get_bool(input, "reset") != 1) {
        char value[32];
        int32_t rc = cis_memory_get("count", 5, value, (int32_t)sizeof value - 1);
        if (rc >= 0 && rc < (int32_t)sizeof value) {
            value[rc] = 0;
            count = strtoll(value, NULL, 10);
        } else if (rc != -SPEAR_ENOENT) {
            cis_buf_printf(&out, "{\"error\":\"memory_get failed\",\"rc\":%d}", (int)rc);
            return cis_buf_finish(&out);
        }
    }
    count += by;
    char text[32];
    int n = snprintf(text, sizeof text, "%lld", (long long)count);
    int32_t rc = cis_memory_set("count", 5, text, n);
    if (rc < 0) {
        cis_buf_printf(&out, "{\"error\":\"memory_set failed\",\"rc\":%d}", (int)rc);
        return cis_buf_finish(&out);
    }
    cis_buf_printf(&out, "{\"count\":%lld}", (long long)count);
    return cis_buf_finish(&out);
}
