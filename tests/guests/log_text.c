/*
 * log_text: logs each argument as one `log` record (INFO), byte for byte, then exits 0.
 * For tests of how the host prints guest-controlled text (control characters, newlines).
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        sp_log_str(SP_LOG_INFO, argv[i]);
    }
    return 0;
}
