/*
 * missing_import: imports env.nonexistent, which no host provides, so it must fail to link
 * (the host names the import as "env.nonexistent").
 */
#include "spear.h"

__attribute__((import_module("env"), import_name("nonexistent"))) int32_t nonexistent(int32_t x);

int main(int argc, char **argv) {
    (void)argv;
    return nonexistent(argc);
}
