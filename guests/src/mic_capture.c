/*
 * mic_capture: captures FRAMES frames from a microphone source and prints statistics.
 *
 *   spear run guests/build/mic_capture.wasm -- [SOURCE] [FRAMES] [RATE] [DEVICE]
 *     SOURCE  device | file | stub (default device; falls back to stub if there is no device)
 *     FRAMES  number of 20 ms frames (default 100, i.e. 2 s)
 *     RATE    sample_rate_hz (default 24000)
 *     DEVICE  exact input device name (default: the default input device; see `spear devices`)
 *
 * The file source plays the host config's mic.file. Output goes to the log (printf): one
 * line per second of audio with its level, then a summary and the mic status JSON.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "spear.h"

static int16_t frame[192000 / 50 * 8];

int main(int argc, char **argv) {
    const char *source = argc > 1 ? argv[1] : "device";
    int frames = argc > 2 ? atoi(argv[2]) : 100;
    int rate = argc > 3 ? atoi(argv[3]) : 24000;
    const char *device = argc > 4 ? argv[4] : NULL;
    if (frames <= 0) frames = 100;

    char json[512];
    if (device) {
        snprintf(json, sizeof json,
                 "{\"source\":\"%s\",\"sample_rate_hz\":%d,\"channels\":1,\"frame_ms\":20,\"device\":{\"name\":\"%s\"}}",
                 source, rate, device);
    } else {
        snprintf(json, sizeof json, "{\"source\":\"%s\",\"sample_rate_hz\":%d,\"channels\":1,\"frame_ms\":20}", source,
                 rate);
    }
    int32_t fd = sp_mic_create();
    int32_t rc = sp_mic_set_param_json(fd, json, (uint32_t)strlen(json));
    uint32_t status_len = 0;
    if (rc < 0) {
        uint8_t *status = sp_mic_get_status_alloc(fd, &status_len);
        printf("mic_ctl SET_PARAM failed: %d; status: %s\n", rc, status ? (char *)status : "?");
        free(status);
        return 1;
    }
    int32_t ep = sp_ep_create();
    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN);

    int64_t t0 = sp_time_now_ms();
    int got = 0, silent = 0, per_second = 0;
    long samples = 0;
    int peak = 0;
    double sum_sq = 0, second_sq = 0;
    long second_n = 0;
    while (got < frames) {
        sp_epoll_event_t ev[1];
        int32_t n = sp_ep_wait_events(ep, ev, 1, 5000);
        if (n <= 0) {
            printf("no audio for 5 s (epoll_wait %d)\n", n);
            break;
        }
        if (!(ev[0].events & SPEAR_EPOLLIN)) {
            printf("mic fd reports events 0x%x (%s)\n", ev[0].events,
                   ev[0].events & SPEAR_EPOLLERR ? "error" : "end of source");
            break;
        }
        uint32_t len = sizeof frame;
        int32_t bytes;
        while (got < frames && (bytes = sp_mic_read(fd, (int32_t)(uintptr_t)frame, (int32_t)(uintptr_t)&len)) >= 0) {
            int count = bytes / 2;
            double sq = 0;
            int nonzero = 0;
            for (int i = 0; i < count; i++) {
                int v = frame[i];
                if (v != 0) nonzero = 1;
                if (abs(v) > peak) peak = abs(v);
                sq += (double)v * v;
            }
            sum_sq += sq;
            second_sq += sq;
            second_n += count;
            samples += count;
            silent += !nonzero;
            got++;
            if (++per_second == 50) {
                double rms = sqrt(second_sq / (double)second_n) / 32768.0;
                printf("second %d: level %.1f dBFS\n", got / 50, rms > 0 ? 20 * log10(rms) : -120.0);
                per_second = 0;
                second_sq = 0;
                second_n = 0;
            }
            len = sizeof frame;
        }
    }
    int64_t elapsed = sp_time_now_ms() - t0;
    double rms = samples ? sqrt(sum_sq / (double)samples) / 32768.0 : 0;
    printf("captured %d frames (%ld samples, %.2f s of audio) in %lld ms; peak %d, rms %.1f dBFS, %d silent frames\n",
           got, samples, (double)samples / rate, (long long)elapsed, peak, rms > 0 ? 20 * log10(rms) : -120.0, silent);
    uint8_t *status = sp_mic_get_status_alloc(fd, &status_len);
    sp_logf(SP_LOG_INFO, "status %s\n", status ? (char *)status : "?");
    free(status);
    sp_mic_close(fd);
    sp_ep_close(ep);
    return 0;
}
