/* One chat completion, as SPEAR's chat_completion sample: ask, wait, print the reply. */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#ifndef SP_MODEL
#define SP_MODEL "gpt-4o-mini"
#endif

int main(int argc, char **argv) {
    const char *question = argc > 1 ? argv[1] : "Hi, what is your name?";
    int32_t fd = sp_cchat_create();
    if (fd < 0) {
        printf("cchat_create failed: %d\n", fd);
        return 1;
    }
    sp_cchat_write_msg_str(fd, "user", question);
    sp_cchat_set_param_string(fd, "model", SP_MODEL);
    sp_cchat_set_param_u32(fd, "timeout_ms", 30000);
    int32_t resp = sp_cchat_send(fd, SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS);
    if (resp < 0) {
        printf("cchat_send failed: %d\n", resp);
        return 1;
    }
    uint32_t len = 0;
    uint8_t *json = sp_cchat_recv_alloc(resp, &len); /* blocks until the reply is complete */
    if (json == NULL) {
        printf("cchat_recv failed\n");
        return 1;
    }
    printf("response_bytes=%u\n", len);
    printf("response_json=%s\n", (const char *)json);
    uint32_t mlen = 0;
    uint8_t *metrics = sp_cchat_get_metrics_alloc(resp, &mlen);
    if (metrics != NULL) printf("metrics=%s\n", (const char *)metrics);
    free(metrics);
    free(json);
    sp_cchat_close(resp);
    sp_cchat_close(fd);
    return 0;
}
