/*
 * typed_imports: imports of module "spear_test" with i64/f32/f64 parameters and results, which
 * no family provides: tests/entries_test.ts defines them through the test-only extraHostcalls
 * hook. `note` is declared in three ways (see the `//! wasm` lines): with an i32 result,
 * without a result (both are accepted signatures of the test hostcall), and with a wrong type.
 */
//! wasm typed_imports: -mexec-model=reactor
//! wasm typed_imports_void: -mexec-model=reactor -DNOTE_WITHOUT_RESULT
//! wasm typed_imports_wrong: -mexec-model=reactor -DNOTE_WRONG_TYPE
#include <stdint.h>

#define TEST_IMPORT(name) __attribute__((import_module("spear_test"), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

TEST_IMPORT("typed") double t_typed(int32_t a, int64_t b, float c, double d);
TEST_IMPORT("wide") int64_t t_wide(int64_t x);
TEST_IMPORT("narrow") float t_narrow(double x);

#if defined(NOTE_WITHOUT_RESULT)
TEST_IMPORT("note") void t_note(int32_t a, int32_t b);
EXPORT("probe_note") int32_t probe_note(int32_t a, int32_t b) {
    t_note(a, b);
    return 1234;
}
#elif defined(NOTE_WRONG_TYPE)
TEST_IMPORT("note") int64_t t_note(int32_t a);
EXPORT("probe_note") int32_t probe_note(int32_t a, int32_t b) { return (int32_t)t_note(a + b); }
#else
TEST_IMPORT("note") int32_t t_note(int32_t a, int32_t b);
EXPORT("probe_note") int32_t probe_note(int32_t a, int32_t b) { return t_note(a, b); }
#endif

EXPORT("probe_typed") double probe_typed(int32_t a, int64_t b, float c, double d) { return t_typed(a, b, c, d); }

EXPORT("probe_wide") int64_t probe_wide(int64_t x) { return t_wide(x); }

EXPORT("probe_narrow") float probe_narrow(double x) { return t_narrow(x); }
