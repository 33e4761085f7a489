/*
 * spear.h -- C guest SDK for spearhost.
 *
 * Source- and binary-compatible with the C SDK of SPEAR (lfedgeai/SPEAR, sdk/c/include/spear.h):
 * same wasm imports (module "spear"), same wasm signatures, same constant names and values, same
 * helper names and behaviour. A guest written against SPEAR's header builds against this one
 * unchanged. Written independently for spearhost.
 *
 * Conventions shared by every hostcall:
 *   - A result >= 0 is success (a new fd, a byte count, or 0); a result < 0 is -SPEAR_E<name>.
 *     Compare with the SPEAR_E* constants from spear_abi.h, never with <errno.h> (wasi-libc uses
 *     different numbers, e.g. its ENOSPC is 51, the host's is 28).
 *   - Pointers travel as int32_t offsets into linear memory: pass (int32_t)(uintptr_t)ptr.
 *   - Out buffers: *len_ptr holds the capacity on entry and the length written on return. If the
 *     buffer is too small the host stores the needed length and returns -SPEAR_ENOSPC; spearhost
 *     never drops a queued item because of that, so retrying with a larger buffer is safe.
 *
 * Sections marked "spearhost extension" are not in SPEAR's header; they use only imports and
 * commands that spearhost documents (e.g. SPEAR_MIC_CTL_LIST_DEVICES).
 *
 * Stdio: on wasm targets printf/fprintf/puts are redirected to the `log` import, as SPEAR does.
 * Define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG before including this file to keep real stdio.
 * fwrite/fputs/fputc/write are never redirected and reach WASI stdout/stderr.
 */
#ifndef SPEARHOST_SPEAR_H
#define SPEARHOST_SPEAR_H

#include <errno.h> /* kept for source compatibility; its values are NOT the host's */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spear_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Import plumbing                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Declares a function provided by the host under wasm import module "spear". */
#define SPEAR_IMPORT(name) __attribute__((import_module("spear"), import_name(name)))

#if defined(__GNUC__) || defined(__clang__)
#define SPEAR_PRINTF_LIKE(fmt_idx, first_arg) __attribute__((format(printf, fmt_idx, first_arg)))
#else
#define SPEAR_PRINTF_LIKE(fmt_idx, first_arg)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Constants that are not numbers of the host ABI table (those live in spear_abi.h)            */
/* ------------------------------------------------------------------------------------------ */

/* Success, and the legacy chat error names (all are plain -errno values). */
#define SPEAR_CCHAT_OK 0
#define SPEAR_OK 0 /* spearhost alias of SPEAR_CCHAT_OK */
#define SPEAR_CCHAT_ERR_INVALID_FD (-SPEAR_EBADF)
#define SPEAR_CCHAT_ERR_INVALID_PTR (-SPEAR_EFAULT)
#define SPEAR_CCHAT_ERR_BUFFER_TOO_SMALL (-SPEAR_ENOSPC)
#define SPEAR_CCHAT_ERR_INVALID_CMD (-SPEAR_EINVAL)
#define SPEAR_CCHAT_ERR_INTERNAL (-SPEAR_EIO)

/* Shorthand flag for sp_cchat_send: run the tool-call loop on the host. */
#define AUTO_TOOL_CALL SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL

/* Short aliases of the epoll ops. */
#define SPEAR_EP_CTL_ADD SPEAR_EPOLL_CTL_ADD
#define SPEAR_EP_CTL_MOD SPEAR_EPOLL_CTL_MOD
#define SPEAR_EP_CTL_DEL SPEAR_EPOLL_CTL_DEL

/* spearhost extension: the rtasr commands spelled with the full family name. */
#define SPEAR_RTASR_CTL_SET_PARAM SPEAR_RTA_CTL_SET_PARAM
#define SPEAR_RTASR_CTL_CONNECT SPEAR_RTA_CTL_CONNECT
#define SPEAR_RTASR_CTL_GET_STATUS SPEAR_RTA_CTL_GET_STATUS
#define SPEAR_RTASR_CTL_SEND_EVENT SPEAR_RTA_CTL_SEND_EVENT
#define SPEAR_RTASR_CTL_FLUSH SPEAR_RTA_CTL_FLUSH
#define SPEAR_RTASR_CTL_CLEAR SPEAR_RTA_CTL_CLEAR
#define SPEAR_RTASR_CTL_SET_AUTOFLUSH SPEAR_RTA_CTL_SET_AUTOFLUSH
#define SPEAR_RTASR_CTL_GET_AUTOFLUSH SPEAR_RTA_CTL_GET_AUTOFLUSH

/* user_stream_open directions. */
#define SPEAR_USER_STREAM_DIR_INBOUND 1       /* client -> guest */
#define SPEAR_USER_STREAM_DIR_OUTBOUND 2      /* guest -> client */
#define SPEAR_USER_STREAM_DIR_BIDIRECTIONAL 3 /* both */

/* Event kinds read from a user-stream control fd. */
#define SPEAR_USER_STREAM_CTL_EVENT_STREAM_CONNECTED 1
#define SPEAR_USER_STREAM_CTL_EVENT_SESSION_CLOSED 2

/* One control event as the host writes it: two little-endian u32 (8 bytes). */
typedef struct {
    uint32_t stream_id;
    uint32_t kind;
} sp_user_stream_ctl_event_t;

/* ------------------------------------------------------------------------------------------ */
/* Host imports (32): time, log, sleep, random                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Wall-clock milliseconds since the Unix epoch. */
SPEAR_IMPORT("time_now_ms") int64_t sp_time_now_ms(void);
/* Wall-clock seconds since the Unix epoch. (Rust-SDK import, declared here for C guests.) */
SPEAR_IMPORT("wall_time_s") int64_t sp_wall_time_s(void);
/* A random 64-bit value. (Rust-SDK import, declared here for C guests.) */
SPEAR_IMPORT("random_i64") int64_t sp_random_i64(void);
/* Blocks the guest for `ms` milliseconds. (Rust-SDK import, declared here for C guests.) */
SPEAR_IMPORT("sleep_ms") void sp_sleep_ms(int32_t ms);
/* Appends one message (0..SPEAR_LOG_MAX_BYTES bytes) at an SP_LOG_* level. Returns 0. */
SPEAR_IMPORT("log") int32_t sp_log(int32_t level, int32_t msg_ptr, int32_t msg_len);

/* ------------------------------------------------------------------------------------------ */
/* Host imports: chat completion                                                                */
/* ------------------------------------------------------------------------------------------ */

SPEAR_IMPORT("cchat_create") int32_t sp_cchat_create(void);
SPEAR_IMPORT("cchat_write_msg")
int32_t sp_cchat_write_msg(int32_t fd, int32_t role_ptr, int32_t role_len, int32_t content_ptr,
                           int32_t content_len);
/* fn_offset is the tool function's index in the exported function table. */
SPEAR_IMPORT("cchat_write_fn")
int32_t sp_cchat_write_fn(int32_t fd, int32_t fn_offset, int32_t fn_ptr, int32_t fn_len);
SPEAR_IMPORT("cchat_ctl")
int32_t sp_cchat_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
/* Returns a response fd (>= 0) or -errno. */
SPEAR_IMPORT("cchat_send") int32_t sp_cchat_send(int32_t fd, int32_t flags);
SPEAR_IMPORT("cchat_recv")
int32_t sp_cchat_recv(int32_t response_fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("cchat_close") int32_t sp_cchat_close(int32_t fd);

/* ------------------------------------------------------------------------------------------ */
/* Host imports: realtime speech recognition                                                    */
/* ------------------------------------------------------------------------------------------ */

SPEAR_IMPORT("rtasr_create") int32_t sp_rtasr_create(void);
SPEAR_IMPORT("rtasr_ctl")
int32_t sp_rtasr_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
SPEAR_IMPORT("rtasr_write") int32_t sp_rtasr_write(int32_t fd, int32_t buf_ptr, int32_t buf_len);
SPEAR_IMPORT("rtasr_read") int32_t sp_rtasr_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("rtasr_close") int32_t sp_rtasr_close(int32_t fd);

/* ------------------------------------------------------------------------------------------ */
/* Host imports: microphone                                                                     */
/* ------------------------------------------------------------------------------------------ */

SPEAR_IMPORT("mic_create") int32_t sp_mic_create(void);
SPEAR_IMPORT("mic_ctl")
int32_t sp_mic_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);
SPEAR_IMPORT("mic_read") int32_t sp_mic_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("mic_close") int32_t sp_mic_close(int32_t fd);

/* ------------------------------------------------------------------------------------------ */
/* Host imports: user streams (SSF frames to/from a connected client)                           */
/* ------------------------------------------------------------------------------------------ */

SPEAR_IMPORT("user_stream_open") int32_t sp_user_stream_open(int32_t stream_id, int32_t direction);
SPEAR_IMPORT("user_stream_read")
int32_t sp_user_stream_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
/* Writes one whole SSF frame; returns 0 on success (not a byte count). */
SPEAR_IMPORT("user_stream_write")
int32_t sp_user_stream_write(int32_t fd, int32_t buf_ptr, int32_t buf_len);
/* Closes data fds and control fds alike. */
SPEAR_IMPORT("user_stream_close") int32_t sp_user_stream_close(int32_t fd);
SPEAR_IMPORT("user_stream_ctl_open") int32_t sp_user_stream_ctl_open(void);
SPEAR_IMPORT("user_stream_ctl_read")
int32_t sp_user_stream_ctl_read(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);

/* ------------------------------------------------------------------------------------------ */
/* Host imports: epoll and generic fd control                                                   */
/* ------------------------------------------------------------------------------------------ */

SPEAR_IMPORT("spear_epoll_create") int32_t sp_epoll_create(void);
SPEAR_IMPORT("spear_epoll_ctl")
int32_t sp_epoll_ctl(int32_t epfd, int32_t op, int32_t fd, int32_t events);
/* Fills out_ptr with 8-byte {i32 fd, i32 events} records; returns how many. timeout_ms < 0 waits
 * forever, 0 polls. */
SPEAR_IMPORT("spear_epoll_wait")
int32_t sp_epoll_wait(int32_t epfd, int32_t out_ptr, int32_t out_len_ptr, int32_t timeout_ms);
SPEAR_IMPORT("spear_epoll_close") int32_t sp_epoll_close(int32_t epfd);
SPEAR_IMPORT("spear_fd_ctl")
int32_t sp_fd_ctl(int32_t fd, int32_t cmd, int32_t arg_ptr, int32_t arg_len_ptr);

static inline int32_t sp_ep_create(void) { return sp_epoll_create(); }
static inline int32_t sp_ep_ctl(int32_t epfd, int32_t op, int32_t fd, int32_t events) {
    return sp_epoll_ctl(epfd, op, fd, events);
}
static inline int32_t sp_ep_wait(int32_t epfd, int32_t out_ptr, int32_t out_len_ptr, int32_t timeout_ms) {
    return sp_epoll_wait(epfd, out_ptr, out_len_ptr, timeout_ms);
}
static inline int32_t sp_ep_close(int32_t epfd) { return sp_epoll_close(epfd); }

/* ------------------------------------------------------------------------------------------ */
/* Host imports: sockets (SPEC.md section 8; spearhost extension, not in SPEAR's header)         */
/* ------------------------------------------------------------------------------------------ */
/*
 * TCP and UDP sockets as fds. Addresses are UTF-8 text "host:port" or "[v6]:port" (a name is
 * resolved by the host); addresses the host writes back are numeric ("127.0.0.1:8080").
 * Blocking is POSIX's: connect/accept/send/recv/recvfrom wait until done, SPEAR_SO_RCVTIMEO_MS /
 * SPEAR_SO_SNDTIMEO_MS (then -SPEAR_EAGAIN) or the guest's time limit; with O_NONBLOCK
 * (sp_fd_set_nonblock) connect is -SPEAR_EINPROGRESS then EPOLLOUT (or EPOLLERR and
 * SPEAR_SO_ERROR), accept/recv are -SPEAR_EAGAIN and send may take fewer bytes.
 */

/* Returns a socket fd. domain SPEAR_AF_INET / SPEAR_AF_INET6, type SPEAR_SOCK_STREAM / _DGRAM. */
SPEAR_IMPORT("sock_create") int32_t sp_sock_create(int32_t domain, int32_t type);
/* 0, or -SPEAR_EINPROGRESS with O_NONBLOCK. UDP: sets the peer (addr_len 0 disconnects). */
SPEAR_IMPORT("sock_connect") int32_t sp_sock_connect(int32_t fd, int32_t addr_ptr, int32_t addr_len);
SPEAR_IMPORT("sock_bind") int32_t sp_sock_bind(int32_t fd, int32_t addr_ptr, int32_t addr_len);
/* Binds to an ephemeral port of the wildcard first when unbound, as Linux. */
SPEAR_IMPORT("sock_listen") int32_t sp_sock_listen(int32_t fd, int32_t backlog);
/* Returns the new fd; addr_out_ptr 0 = the peer address is not wanted. */
SPEAR_IMPORT("sock_accept")
int32_t sp_sock_accept(int32_t fd, int32_t addr_out_ptr, int32_t addr_len_ptr);
/* Returns the bytes taken (a blocking socket takes them all unless SNDTIMEO passes). */
SPEAR_IMPORT("sock_send") int32_t sp_sock_send(int32_t fd, int32_t buf_ptr, int32_t len);
/* Returns the bytes read into out (capacity in *out_len_ptr), 0 at end of stream. */
SPEAR_IMPORT("sock_recv") int32_t sp_sock_recv(int32_t fd, int32_t out_ptr, int32_t out_len_ptr);
/* One whole datagram (<= SPEAR_SOCK_MAX_DATAGRAM bytes); returns len. */
SPEAR_IMPORT("sock_sendto")
int32_t sp_sock_sendto(int32_t fd, int32_t buf_ptr, int32_t len, int32_t addr_ptr, int32_t addr_len);
/* One datagram; too small a buffer is -SPEAR_ENOSPC with the needed length, and it stays queued. */
SPEAR_IMPORT("sock_recvfrom")
int32_t sp_sock_recvfrom(int32_t fd, int32_t out_ptr, int32_t out_len_ptr, int32_t addr_out_ptr,
                         int32_t addr_len_ptr);
/* which SPEAR_SOCK_ADDR_LOCAL / _PEER; returns the text length. */
SPEAR_IMPORT("sock_getaddr")
int32_t sp_sock_getaddr(int32_t fd, int32_t which, int32_t out_ptr, int32_t out_len_ptr);
SPEAR_IMPORT("sock_setopt") int32_t sp_sock_setopt(int32_t fd, int32_t opt, int32_t value);
/* The option's value; SPEAR_SO_ERROR returns the pending error as a positive errno and clears it. */
SPEAR_IMPORT("sock_getopt") int32_t sp_sock_getopt(int32_t fd, int32_t opt);
/* how SPEAR_SHUT_RD / _WR / _RDWR. */
SPEAR_IMPORT("sock_shutdown") int32_t sp_sock_shutdown(int32_t fd, int32_t how);
SPEAR_IMPORT("sock_close") int32_t sp_sock_close(int32_t fd);

/* Convenience: addresses as C strings. */
static inline int32_t sp_sock_connect_str(int32_t fd, const char *addr) {
    return sp_sock_connect(fd, (int32_t)(uintptr_t)addr, (int32_t)strlen(addr));
}
static inline int32_t sp_sock_bind_str(int32_t fd, const char *addr) {
    return sp_sock_bind(fd, (int32_t)(uintptr_t)addr, (int32_t)strlen(addr));
}
static inline int32_t sp_sock_send_buf(int32_t fd, const void *buf, uint32_t len) {
    return sp_sock_send(fd, (int32_t)(uintptr_t)buf, (int32_t)len);
}
/* Reads up to cap bytes; returns the count, 0 at end of stream, or -errno. */
static inline int32_t sp_sock_recv_buf(int32_t fd, void *buf, uint32_t cap) {
    uint32_t len = cap;
    return sp_sock_recv(fd, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len);
}
static inline int32_t sp_sock_sendto_str(int32_t fd, const void *buf, uint32_t len, const char *addr) {
    return sp_sock_sendto(fd, (int32_t)(uintptr_t)buf, (int32_t)len, (int32_t)(uintptr_t)addr,
                          (int32_t)strlen(addr));
}
/* Receives one datagram into buf (cap bytes) and its source as a C string into from (from_cap
 * bytes, NUL included; from may be NULL). Returns the datagram length or -errno. */
static inline int32_t sp_sock_recvfrom_buf(int32_t fd, void *buf, uint32_t cap, char *from, uint32_t from_cap) {
    uint32_t len = cap;
    uint32_t from_len = from_cap > 0 ? from_cap - 1 : 0;
    int32_t rc = sp_sock_recvfrom(fd, (int32_t)(uintptr_t)buf, (int32_t)(uintptr_t)&len,
                                  (int32_t)(uintptr_t)from, (int32_t)(uintptr_t)&from_len);
    if (rc >= 0 && from != NULL && from_cap > 0) {
        from[from_len < from_cap ? from_len : from_cap - 1] = 0;
    }
    return rc;
}
/* Writes the local or peer address as a C string into out (cap bytes, NUL included). */
static inline int32_t sp_sock_getaddr_str(int32_t fd, int32_t which, char *out, uint32_t cap) {
    if (out == NULL || cap == 0) {
        return -SPEAR_EINVAL;
    }
    uint32_t len = cap - 1;
    int32_t rc = sp_sock_getaddr(fd, which, (int32_t)(uintptr_t)out, (int32_t)(uintptr_t)&len);
    out[rc >= 0 ? (uint32_t)rc : 0] = 0;
    return rc;
}
/* Sends all len bytes (loops over partial sends); returns len or the first -errno. */
static inline int32_t sp_sock_send_all(int32_t fd, const void *buf, uint32_t len) {
    const uint8_t *p = (const uint8_t *)buf;
    uint32_t done = 0;
    while (done < len) {
        int32_t n = sp_sock_send(fd, (int32_t)(uintptr_t)(p + done), (int32_t)(len - done));
        if (n < 0) {
            return n;
        }
        done += (uint32_t)n;
    }
    return (int32_t)len;
}

/* ------------------------------------------------------------------------------------------ */
/* Internal: pointer casts and the "grow and retry" reader behind every *_alloc helper         */
/* ------------------------------------------------------------------------------------------ */

#define SP__PTR(p) ((int32_t)(uintptr_t)(p))

/* Which hostcall sp__fetch_alloc performs. */
enum {
    SP__FETCH_CCHAT_RECV = 1,
    SP__FETCH_CCHAT_CTL,
    SP__FETCH_RTASR_READ,
    SP__FETCH_RTASR_CTL,
    SP__FETCH_MIC_READ,
    SP__FETCH_MIC_CTL,
    SP__FETCH_USER_STREAM_READ,
    SP__FETCH_FD_CTL,
};

static inline int32_t sp__fetch_once(int which, int32_t fd, int32_t cmd, void *buf, uint32_t *len) {
    switch (which) {
    case SP__FETCH_CCHAT_RECV: return sp_cchat_recv(fd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_CCHAT_CTL: return sp_cchat_ctl(fd, cmd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_RTASR_READ: return sp_rtasr_read(fd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_RTASR_CTL: return sp_rtasr_ctl(fd, cmd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_MIC_READ: return sp_mic_read(fd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_MIC_CTL: return sp_mic_ctl(fd, cmd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_USER_STREAM_READ: return sp_user_stream_read(fd, SP__PTR(buf), SP__PTR(len));
    case SP__FETCH_FD_CTL: return sp_fd_ctl(fd, cmd, SP__PTR(buf), SP__PTR(len));
    default: return -SPEAR_EINVAL;
    }
}

/*
 * Reads one payload into a malloc'd buffer, starting with `first_cap` bytes and growing to the
 * length the host asks for on -SPEAR_ENOSPC (three attempts in all, as SPEAR does). The buffer
 * always has one spare byte, set to 0, so text payloads can be used as C strings. On success
 * stores the payload length in *out_len and returns the buffer (free() it); on any failure
 * returns NULL (*out_len untouched).
 */
static inline uint8_t *sp__fetch_alloc(int which, int32_t fd, int32_t cmd, uint32_t first_cap,
                                       uint32_t *out_len) {
    uint32_t cap = first_cap;
    uint8_t *buf = (uint8_t *)malloc((size_t)cap + 1);
    for (int attempt = 0; buf != NULL && attempt < 3; attempt++) {
        uint32_t len = cap;
        int32_t rc = sp__fetch_once(which, fd, cmd, buf, &len);
        if (rc >= 0) {
            if (len > cap) {
                len = cap;
            }
            buf[len] = 0;
            if (out_len) {
                *out_len = len;
            }
            return buf;
        }
        if (rc != -SPEAR_ENOSPC || len == UINT32_MAX) {
            break;
        }
        cap = len;
        uint8_t *bigger = (uint8_t *)realloc(buf, (size_t)cap + 1);
        if (bigger == NULL) {
            break;
        }
        buf = bigger;
    }
    free(buf);
    return NULL;
}

/* Runs a ctl command whose input is a JSON (or empty) argument and whose output is ignored. */
static inline int32_t sp__ctl_in(int which, int32_t fd, int32_t cmd, const void *arg, uint32_t arg_len) {
    uint32_t len = arg_len;
    switch (which) {
    case SP__FETCH_CCHAT_CTL: return sp_cchat_ctl(fd, cmd, SP__PTR(arg), SP__PTR(&len));
    case SP__FETCH_RTASR_CTL: return sp_rtasr_ctl(fd, cmd, SP__PTR(arg), SP__PTR(&len));
    case SP__FETCH_MIC_CTL: return sp_mic_ctl(fd, cmd, SP__PTR(arg), SP__PTR(&len));
    case SP__FETCH_FD_CTL: return sp_fd_ctl(fd, cmd, SP__PTR(arg), SP__PTR(&len));
    default: return -SPEAR_EINVAL;
    }
}

/* Formats {"key":"<key>","value":<value>} (string value quoted when `quote`) and SET_PARAMs it. */
static inline int32_t sp__set_param_kv(int which, int32_t fd, int32_t cmd, const char *key, const char *value,
                                       int quote) {
    char json[512];
    int n = quote ? snprintf(json, sizeof json, "{\"key\":\"%s\",\"value\":\"%s\"}", key, value)
                  : snprintf(json, sizeof json, "{\"key\":\"%s\",\"value\":%s}", key, value);
    if (n <= 0 || (size_t)n >= sizeof json) {
        return SPEAR_CCHAT_ERR_INTERNAL;
    }
    return sp__ctl_in(which, fd, cmd, json, (uint32_t)n);
}

static inline int32_t sp__set_param_u32(int which, int32_t fd, int32_t cmd, const char *key, uint32_t value) {
    char num[16];
    snprintf(num, sizeof num, "%u", (unsigned)value);
    return sp__set_param_kv(which, fd, cmd, key, num, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Chat completion helpers                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Appends a message given as two C strings (role, content). */
static inline int32_t sp_cchat_write_msg_str(int32_t fd, const char *role, const char *content) {
    return sp_cchat_write_msg(fd, SP__PTR(role), (int32_t)strlen(role), SP__PTR(content),
                              (int32_t)strlen(content));
}

/* Registers a tool: fn_offset = table index of the callback, fn_json = its JSON description. */
static inline int32_t sp_cchat_write_fn_str(int32_t fd, int32_t fn_offset, const char *fn_json) {
    return sp_cchat_write_fn(fd, fn_offset, SP__PTR(fn_json), (int32_t)strlen(fn_json));
}

/* SET_PARAM with a complete JSON object such as {"key":"model","value":"gpt-4o-mini"}. */
static inline int32_t sp_cchat_set_param_json(int32_t fd, const char *json, uint32_t json_len) {
    return sp__ctl_in(SP__FETCH_CCHAT_CTL, fd, SPEAR_CCHAT_CTL_SET_PARAM, json, json_len);
}

/* SET_PARAM key = "value" (no JSON escaping is done; keep both strings plain). */
static inline int32_t sp_cchat_set_param_string(int32_t fd, const char *key, const char *value) {
    return sp__set_param_kv(SP__FETCH_CCHAT_CTL, fd, SPEAR_CCHAT_CTL_SET_PARAM, key, value, 1);
}

/* SET_PARAM key = unsigned number. */
static inline int32_t sp_cchat_set_param_u32(int32_t fd, const char *key, uint32_t value) {
    return sp__set_param_u32(SP__FETCH_CCHAT_CTL, fd, SPEAR_CCHAT_CTL_SET_PARAM, key, value);
}

/* Reads a response fd's JSON into a NUL-terminated malloc'd buffer (64 KiB first try). */
static inline uint8_t *sp_cchat_recv_alloc(int32_t resp_fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_CCHAT_RECV, resp_fd, 0, 64u * 1024u, out_len);
}

/* spearhost extension: GET_METRICS of a response fd as a NUL-terminated malloc'd JSON buffer. */
static inline uint8_t *sp_cchat_get_metrics_alloc(int32_t resp_fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_CCHAT_CTL, resp_fd, SPEAR_CCHAT_CTL_GET_METRICS, 4u * 1024u, out_len);
}

/* ------------------------------------------------------------------------------------------ */
/* Realtime ASR helpers                                                                         */
/* ------------------------------------------------------------------------------------------ */

static inline int32_t sp_rtasr_set_param_json(int32_t fd, const char *json, uint32_t json_len) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_SET_PARAM, json, json_len);
}

static inline int32_t sp_rtasr_set_param_string(int32_t fd, const char *key, const char *value) {
    return sp__set_param_kv(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_SET_PARAM, key, value, 1);
}

static inline int32_t sp_rtasr_set_param_u32(int32_t fd, const char *key, uint32_t value) {
    return sp__set_param_u32(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_SET_PARAM, key, value);
}

static inline int32_t sp_rtasr_connect(int32_t fd) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_CONNECT, NULL, 0);
}

static inline int32_t sp_rtasr_flush(int32_t fd) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_FLUSH, NULL, 0);
}

static inline int32_t sp_rtasr_set_autoflush_json(int32_t fd, const char *json, uint32_t json_len) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_SET_AUTOFLUSH, json, json_len);
}

/* Reads one recognition event (JSON text) into a NUL-terminated malloc'd buffer. */
static inline uint8_t *sp_rtasr_read_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_RTASR_READ, fd, 0, 64u * 1024u, out_len);
}

/* spearhost extension: SEND_EVENT / CLEAR / GET_STATUS / GET_AUTOFLUSH wrappers. */
static inline int32_t sp_rtasr_send_event_json(int32_t fd, const char *json, uint32_t json_len) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_SEND_EVENT, json, json_len);
}

static inline int32_t sp_rtasr_clear(int32_t fd) {
    return sp__ctl_in(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_CLEAR, NULL, 0);
}

static inline uint8_t *sp_rtasr_get_status_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_GET_STATUS, 8u * 1024u, out_len);
}

static inline uint8_t *sp_rtasr_get_autoflush_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_RTASR_CTL, fd, SPEAR_RTA_CTL_GET_AUTOFLUSH, 4u * 1024u, out_len);
}

/* ------------------------------------------------------------------------------------------ */
/* Microphone helpers                                                                           */
/* ------------------------------------------------------------------------------------------ */

static inline int32_t sp_mic_set_param_json(int32_t fd, const char *json, uint32_t json_len) {
    return sp__ctl_in(SP__FETCH_MIC_CTL, fd, SPEAR_MIC_CTL_SET_PARAM, json, json_len);
}

/* GET_STATUS as a NUL-terminated malloc'd JSON buffer (8 KiB first try). Unlike SPEAR's copy,
 * the retry compares with -SPEAR_ENOSPC, so it really does grow the buffer. */
static inline uint8_t *sp_mic_get_status_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_MIC_CTL, fd, SPEAR_MIC_CTL_GET_STATUS, 8u * 1024u, out_len);
}

/* Reads one PCM frame into a malloc'd buffer (64 KiB first try; a spare 0 byte follows it). */
static inline uint8_t *sp_mic_read_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_MIC_READ, fd, 0, 64u * 1024u, out_len);
}

/* spearhost extension: LIST_DEVICES (JSON array of input devices) on any mic fd. */
static inline uint8_t *sp_mic_list_devices_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_MIC_CTL, fd, SPEAR_MIC_CTL_LIST_DEVICES, 16u * 1024u, out_len);
}

/* ------------------------------------------------------------------------------------------ */
/* User stream helpers                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Reads one whole SSF frame into a malloc'd buffer (64 KiB first try). */
static inline uint8_t *sp_user_stream_read_alloc(int32_t fd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_USER_STREAM_READ, fd, 0, 64u * 1024u, out_len);
}

/* Reads one control event; returns the hostcall result (-SPEAR_EAGAIN when none is pending). */
static inline int32_t sp_user_stream_ctl_read_event(int32_t fd, sp_user_stream_ctl_event_t *out_evt) {
    if (out_evt == NULL) {
        return SPEAR_CCHAT_ERR_INVALID_PTR;
    }
    uint32_t len = (uint32_t)sizeof *out_evt;
    return sp_user_stream_ctl_read(fd, SP__PTR(out_evt), SP__PTR(&len));
}

/* ------------------------------------------------------------------------------------------ */
/* spearhost extension: fd control and epoll conveniences                                      */
/* ------------------------------------------------------------------------------------------ */

/* One spear_epoll_wait record; layout matches the host's 8-byte little-endian record. */
typedef struct {
    int32_t fd;
    int32_t events;
} sp_epoll_event_t;

/* Waits for up to max_events records; returns their number or -errno. */
static inline int32_t sp_ep_wait_events(int32_t epfd, sp_epoll_event_t *events, uint32_t max_events,
                                        int32_t timeout_ms) {
    uint32_t len = max_events * (uint32_t)sizeof(sp_epoll_event_t);
    return sp_epoll_wait(epfd, SP__PTR(events), SP__PTR(&len), timeout_ms);
}

/* GET_FLAGS / GET_KIND / GET_STATUS / GET_METRICS as a NUL-terminated malloc'd JSON buffer. */
static inline uint8_t *sp_fd_ctl_get_alloc(int32_t fd, int32_t cmd, uint32_t *out_len) {
    return sp__fetch_alloc(SP__FETCH_FD_CTL, fd, cmd, 4u * 1024u, out_len);
}

/* Sets (on != 0) or clears O_NONBLOCK on fd. */
static inline int32_t sp_fd_set_nonblock(int32_t fd, int on) {
    static const char set_json[] = "{\"set\":[\"O_NONBLOCK\"]}";
    static const char clear_json[] = "{\"clear\":[\"O_NONBLOCK\"]}";
    const char *json = on ? set_json : clear_json;
    return sp__ctl_in(SP__FETCH_FD_CTL, fd, SPEAR_FD_CTL_SET_FLAGS, json, (uint32_t)strlen(json));
}

/* ------------------------------------------------------------------------------------------ */
/* SSF (Spear Stream Frame) v1: 32-byte little-endian header, then meta bytes, then data bytes  */
/* (SPEAR ships these in spear_ssf.h, which its spear.h includes.)                              */
/* ------------------------------------------------------------------------------------------ */

#define SPEAR_SSF_V1_MAGIC_SPST 0x54535053u /* "SPST" read as a little-endian u32 */
#define SPEAR_SSF_V1_VERSION 1u
#define SPEAR_SSF_V1_HEADER_LEN 32u

#define SPEAR_SSF_MSG_TYPE_CTRL 1   /* control (open, keep-alive, ...) */
#define SPEAR_SSF_MSG_TYPE_DATA 2   /* payload (text or binary) */
#define SPEAR_SSF_MSG_TYPE_COMMIT 3 /* end of one user input segment */

typedef struct {
    uint16_t msg_type;
    uint16_t flags;
    uint32_t stream_id;
    uint64_t seq;
    uint32_t meta_len;
    uint32_t data_len;
    uint16_t header_len;
} sp_ssf_v1_header_t;

typedef struct {
    sp_ssf_v1_header_t hdr;
    const uint8_t *meta; /* points into the frame */
    const uint8_t *data; /* points into the frame */
} sp_ssf_v1_frame_view_t;

static inline void sp_ssf_v1_write_u16_le(uint8_t *out, size_t off, uint16_t v) {
    for (size_t i = 0; i < 2; i++) {
        out[off + i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void sp_ssf_v1_write_u32_le(uint8_t *out, size_t off, uint32_t v) {
    for (size_t i = 0; i < 4; i++) {
        out[off + i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void sp_ssf_v1_write_u64_le(uint8_t *out, size_t off, uint64_t v) {
    for (size_t i = 0; i < 8; i++) {
        out[off + i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint64_t sp__ssf_read_le(const uint8_t *in, size_t off, size_t width) {
    uint64_t v = 0;
    for (size_t i = width; i > 0; i--) {
        v = (v << 8) | in[off + i - 1];
    }
    return v;
}

/* Writes a v1 header into out[0..32). */
static inline void sp_ssf_v1_build_header(uint8_t *out, uint32_t stream_id, uint16_t msg_type, uint16_t flags,
                                          uint64_t seq, uint32_t meta_len, uint32_t data_len) {
    sp_ssf_v1_write_u32_le(out, 0, SPEAR_SSF_V1_MAGIC_SPST);
    sp_ssf_v1_write_u16_le(out, 4, (uint16_t)SPEAR_SSF_V1_VERSION);
    sp_ssf_v1_write_u16_le(out, 6, (uint16_t)SPEAR_SSF_V1_HEADER_LEN);
    sp_ssf_v1_write_u16_le(out, 8, msg_type);
    sp_ssf_v1_write_u16_le(out, 10, flags);
    sp_ssf_v1_write_u32_le(out, 12, stream_id);
    sp_ssf_v1_write_u64_le(out, 16, seq);
    sp_ssf_v1_write_u32_le(out, 24, meta_len);
    sp_ssf_v1_write_u32_le(out, 28, data_len);
}

/* Validates and decodes a v1 header; 1 on success, 0 if the frame is malformed. */
static inline int sp_ssf_v1_parse_header(const uint8_t *frame, uint32_t frame_len, sp_ssf_v1_header_t *out) {
    if (frame == NULL || out == NULL || frame_len < SPEAR_SSF_V1_HEADER_LEN) {
        return 0;
    }
    if ((uint32_t)sp__ssf_read_le(frame, 0, 4) != SPEAR_SSF_V1_MAGIC_SPST ||
        sp__ssf_read_le(frame, 4, 2) != SPEAR_SSF_V1_VERSION) {
        return 0;
    }
    sp_ssf_v1_header_t h;
    h.header_len = (uint16_t)sp__ssf_read_le(frame, 6, 2);
    h.msg_type = (uint16_t)sp__ssf_read_le(frame, 8, 2);
    h.flags = (uint16_t)sp__ssf_read_le(frame, 10, 2);
    h.stream_id = (uint32_t)sp__ssf_read_le(frame, 12, 4);
    h.seq = sp__ssf_read_le(frame, 16, 8);
    h.meta_len = (uint32_t)sp__ssf_read_le(frame, 24, 4);
    h.data_len = (uint32_t)sp__ssf_read_le(frame, 28, 4);
    if (h.header_len < SPEAR_SSF_V1_HEADER_LEN || frame_len < h.header_len) {
        return 0;
    }
    /* 64-bit sum: meta_len + data_len must not wrap around. */
    if ((uint64_t)h.meta_len + h.data_len != (uint64_t)(frame_len - h.header_len)) {
        return 0;
    }
    *out = h;
    return 1;
}

/* Splits a frame into header, meta and data views without copying; 1 on success, 0 otherwise. */
static inline int sp_ssf_v1_split(const uint8_t *frame, uint32_t frame_len, sp_ssf_v1_frame_view_t *out) {
    sp_ssf_v1_header_t h;
    if (out == NULL || !sp_ssf_v1_parse_header(frame, frame_len, &h)) {
        return 0;
    }
    out->hdr = h;
    out->meta = frame + h.header_len;
    out->data = out->meta + h.meta_len;
    return 1;
}

/* 1 if `needle` occurs in the meta bytes (a plain substring test, not a JSON parser). */
static inline int sp_ssf_meta_contains(const uint8_t *meta, uint32_t meta_len, const char *needle) {
    if (meta == NULL || needle == NULL) {
        return 0;
    }
    size_t n = strlen(needle);
    if (n == 0 || n > meta_len) {
        return 0;
    }
    for (size_t at = 0; at + n <= meta_len; at++) {
        if (memcmp(meta + at, needle, n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Logging                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Logs raw bytes; messages longer than SPEAR_LOG_MAX_BYTES are cut to that size. */
static inline int32_t sp_log_write(int32_t level, const void *msg, size_t msg_len) {
    if (msg == NULL && msg_len != 0) {
        return SPEAR_CCHAT_ERR_INVALID_PTR;
    }
    if (msg_len > (size_t)SPEAR_LOG_MAX_BYTES) {
        msg_len = (size_t)SPEAR_LOG_MAX_BYTES;
    }
    return sp_log(level, SP__PTR(msg), (int32_t)msg_len);
}

static inline int32_t sp_log_str(int32_t level, const char *msg) {
    if (msg == NULL) {
        return SPEAR_CCHAT_ERR_INVALID_PTR;
    }
    return sp_log_write(level, msg, strlen(msg));
}

/* Formats into a 1 KiB stack buffer (longer text is cut to 1023 bytes) and logs it.
 * Returns the number of bytes logged, or a negative value on error. */
static inline int sp__vlogf_short(int32_t level, const char *fmt, va_list ap) {
    char text[1024];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0) {
        return n;
    }
    size_t used = (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    int32_t rc = sp_log_write(level, text, used);
    return rc == 0 ? (int)used : rc;
}

/* printf-style log at any level; unlike the sp_<level>f helpers it is not limited to 1 KiB
 * (up to SPEAR_LOG_MAX_BYTES). Returns bytes logged or a negative value. */
static inline int sp_logf(int32_t level, const char *fmt, ...) SPEAR_PRINTF_LIKE(2, 3);
static inline int sp_logf(int32_t level, const char *fmt, ...) {
    if (fmt == NULL) {
        return SPEAR_CCHAT_ERR_INVALID_PTR;
    }
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return n;
    }
    if ((size_t)n < sizeof small) {
        int32_t rc = sp_log_write(level, small, (size_t)n);
        return rc == 0 ? n : rc;
    }
    size_t cap = (size_t)n < (size_t)SPEAR_LOG_MAX_BYTES ? (size_t)n + 1 : (size_t)SPEAR_LOG_MAX_BYTES + 1;
    char *big = (char *)malloc(cap);
    if (big == NULL) { /* out of memory: log the truncated text instead */
        int32_t rc = sp_log_write(level, small, sizeof small - 1);
        return rc == 0 ? (int)(sizeof small - 1) : rc;
    }
    va_start(ap, fmt);
    vsnprintf(big, cap, fmt, ap);
    va_end(ap);
    size_t used = strlen(big); /* vsnprintf wrote at most cap - 1 bytes plus a NUL */
    int32_t rc = sp_log_write(level, big, used);
    free(big);
    return rc == 0 ? (int)used : rc;
}

/* Defines sp_<name>f(fmt, ...) logging at `level` through the 1 KiB formatter. */
#define SP__DEFINE_LEVEL_LOGF(fn_name, level)                                   \
    static inline int fn_name(const char *fmt, ...) SPEAR_PRINTF_LIKE(1, 2);    \
    static inline int fn_name(const char *fmt, ...) {                           \
        va_list ap;                                                             \
        va_start(ap, fmt);                                                      \
        int r = sp__vlogf_short((level), fmt, ap);                              \
        va_end(ap);                                                             \
        return r;                                                               \
    }

SP__DEFINE_LEVEL_LOGF(sp_tracef, SP_LOG_TRACE)
SP__DEFINE_LEVEL_LOGF(sp_debugf, SP_LOG_DEBUG)
SP__DEFINE_LEVEL_LOGF(sp_infof, SP_LOG_INFO)
SP__DEFINE_LEVEL_LOGF(sp_warnf, SP_LOG_WARN)
SP__DEFINE_LEVEL_LOGF(sp_errorf, SP_LOG_ERROR)

/* fprintf replacement: stdout (or NULL) -> info, stderr -> error, any other stream -> debug. */
static inline int sp_fprintf(FILE *stream, const char *fmt, ...) SPEAR_PRINTF_LIKE(2, 3);
static inline int sp_fprintf(FILE *stream, const char *fmt, ...) {
    int32_t level = SP_LOG_DEBUG;
    if (stream == stderr) {
        level = SP_LOG_ERROR;
    } else if (stream == stdout || stream == NULL) {
        level = SP_LOG_INFO;
    }
    va_list ap;
    va_start(ap, fmt);
    int r = sp__vlogf_short(level, fmt, ap);
    va_end(ap);
    return r;
}

/* puts replacement: logs the string plus a newline at info level. */
static inline int sp_puts_log(const char *s) {
    if (s == NULL) {
        return SPEAR_CCHAT_ERR_INVALID_PTR;
    }
    return sp_infof("%s\n", s);
}

#ifdef __cplusplus
} /* extern "C" */
#endif

/* ------------------------------------------------------------------------------------------ */
/* printf / fprintf / puts -> spear.log on wasm (as SPEAR does)                                 */
/* ------------------------------------------------------------------------------------------ */

#if !defined(SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG) && !defined(SPEAR_REDIRECT_STDIO_TO_LOG) && \
    (defined(__wasm32__) || defined(__wasi__))
#define SPEAR_REDIRECT_STDIO_TO_LOG 1
#endif

#ifdef SPEAR_REDIRECT_STDIO_TO_LOG
#define printf(...) sp_infof(__VA_ARGS__)
#define fprintf(stream, ...) sp_fprintf((stream), __VA_ARGS__)
#define puts(s) sp_puts_log((s))
#endif

#endif /* SPEARHOST_SPEAR_H */
