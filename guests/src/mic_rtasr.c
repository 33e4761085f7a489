/*
 * mic_rtasr: SPEAR's sample of the same name (samples/wasm-c/mic_rtasr.c), rewritten from its
 * recorded behaviour (../shared/reference/spear-abi.md §9.4) with the same imports and the
 * same config usage, since SPEAR's binary is not available here:
 *   - a 24 kHz mono pcm16 `device` microphone with 20 ms frames and no stub fallback;
 *   - rtasr with transport "websocket", backend "openai-realtime-asr" (SP_RTASR_BACKEND), model
 *     "gpt-4o-mini-transcribe" (SP_RTASR_MODEL), server VAD with 600 ms of silence and
 *     flush_on_close;
 *   - one epoll loop: mic frames are written to rtasr, rtasr events are read one at a time;
 *     each transcript piece ("delta", else "transcript", else "text") is printed on its own
 *     line on WASI stdout with fwrite, every other event type is logged.
 * Runs until the mic or the recogniser reports EPOLLHUP or EPOLLERR (or the host's time limit).
 * Offline: give the config a `local_asr` backend named "openai-realtime-asr" (README).
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#ifndef SP_RTASR_BACKEND
#define SP_RTASR_BACKEND "openai-realtime-asr"
#endif
#ifndef SP_RTASR_MODEL
#define SP_RTASR_MODEL "gpt-4o-mini-transcribe"
#endif

/* The string value of "key" in a flat JSON event (escapes kept as-is except \" and \\). */
static int json_string(const char *json, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\":\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (*p == '\\' && p[1]) {
            p++;
            out[n++] = *p == 'n' ? ' ' : *p;
        } else {
            out[n++] = *p;
        }
        p++;
    }
    out[n] = 0;
    return 1;
}

int main(void) {
    int32_t ep = sp_epoll_create();
    int32_t mic = sp_mic_create();
    int32_t asr = sp_rtasr_create();
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);

    const char *mic_cfg = "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,"
                          "\"source\":\"device\",\"fallback\":{\"to_stub\":false}}";
    int32_t rc = sp_mic_set_param_json(mic, mic_cfg, (uint32_t)strlen(mic_cfg));
    if (rc != 0) {
        uint32_t len = 0;
        uint8_t *status = sp_mic_get_status_alloc(mic, &len);
        printf("mic_ctl failed: %d\n", rc);
        printf("mic_status: %s\n", status ? (const char *)status : "(none)");
        free(status);
        return 1;
    }
    sp_rtasr_set_param_string(asr, "transport", "websocket");
    sp_rtasr_set_param_string(asr, "backend", SP_RTASR_BACKEND);
    sp_rtasr_set_param_string(asr, "model", SP_RTASR_MODEL);
    const char *seg = "{\"strategy\":\"server_vad\",\"vad\":{\"silence_ms\":600},\"flush_on_close\":true}";
    sp_rtasr_set_autoflush_json(asr, seg, (uint32_t)strlen(seg));
    rc = sp_rtasr_connect(asr);
    if (rc != 0) {
        uint32_t len = 0;
        uint8_t *status = sp_rtasr_get_status_alloc(asr, &len);
        printf("rtasr connect failed: %d %s\n", rc, status ? (const char *)status : "");
        free(status);
        return 1;
    }
    printf("mic_rtasr started\n");

    int stub_warned = 0;
    static char text[64 * 1024];
    for (;;) {
        uint8_t evbuf[512];
        uint32_t evlen = sizeof(evbuf);
        int32_t n = sp_epoll_wait(ep, (int32_t)(uintptr_t)evbuf, (int32_t)(uintptr_t)&evlen, 2000);
        if (n < 0) continue;
        for (int32_t i = 0; i < n; i++) {
            int32_t fd, events;
            memcpy(&fd, evbuf + i * 8, 4);
            memcpy(&events, evbuf + i * 8 + 4, 4);
            if (events & SPEAR_EPOLLHUP) {
                printf("%s hup\n", fd == mic ? "mic" : "rtasr");
                goto done;
            }
            if (events & SPEAR_EPOLLERR) {
                printf("%s err\n", fd == mic ? "mic" : "rtasr");
                goto done;
            }
            if (fd == mic && (events & SPEAR_EPOLLIN)) {
                uint32_t len = 0;
                uint8_t *frame = sp_mic_read_alloc(mic, &len);
                if (frame) {
                    int32_t w = sp_rtasr_write(asr, (int32_t)(uintptr_t)frame, (int32_t)len);
                    if (w < 0 && w != -SPEAR_EAGAIN) printf("rtasr_write failed: %d\n", w);
                    free(frame);
                }
            }
            if (fd == asr && (events & SPEAR_EPOLLIN)) {
                uint32_t len = 0;
                uint8_t *msg = sp_rtasr_read_alloc(asr, &len);
                if (!msg) continue;
                const char *json = (const char *)msg;
                char type[128];
                if (json[0] != '{' || !json_string(json, "type", type, sizeof(type))) {
                    printf("event_bytes=%u\n", len);
                } else if (strncmp(type, "transcription.", 14) == 0 && !stub_warned) {
                    stub_warned = 1;
                    printf("warning: rtasr is using the stub transport (events are fake)\n");
                    printf("hint: configure a realtime backend named %s\n", SP_RTASR_BACKEND);
                } else if (!strstr(type, "transcription")) {
                    printf("event_type=%s\n", type);
                } else if (json_string(json, "delta", text, sizeof(text)) ||
                           json_string(json, "transcript", text, sizeof(text)) ||
                           json_string(json, "text", text, sizeof(text))) {
                    fwrite(text, 1, strlen(text), stdout);
                    fputc('\n', stdout);
                } else {
                    printf("event_type=%s\n", type);
                }
                free(msg);
            }
        }
    }
done:
    sp_rtasr_close(asr);
    sp_mic_close(mic);
    sp_epoll_close(ep);
    return 0;
}
