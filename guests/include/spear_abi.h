/*
 * spear_abi.h -- GENERATED FILE, DO NOT EDIT.
 *
 * Generated from the family registry (families/<name>/family.ts `abi`) by scripts/gen_header.ts
 * (`deno task gen-header`). Change the numbers there and regenerate; a test fails when they
 * drift apart.
 * Include <spear.h>, which includes this file.
 *
 * These are SPEAR's fixed "virtual errno" and command numbers. Never compare hostcall
 * results with <errno.h> values: wasi-libc numbers errno differently (ENOSPC is 51 there).
 */
#ifndef SPEARHOST_SPEAR_ABI_H
#define SPEARHOST_SPEAR_ABI_H

/* log levels for the `log` import */
#define SP_LOG_TRACE 0
#define SP_LOG_DEBUG 1
#define SP_LOG_INFO  2
#define SP_LOG_WARN  3
#define SP_LOG_ERROR 4

/* sizes (spearhost additions) */
#define SPEAR_LOG_MAX_BYTES      16384
#define SPEAR_EPOLL_RECORD_BYTES 8

/* errno values (Linux numbering); hostcalls return them negated, e.g. -SPEAR_EAGAIN */
#define SPEAR_EPERM         1
#define SPEAR_ENOENT        2
#define SPEAR_EIO           5
#define SPEAR_EBADF         9
#define SPEAR_EAGAIN        11
#define SPEAR_ENOMEM        12
#define SPEAR_EACCES        13 /* not in SPEAR's C header */
#define SPEAR_EFAULT        14
#define SPEAR_EEXIST        17 /* not in SPEAR's C header */
#define SPEAR_EINVAL        22
#define SPEAR_EMFILE        24 /* not in SPEAR's C header */
#define SPEAR_ENOSPC        28
#define SPEAR_EPIPE         32
#define SPEAR_ENOSYS        38 /* not in SPEAR's C header */
#define SPEAR_EMSGSIZE      90 /* not in SPEAR's C header */
#define SPEAR_EAFNOSUPPORT  97 /* not in SPEAR's C header */
#define SPEAR_EADDRINUSE    98 /* not in SPEAR's C header */
#define SPEAR_EADDRNOTAVAIL 99 /* not in SPEAR's C header */
#define SPEAR_ECONNRESET    104
#define SPEAR_EISCONN       106 /* not in SPEAR's C header */
#define SPEAR_ENOTCONN      107
#define SPEAR_ETIMEDOUT     110
#define SPEAR_ECONNREFUSED  111 /* not in SPEAR's C header */
#define SPEAR_EHOSTUNREACH  113 /* not in SPEAR's C header */
#define SPEAR_EALREADY      114 /* not in SPEAR's C header */
#define SPEAR_EINPROGRESS   115 /* not in SPEAR's C header */

/* readiness bits for spear_epoll_ctl / spear_epoll_wait */
#define SPEAR_EPOLLIN  0x001
#define SPEAR_EPOLLOUT 0x004
#define SPEAR_EPOLLERR 0x008
#define SPEAR_EPOLLHUP 0x010

/* spear_epoll_ctl operations */
#define SPEAR_EPOLL_CTL_ADD 1
#define SPEAR_EPOLL_CTL_MOD 2
#define SPEAR_EPOLL_CTL_DEL 3

/* spear_fd_ctl commands */
#define SPEAR_FD_CTL_SET_FLAGS   1
#define SPEAR_FD_CTL_GET_FLAGS   2
#define SPEAR_FD_CTL_GET_KIND    3
#define SPEAR_FD_CTL_GET_STATUS  4
#define SPEAR_FD_CTL_GET_METRICS 5

/* fd flags (SET_FLAGS/GET_FLAGS name them in JSON, e.g. "O_NONBLOCK") */
#define SPEAR_O_NONBLOCK 0x1 /* spearhost name; SPEAR's C header has no macro for it */

/* cchat_ctl commands */
#define SPEAR_CCHAT_CTL_SET_PARAM   1
#define SPEAR_CCHAT_CTL_GET_METRICS 2

/* cchat_send flag bits */
#define SPEAR_CCHAT_SEND_FLAG_ENABLE_METRICS 0x1
#define SPEAR_CCHAT_SEND_FLAG_AUTO_TOOL_CALL 0x2

/* rtasr_ctl commands (SPEAR spells the prefix RTA) */
#define SPEAR_RTA_CTL_SET_PARAM     1
#define SPEAR_RTA_CTL_CONNECT       2
#define SPEAR_RTA_CTL_GET_STATUS    3
#define SPEAR_RTA_CTL_SEND_EVENT    4
#define SPEAR_RTA_CTL_FLUSH         5
#define SPEAR_RTA_CTL_CLEAR         6
#define SPEAR_RTA_CTL_SET_AUTOFLUSH 7
#define SPEAR_RTA_CTL_GET_AUTOFLUSH 8

/* mic_ctl commands */
#define SPEAR_MIC_CTL_SET_PARAM    1
#define SPEAR_MIC_CTL_GET_STATUS   2
#define SPEAR_MIC_CTL_LIST_DEVICES 3 /* spearhost extension */

/* sock_create address families */
#define SPEAR_AF_INET  2
#define SPEAR_AF_INET6 10

/* sock_create socket types */
#define SPEAR_SOCK_STREAM 1
#define SPEAR_SOCK_DGRAM  2

/* sock_setopt / sock_getopt options */
#define SPEAR_SO_RCVTIMEO_MS 1
#define SPEAR_SO_SNDTIMEO_MS 2
#define SPEAR_SO_REUSEADDR   3
#define SPEAR_SO_NODELAY     4
#define SPEAR_SO_ERROR       5
#define SPEAR_SO_RCVBUF      6
#define SPEAR_SO_SNDBUF      7
#define SPEAR_SO_KEEPALIVE   8

/* sock_shutdown directions */
#define SPEAR_SHUT_RD   0
#define SPEAR_SHUT_WR   1
#define SPEAR_SHUT_RDWR 2

/* sock_getaddr: which address */
#define SPEAR_SOCK_ADDR_LOCAL 0
#define SPEAR_SOCK_ADDR_PEER  1

/* socket limits and defaults */
#define SPEAR_SOCK_MAX_DATAGRAM   65507
#define SPEAR_SOCK_DEFAULT_BUFFER 1048576
#define SPEAR_SOCK_MAX_ADDR_TEXT  300

#endif /* SPEARHOST_SPEAR_ABI_H */
