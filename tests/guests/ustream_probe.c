/*
 * ustream_probe: the user-stream behaviours tests/families/user_stream/ checks, one mode each.
 * Logs `name=value` lines (printf goes to the `log` import, so the test sees them as they
 * happen); values are hostcall results (-errno on failure).
 *
 *   ustream_probe abi             the calls' checks, with an endpoint but no client
 *   ustream_probe late MS         sleeps MS, then opens its ctl fd; for every stream: reads each
 *                                 frame (first into 8 bytes: -ENOSPC), answers "ack:<data>"; ends
 *                                 at SESSION_CLOSED
 *   ustream_probe stall           opens stream 1 and never reads it; reports EPOLLERR, then ends
 *                                 at SESSION_CLOSED
 *   ustream_probe once            answers the first frame of stream 1, then exits with code 3
 */
#include "spear.h"

static void put(const char *name, long value) { printf("%s=%ld\n", name, value); }

static uint8_t frame_buf[300 * 1024];

/* Builds a frame for `stream_id` with `data` into frame_buf; returns its length. */
static uint32_t build(uint32_t stream_id, const void *data, uint32_t len) {
    sp_ssf_v1_build_header(frame_buf, stream_id, SPEAR_SSF_MSG_TYPE_DATA, 0, 1, 0, len);
    memcpy(frame_buf + SPEAR_SSF_V1_HEADER_LEN, data, len);
    return SPEAR_SSF_V1_HEADER_LEN + len;
}

static int32_t write_frame(int32_t fd, uint32_t len) {
    return sp_user_stream_write(fd, SP__PTR(frame_buf), (int32_t)len);
}

static void metrics(const char *name, int32_t fd) {
    uint32_t len = 0;
    uint8_t *json = sp__fetch_alloc(SP__FETCH_FD_CTL, fd, SPEAR_FD_CTL_GET_METRICS, 1024, &len);
    printf("%s=%.*s\n", name, (int)len, json ? (const char *)json : "");
    free(json);
}

static int abi(void) {
    put("open_dir0", sp_user_stream_open(1, 0));
    put("open_dir4", sp_user_stream_open(1, 4));
    put("open_negative", sp_user_stream_open(-1, 3));
    int32_t both = sp_user_stream_open(7, SPEAR_USER_STREAM_DIR_BIDIRECTIONAL);
    int32_t out = sp_user_stream_open(7, SPEAR_USER_STREAM_DIR_OUTBOUND);
    int32_t in = sp_user_stream_open(7, SPEAR_USER_STREAM_DIR_INBOUND);
    put("open_ok", both >= 1000 && out > both && in > out);
    uint32_t n = build(7, "hi", 2);
    put("write_before_client", write_frame(both, n));
    put("write_in_only", write_frame(in, n));
    put("write_bad_pointer", sp_user_stream_write(both, 0x7ffffff0, 64));
    put("write_short", write_frame(both, 10));
    put("write_negative_len", sp_user_stream_write(both, SP__PTR(frame_buf), -1));
    n = build(8, "hi", 2);
    put("write_other_stream", write_frame(both, n));
    n = build(7, "hi", 2);
    frame_buf[0] = 'X';
    put("write_bad_magic", write_frame(both, n));
    n = build(7, "hi", 2);
    put("write_bad_lengths", write_frame(both, n + 1));
    n = build(7, "hi", 2);
    put("write_unknown_fd", write_frame(99999, n));
    uint8_t out_buf[64];
    uint32_t cap = sizeof out_buf;
    put("read_out_only", sp_user_stream_read(out, SP__PTR(out_buf), SP__PTR(&cap)));
    put("read_empty", sp_user_stream_read(both, SP__PTR(out_buf), SP__PTR(&cap)));
    put("read_bad_len_ptr", sp_user_stream_read(both, SP__PTR(out_buf), 0x7ffffff0));
    int32_t ctl = sp_user_stream_ctl_open();
    put("ctl_open_ok", ctl > in);
    cap = sizeof out_buf;
    put("ctl_read_empty", sp_user_stream_ctl_read(ctl, SP__PTR(out_buf), SP__PTR(&cap)));
    put("read_on_ctl", sp_user_stream_read(ctl, SP__PTR(out_buf), SP__PTR(&cap)));
    put("ctl_read_on_stream", sp_user_stream_ctl_read(both, SP__PTR(out_buf), SP__PTR(&cap)));
    uint32_t kind_len = 0;
    uint8_t *kind = sp__fetch_alloc(SP__FETCH_FD_CTL, both, SPEAR_FD_CTL_GET_KIND, 64, &kind_len);
    printf("kind=%.*s\n", (int)kind_len, kind ? (const char *)kind : "");
    free(kind);
    metrics("metrics", both);
    metrics("ctl_metrics", ctl);
    put("close", sp_user_stream_close(both));
    put("close_again", sp_user_stream_close(both));
    put("write_closed", write_frame(both, n));
    put("close_ctl", sp_user_stream_close(ctl));
    put("close_epoll_kind_with_stream_close", sp_user_stream_close(sp_epoll_create()));
    return 0;
}

#define MAX_STREAMS 8
static int32_t stream_fds[MAX_STREAMS];
static uint32_t stream_ids[MAX_STREAMS];
static int streams;

static int index_of_fd(int32_t fd) {
    for (int i = 0; i < streams; i++) {
        if (stream_fds[i] == fd) return i;
    }
    return -1;
}

/* Reads one frame from stream i: first into 8 bytes (-ENOSPC, the frame stays), then whole. */
static void read_and_ack(int i) {
    uint8_t small[8];
    uint32_t cap = sizeof small;
    int32_t rc = sp_user_stream_read(stream_fds[i], SP__PTR(small), SP__PTR(&cap));
    if (rc == -SPEAR_EAGAIN) return;
    printf("small_read=%d needed=%u\n", rc, cap);
    static uint8_t in[300 * 1024];
    cap = sizeof in;
    rc = sp_user_stream_read(stream_fds[i], SP__PTR(in), SP__PTR(&cap));
    sp_ssf_v1_header_t h;
    if (rc < 0 || !sp_ssf_v1_parse_header(in, cap, &h)) {
        printf("read_failed=%d\n", rc);
        return;
    }
    const char *data = (const char *)in + h.header_len + h.meta_len;
    printf("frame=%u:%.*s\n", h.stream_id, (int)h.data_len, data);
    char ack[300];
    int n = snprintf(ack, sizeof ack, "ack:%.*s", (int)h.data_len, data);
    printf("write=%d\n", write_frame(stream_fds[i], build(stream_ids[i], ack, (uint32_t)n)));
}

static int once;

/* The event loop of `late`, `stall` and `once`: ends at SESSION_CLOSED (0) or a 20 s silence (1). */
static int serve(int32_t ep, int32_t ctl, int read_frames) {
    for (int session_closed = 0; !session_closed;) {
        sp_epoll_event_t events[16];
        int32_t n = sp_ep_wait_events(ep, events, 16, 20000);
        if (n <= 0) {
            put("wait", n);
            return 1;
        }
        for (int32_t e = 0; e < n; e++) {
            int32_t fd = events[e].fd;
            uint32_t bits = events[e].events;
            if (fd == ctl) {
                sp_user_stream_ctl_event_t evt;
                while (sp_user_stream_ctl_read_event(ctl, &evt) >= 0) {
                    printf("event=%u:%u\n", evt.stream_id, evt.kind);
                    /* The rest of this batch still runs: a stream's last EPOLLERR/EPOLLHUP. */
                    if (evt.kind == SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED) session_closed = 1;
                    int known = 0;
                    for (int i = 0; i < streams; i++) known |= stream_ids[i] == evt.stream_id;
                    if (known || streams == MAX_STREAMS) continue;
                    stream_ids[streams] = evt.stream_id;
                    stream_fds[streams] = sp_user_stream_open((int32_t)evt.stream_id, 3);
                    sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, stream_fds[streams], SPEAR_EPOLLIN);
                    streams++;
                }
                continue;
            }
            int i = index_of_fd(fd);
            if (i < 0) continue;
            if (bits & SPEAR_EPOLLERR) {
                printf("err=%u\n", stream_ids[i]);
                metrics("err_metrics", fd);
            }
            if (bits & SPEAR_EPOLLHUP) {
                printf("hup=%u\n", stream_ids[i]);
                n = build(stream_ids[i], "late", 4);
                put("write_after_hup", write_frame(fd, (uint32_t)n));
            }
            if ((bits & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) != 0) {
                sp_ep_ctl(ep, SPEAR_EPOLL_CTL_DEL, fd, 0);
                sp_user_stream_close(fd);
                stream_fds[i] = -1;
                continue;
            }
            if ((bits & SPEAR_EPOLLIN) && read_frames) {
                read_and_ack(i);
                if (once) return 3;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "abi") == 0) return abi();
    int32_t ep = sp_epoll_create();
    once = strcmp(mode, "once") == 0;
    if (strcmp(mode, "late") == 0 || once) {
        sp_sleep_ms(argc > 2 ? atoi(argv[2]) : 0);
        int32_t ctl = sp_user_stream_ctl_open();
        put("ctl_open", ctl >= 1000);
        sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, ctl, SPEAR_EPOLLIN);
        return serve(ep, ctl, 1);
    }
    if (strcmp(mode, "stall") == 0) {
        int32_t ctl = sp_user_stream_ctl_open();
        sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, ctl, SPEAR_EPOLLIN);
        stream_ids[0] = 1;
        stream_fds[0] = sp_user_stream_open(1, 3);
        streams = 1;
        sp_ep_ctl(ep, SPEAR_EPOLL_CTL_ADD, stream_fds[0], SPEAR_EPOLLERR);
        printf("ready=1\n");
        return serve(ep, ctl, 0);
    }
    printf("unknown mode %s\n", mode);
    return 2;
}
