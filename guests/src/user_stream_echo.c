/*
 * user_stream_echo: SPEAR's sample of the same name (samples/wasm-c/user_stream_echo.c),
 * rewritten from its recorded behaviour (../shared/reference/spear-abi.md §9.5) with the same
 * imports, since SPEAR's binary is not available here:
 *   - a ctl fd in an epoll set (IN|ERR|HUP); each STREAM_CONNECTED opens that stream both ways
 *     (up to 16 streams) and adds it with IN|OUT|ERR|HUP;
 *   - every frame read from a stream is written back unchanged (same stream id); a write that
 *     gets -EAGAIN keeps at most one pending frame per stream (later ones are dropped) and
 *     retries it on EPOLLOUT or on the 2 s wait timeout;
 *   - HUP/ERR on a stream closes it; SESSION_CLOSED, or HUP/ERR on the ctl fd, ends the guest.
 * Like SPEAR's, it keeps EPOLLOUT in the interest set of every stream, so while a stream is open
 * spear_epoll_wait returns at once and the loop spins; the host stays responsive and its time
 * limit holds (tests/families/user_stream/echo_test.ts).
 * Run: deno task spear run --config CONFIG --serve 127.0.0.1:8090 guests/build/user_stream_echo.wasm
 */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#define MAX_STREAMS 16

typedef struct {
    int used;
    uint32_t stream_id;
    int32_t fd;
    uint8_t *pending; /* one frame waiting for EPOLLOUT, or NULL */
    uint32_t pending_len;
} slot_t;

static slot_t slots[MAX_STREAMS];

static slot_t *slot_by_fd(int32_t fd) {
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (slots[i].used && slots[i].fd == fd) return &slots[i];
    }
    return NULL;
}

static slot_t *slot_by_stream(uint32_t stream_id) {
    for (int i = 0; i < MAX_STREAMS; i++) {
        if (slots[i].used && slots[i].stream_id == stream_id) return &slots[i];
    }
    return NULL;
}

static void close_slot(slot_t *s) {
    sp_user_stream_close(s->fd);
    free(s->pending);
    memset(s, 0, sizeof *s);
}

/* Writes a frame back; on -EAGAIN keeps it as the slot's one pending frame (if none is). */
static void echo(slot_t *s, uint8_t *frame, uint32_t len) {
    int32_t rc = sp_user_stream_write(s->fd, (int32_t)(uintptr_t)frame, (int32_t)len);
    if (rc == -SPEAR_EAGAIN) {
        if (s->pending == NULL) {
            s->pending = frame;
            s->pending_len = len;
            return;
        }
    } else if (rc < 0) {
        printf("user_stream_write failed: %d\n", rc);
    }
    free(frame);
}

static void retry_pending(slot_t *s) {
    if (s->pending == NULL) return;
    int32_t rc = sp_user_stream_write(s->fd, (int32_t)(uintptr_t)s->pending, (int32_t)s->pending_len);
    if (rc == -SPEAR_EAGAIN) return;
    if (rc < 0) printf("user_stream_write failed: %d\n", rc);
    free(s->pending);
    s->pending = NULL;
    s->pending_len = 0;
}

static void open_stream(int32_t ep, uint32_t stream_id) {
    if (slot_by_stream(stream_id) != NULL) return;
    slot_t *s = NULL;
    for (int i = 0; i < MAX_STREAMS && s == NULL; i++) {
        if (!slots[i].used) s = &slots[i];
    }
    if (s == NULL) {
        printf("no free slot for stream_id=%u\n", stream_id);
        return;
    }
    int32_t fd = sp_user_stream_open((int32_t)stream_id, SPEAR_USER_STREAM_DIR_BIDIRECTIONAL);
    if (fd < 0) {
        printf("user_stream_open failed: %d\n", fd);
        return;
    }
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, fd, SPEAR_EPOLLIN | SPEAR_EPOLLOUT | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    s->used = 1;
    s->stream_id = stream_id;
    s->fd = fd;
    printf("stream connected: stream_id=%u fd=%d\n", stream_id, fd);
}

/* Drains the ctl fd; returns 1 when the session closed. */
static int drain_ctl(int32_t ep, int32_t ctl) {
    for (;;) {
        sp_user_stream_ctl_event_t evt;
        int32_t rc = sp_user_stream_ctl_read_event(ctl, &evt);
        if (rc == -SPEAR_EAGAIN) return 0;
        if (rc < 0) {
            printf("user_stream_ctl_read failed: %d\n", rc);
            return 0;
        }
        if (evt.kind == SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED) {
            printf("session closed\n");
            return 1;
        }
        if (evt.kind == SPEAR_USER_STREAM_CTL_EVENT_STREAM_CONNECTED) open_stream(ep, evt.stream_id);
    }
}

int main(void) {
    int32_t ep = sp_epoll_create();
    int32_t ctl = sp_user_stream_ctl_open();
    if (ctl < 0) {
        printf("user_stream_ctl_open failed: %d\n", ctl);
        sp_epoll_close(ep);
        return 1;
    }
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, ctl, SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    printf("user_stream_echo started (waiting for user streams)\n");

    uint8_t records[512];
    int done = 0;
    while (!done) {
        uint32_t len = sizeof records;
        int32_t n = sp_epoll_wait(ep, (int32_t)(uintptr_t)records, (int32_t)(uintptr_t)&len, 2000);
        if (n < 0) {
            printf("spear_epoll_wait failed: %d\n", n);
            break;
        }
        if (n == 0) {
            for (int i = 0; i < MAX_STREAMS; i++) {
                if (slots[i].used) retry_pending(&slots[i]);
            }
            continue;
        }
        for (int32_t i = 0; i < n && !done; i++) {
            int32_t fd, events;
            memcpy(&fd, records + i * 8, 4);
            memcpy(&events, records + i * 8 + 4, 4);
            if (fd == ctl) {
                if (events & SPEAR_EPOLLHUP) {
                    printf("ctl hup\n");
                    done = 1;
                } else if (events & SPEAR_EPOLLERR) {
                    printf("ctl err\n");
                    done = 1;
                } else if (events & SPEAR_EPOLLIN) {
                    done = drain_ctl(ep, ctl);
                }
                continue;
            }
            slot_t *s = slot_by_fd(fd);
            if (s == NULL) continue;
            if (events & SPEAR_EPOLLHUP) {
                printf("stream hup: stream_id=%u fd=%d\n", s->stream_id, fd);
                close_slot(s);
                continue;
            }
            if (events & SPEAR_EPOLLERR) {
                printf("stream err: stream_id=%u fd=%d\n", s->stream_id, fd);
                close_slot(s);
                continue;
            }
            if (events & SPEAR_EPOLLOUT) retry_pending(s);
            if (events & SPEAR_EPOLLIN) {
                uint32_t frame_len = 0;
                uint8_t *frame = sp_user_stream_read_alloc(fd, &frame_len);
                if (frame != NULL) echo(s, frame, frame_len);
            }
        }
    }

    for (int i = 0; i < MAX_STREAMS; i++) {
        if (slots[i].used) close_slot(&slots[i]);
    }
    sp_user_stream_close(ctl);
    sp_epoll_close(ep);
    return 0;
}
