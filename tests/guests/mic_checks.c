/*
 * mic_checks: the mic ABI case by case. Each case logs "NAME VALUE" (VALUE is a return code
 * or 0/1); tests/families/mic/guest_test.ts compares them with its table. argv[1] is a stub_pcm16_base64
 * whose samples count up from 0 (sample i == i), so frame contents are checkable.
 * Also logs "status_before JSON", "status_stub JSON" and "closed" (the test samples the
 * driver right after it), then "done".
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#define P(p) ((int32_t)(uintptr_t)(p))
#define R(name, value) printf("%s %d\n", (name), (int)(value))

static uint8_t buf[64 * 1024];

static int32_t set_param(int32_t fd, const char *json) {
    return sp_mic_set_param_json(fd, json, (uint32_t)strlen(json));
}

/* {"source":"stub","stub_pcm16_base64":"<n_a x 'A'><tail>"} in a malloc'd buffer. */
static char *stub_json(size_t n_a, const char *tail) {
    const char *head = "{\"source\":\"stub\",\"stub_pcm16_base64\":\"";
    size_t hl = strlen(head), tl = strlen(tail);
    char *json = malloc(hl + n_a + tl + 3);
    if (!json) return NULL;
    memcpy(json, head, hl);
    memset(json + hl, 'A', n_a);
    memcpy(json + hl + n_a, tail, tl);
    memcpy(json + hl + n_a + tl, "\"}", 3);
    return json;
}

static void log_status(int32_t fd, const char *label) {
    uint32_t len = 0;
    uint8_t *json = sp_mic_get_status_alloc(fd, &len);
    sp_logf(SP_LOG_INFO, "%s %s\n", label, json ? (const char *)json : "(failed)");
    free(json);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        printf("usage: mic_checks STUB_BASE64\n");
        return 2;
    }
    int32_t fd = sp_mic_create();
    int32_t ep = sp_ep_create();
    uint32_t len;
    log_status(fd, "status_before");

    static const struct {
        const char *name, *json;
    } bad[] = {
        {"bad_json", "{"},
        {"not_object", "[1,2]"},
        {"empty", ""},
        {"rate_low", "{\"sample_rate_hz\":7999}"},
        {"rate_high", "{\"sample_rate_hz\":192001}"},
        {"rate_type", "{\"sample_rate_hz\":\"24000\"}"},
        {"rate_float", "{\"sample_rate_hz\":16000.5}"},
        {"channels_zero", "{\"channels\":0}"},
        {"channels_high", "{\"channels\":9}"},
        {"frame_ms_zero", "{\"frame_ms\":0}"},
        {"frame_ms_high", "{\"frame_ms\":1001}"},
        {"format", "{\"format\":\"f32le\"}"},
        {"source", "{\"source\":\"mock\"}"},
        {"drop_policy", "{\"drop_policy\":\"drop_random\"}"},
        {"queue_small", "{\"max_queue_bytes\":959}"},
        {"queue_type", "{\"max_queue_bytes\":\"big\"}"},
        {"device_type", "{\"device\":\"default\"}"},
        {"device_name_type", "{\"device\":{\"name\":5}}"},
        {"fallback_type", "{\"fallback\":{\"to_stub\":\"yes\"}}"},
        {"loop_type", "{\"loop\":1}"},
        {"stub_invalid", "{\"stub_pcm16_base64\":\"@@@@\"}"},
        {"stub_unpadded", "{\"stub_pcm16_base64\":\"AAE\"}"},
        {"stub_type", "{\"stub_pcm16_base64\":5}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) R(bad[i].name, set_param(fd, bad[i].json));
    R("queue_one_frame", set_param(fd, "{\"source\":\"stub\",\"max_queue_bytes\":960}"));

    /* 10 MiB decoded is the limit: 10485760 bytes passes, 10485761 does not. */
    char *json = stub_json(13981012, "AA==");
    R("stub_10mib", json ? set_param(fd, json) : -1);
    free(json);
    json = stub_json(13981012, "AAA=");
    R("stub_over_10mib", json ? set_param(fd, json) : -1);
    free(json);

    len = sizeof buf;
    R("bad_cmd", sp_mic_ctl(fd, 9, P(buf), P(&len)));

    /* max_queue_bytes is kept from the last SET_PARAM (960): too small for 3200-byte frames. */
    R("cap_kept_too_small", set_param(fd, "{\"source\":\"stub\",\"sample_rate_hz\":8000,\"frame_ms\":200}"));

    /* A valid stub capture; unknown fields are ignored (and listed in the status). */
    static char cfg[96 * 1024];
    snprintf(cfg, sizeof cfg,
             "{\"source\":\"stub\",\"sample_rate_hz\":8000,\"frame_ms\":200,\"max_queue_bytes\":524288,"
             "\"stub_pcm16_base64\":\"%s\",\"extra_field\":1,\"device\":{\"name\":\"x\",\"id\":3}}",
             argv[1]);
    R("set_stub", set_param(fd, cfg));
    log_status(fd, "status_stub");
    len = sizeof buf;
    R("read_empty", sp_mic_read(fd, P(buf), P(&len)));

    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN);
    sp_epoll_event_t ev[2];
    int32_t n = sp_ep_wait_events(ep, ev, 2, 3000);
    R("epoll_in", n == 1 && ev[0].fd == fd && (ev[0].events & SPEAR_EPOLLIN));

    len = 10;
    R("read_enospc", sp_mic_read(fd, P(buf), P(&len)));
    R("enospc_len", len);
    len = sizeof buf;
    int32_t got = sp_mic_read(fd, P(buf), P(&len));
    R("read_ok", got);
    int16_t *s = (int16_t *)buf;
    R("frame0_first", s[0]);
    R("frame0_last", s[1599]);

    len = 8;
    R("status_enospc", sp_mic_ctl(fd, SPEAR_MIC_CTL_GET_STATUS, P(buf), P(&len)));
    R("status_needed_gt8", len > 8);
    len = sizeof buf;
    got = sp_fd_ctl(fd, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len));
    R("fd_kind_mic", got > 0 && memcmp(buf, "{\"kind\":\"Mic\"}", (size_t)got) == 0);
    len = sizeof buf;
    got = sp_fd_ctl(fd, SPEAR_FD_CTL_GET_METRICS, P(buf), P(&len));
    buf[got > 0 ? got : 0] = 0;
    R("fd_metrics", got > 0 && strstr((char *)buf, "\"dropped_frames\":") != NULL);

    len = sizeof buf;
    R("wrong_kind_read", sp_mic_read(ep, P(buf), P(&len)));
    len = sizeof buf;
    R("wrong_kind_ctl", sp_mic_ctl(ep, SPEAR_MIC_CTL_GET_STATUS, P(buf), P(&len)));
    len = sizeof buf;
    R("unknown_fd_read", sp_mic_read(99999, P(buf), P(&len)));
    R("read_bad_len_ptr", sp_mic_read(fd, P(buf), 0x7ffffff0));

    /* The next frame: a bad out pointer is -EFAULT and, like -ENOSPC, leaves it queued. */
    n = sp_ep_wait_events(ep, ev, 2, 3000);
    R("epoll_in_again", n == 1 && (ev[0].events & SPEAR_EPOLLIN));
    len = sizeof buf;
    R("read_bad_ptr", sp_mic_read(fd, -4, P(&len)));
    len = sizeof buf;
    R("read_after_fault", sp_mic_read(fd, P(buf), P(&len)));
    R("frame1_first", s[0]);

    /* Close while capturing: HUP, EBADF, and the driver stops (checked by the test). */
    R("close", sp_mic_close(fd));
    printf("closed\n");
    sp_sleep_ms(400);
    n = sp_ep_wait_events(ep, ev, 2, 0);
    R("hup_after_close", n == 1 && (ev[0].events & SPEAR_EPOLLHUP) && !(ev[0].events & SPEAR_EPOLLIN));
    len = sizeof buf;
    R("read_closed", sp_mic_read(fd, P(buf), P(&len)));
    len = sizeof buf;
    R("ctl_closed", sp_mic_ctl(fd, SPEAR_MIC_CTL_GET_STATUS, P(buf), P(&len)));
    R("close_twice", sp_mic_close(fd));
    sp_ep_close(ep);
    printf("done\n");
    return 0;
}
