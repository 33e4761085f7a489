/*
 * wrong_type: imports spear.log with the type (i32)->i32 instead of (i32,i32,i32)->i32; the host
 * must refuse to link it, naming the import and both types.
 */
#include <stdint.h>

__attribute__((import_module("spear"), import_name("log"))) int32_t bad_log(int32_t level);

int main(void) { return bad_log(2); }
