/*
 * rtasr_epoll: seed 002 §12's sample: one epoll loop over a mic fd and an rtasr fd. Mic frames
 * go to rtasr_write (held while the send queue is full, sent again on EPOLLOUT); each finished
 * transcript is printed on its own line on stdout as it arrives, partial words (deltas) on
 * stderr-free log lines. Arguments (all optional):
 *   argv[1] mic source: "file" (default: the host config's mic.file), "device" or "stub"
 *   argv[2] rtasr transport: "websocket" (default), "local" or "stub"
 *   argv[3] backend name (default "openai-realtime-asr")
 * Ends when the mic reaches the end of its file (then it FLUSHes, committing speech that had
 * no trailing silence) and every utterance that started has its transcript (or 10 s later),
 * or on an error. Exit 0, or 1 when something failed.
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static int json_string(const char *json, const char *key, char *out, size_t cap) {
    char pattern[64];
    snprintf(pattern, sizeof(pattern), "\"%s\":\"", key);
    const char *p = strstr(json, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (*p == '\\' && p[1]) p++;
        out[n++] = *p++;
    }
    out[n] = 0;
    return 1;
}

int main(int argc, char **argv) {
    const char *source = argc > 1 ? argv[1] : "file";
    const char *transport = argc > 2 ? argv[2] : "websocket";
    const char *backend = argc > 3 ? argv[3] : "openai-realtime-asr";

    int32_t ep = sp_epoll_create();
    int32_t mic = sp_mic_create();
    int32_t asr = sp_rtasr_create();
    char mic_cfg[256];
    snprintf(mic_cfg, sizeof(mic_cfg),
             "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,\"source\":\"%s\","
             "\"fallback\":{\"to_stub\":false}}",
             source);
    int32_t rc = sp_mic_set_param_json(mic, mic_cfg, (uint32_t)strlen(mic_cfg));
    if (rc != 0) {
        printf("mic SET_PARAM failed: %d\n", rc);
        return 1;
    }
    sp_rtasr_set_param_string(asr, "transport", transport);
    if (strcmp(transport, "stub") != 0) sp_rtasr_set_param_string(asr, "backend", backend);
    const char *seg = "{\"strategy\":\"server_vad\",\"vad\":{\"silence_ms\":500}}";
    sp_rtasr_set_autoflush_json(asr, seg, (uint32_t)strlen(seg));
    if ((rc = sp_rtasr_connect(asr)) != 0) {
        uint32_t len = 0;
        uint8_t *status = sp_rtasr_get_status_alloc(asr, &len);
        printf("rtasr CONNECT failed: %d %s\n", rc, status ? (const char *)status : "");
        return 1;
    }
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, mic, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, asr, SPEAR_EPOLLIN | SPEAR_EPOLLOUT | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);

    static uint8_t pending[64 * 1024];
    static char text[64 * 1024];
    int pending_len = 0, started = 0, completed = 0, mic_done = 0, failed = 0;
    int64_t deadline = 0;
    for (;;) {
        if (mic_done && completed >= started) break;
        if (mic_done && sp_time_now_ms() > deadline) {
            printf("gave up waiting for %d transcript(s)\n", started - completed);
            failed = 1;
            break;
        }
        sp_epoll_event_t ev[8];
        int32_t n = sp_ep_wait_events(ep, ev, 8, 200);
        for (int32_t i = 0; i < n; i++) {
            int32_t fd = ev[i].fd, events = ev[i].events;
            if (fd == mic) {
                if (events & SPEAR_EPOLLIN && pending_len == 0) {
                    uint32_t len = sizeof(pending);
                    int32_t r = sp_mic_read(mic, (int32_t)(uintptr_t)pending, (int32_t)(uintptr_t)&len);
                    if (r > 0) {
                        int32_t w = sp_rtasr_write(asr, (int32_t)(uintptr_t)pending, r);
                        if (w == -SPEAR_EAGAIN) pending_len = r; /* sent on EPOLLOUT */
                        else if (w < 0) printf("rtasr_write failed: %d\n", w);
                    }
                } else if (events & (SPEAR_EPOLLHUP | SPEAR_EPOLLERR) && !(events & SPEAR_EPOLLIN) && !mic_done) {
                    mic_done = 1; /* end of the file: commit what is left, wait for the transcripts */
                    deadline = sp_time_now_ms() + 10000;
                    if (started > completed) sp_rtasr_flush(asr);
                    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, mic, 0);
                }
            } else if (fd == asr) {
                if (events & SPEAR_EPOLLOUT && pending_len > 0) {
                    int32_t w = sp_rtasr_write(asr, (int32_t)(uintptr_t)pending, pending_len);
                    if (w >= 0) pending_len = 0;
                }
                while (events & SPEAR_EPOLLIN) {
                    uint32_t len = 0;
                    uint8_t *msg = sp_rtasr_read_alloc(asr, &len);
                    if (!msg) break;
                    const char *json = (const char *)msg;
                    if (strstr(json, "\"input_audio_buffer.speech_started\"")) started++;
                    if (strstr(json, "transcription.completed\"") && json_string(json, "transcript", text, sizeof(text))) {
                        completed++;
                        fwrite(text, 1, strlen(text), stdout);
                        fputc('\n', stdout);
                    } else if (strstr(json, "transcription.delta\"") && json_string(json, "delta", text, sizeof(text))) {
                        printf("delta:%s\n", text);
                    } else if (strstr(json, "\"type\":\"error\"")) {
                        printf("server error: %s\n", json);
                    }
                    free(msg);
                }
                if (events & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) {
                    uint32_t len = 0;
                    uint8_t *status = sp_rtasr_get_status_alloc(asr, &len);
                    printf("rtasr %s: %s\n", events & SPEAR_EPOLLERR ? "error" : "closed", status ? (const char *)status : "");
                    free(status);
                    failed = (events & SPEAR_EPOLLERR) != 0;
                    goto done;
                }
            }
        }
    }
done:
    sp_rtasr_close(asr);
    sp_mic_close(mic);
    sp_epoll_close(ep);
    return failed;
}
