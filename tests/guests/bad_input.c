/*
 * bad_input: calls every built hostcall with bad input -- negative pointers, pointers at and
 * past the end of linear memory, huge and negative lengths, len_ptr out of range, wrong fd
 * kinds, closed fds and unknown fds -- and every not-yet-built import, printing one line
 * "<case> <return code>" per call on stdout. tests/system/bad_input_test.ts checks each
 * code. The host must answer every call with -errno (never a trap), so the guest ends with
 * "done" and exit code 0.
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG
#include "spear.h"

/* The current end of linear memory (evaluated at each use: memory can grow). */
#define END ((int32_t)(__builtin_wasm_memory_size(0) * 65536u))
#define P(x) SP__PTR(x)
#define R(name, expr) printf("%s %d\n", (name), (int)(expr))

static char big[SPEAR_LOG_MAX_BYTES + 16];
static uint8_t buf[256];
static uint32_t len;

int main(void) {
    const char *msg = "bad_input: hello";
    const int32_t n = (int32_t)strlen(msg);
    memset(big, 'x', sizeof big);

    /* ---- log */
    R("log_ok", sp_log(SP_LOG_INFO, P(msg), n));
    R("log_weird_level", sp_log(77, P(msg), n));
    R("log_max_len", sp_log(SP_LOG_DEBUG, P(big), SPEAR_LOG_MAX_BYTES));
    R("log_len_over", sp_log(SP_LOG_INFO, P(big), SPEAR_LOG_MAX_BYTES + 1));
    R("log_len_huge", sp_log(SP_LOG_INFO, P(msg), 0x7fffffff));
    R("log_len_neg", sp_log(SP_LOG_INFO, P(msg), -1));
    R("log_len_intmin", sp_log(SP_LOG_INFO, P(msg), INT32_MIN));
    R("log_ptr_neg", sp_log(SP_LOG_INFO, -1, 4));
    R("log_ptr_intmin", sp_log(SP_LOG_INFO, INT32_MIN, 4));
    R("log_ptr_straddle", sp_log(SP_LOG_INFO, END - 2, 4));
    R("log_ptr_past", sp_log(SP_LOG_INFO, END + 64, 4));
    R("log_ptr_end_len0", sp_log(SP_LOG_INFO, END, 0));

    /* ---- time, random, sleep */
    R("time_ok", sp_time_now_ms() > 1600000000000LL);
    R("wall_ok", sp_wall_time_s() > 1600000000LL);
    R("random_ok", sp_random_i64() != sp_random_i64());
    sp_sleep_ms(0);
    sp_sleep_ms(1);

    /* ---- fds to play with */
    int32_t ep = sp_epoll_create();
    int32_t ep2 = sp_epoll_create();
    int32_t closed_ep = sp_epoll_create();
    int32_t session = sp_cchat_create();
    int32_t closed_session = sp_cchat_create();
    R("epoll_create_ok", ep >= 1000 && ep2 == ep + 1 && closed_ep == ep + 2);
    R("cchat_create_ok", session == ep + 3 && closed_session == ep + 4);
    R("close_ep", sp_epoll_close(closed_ep));
    R("close_session", sp_cchat_close(closed_session));
    const int32_t unknown = 999;
    const int32_t never = 0x7fffffff;

    /* ---- spear_epoll_ctl */
    R("ctl_unknown_epfd", sp_epoll_ctl(unknown, SPEAR_EPOLL_CTL_ADD, session, SPEAR_EPOLLIN));
    R("ctl_unknown_fd", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, never, SPEAR_EPOLLIN));
    R("ctl_negative_fd", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, -1, SPEAR_EPOLLIN));
    R("ctl_epfd_is_fd", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, ep, SPEAR_EPOLLIN));
    R("ctl_nested", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, ep2, SPEAR_EPOLLIN));
    R("ctl_wrong_kind_epfd", sp_epoll_ctl(session, SPEAR_EPOLL_CTL_ADD, ep, SPEAR_EPOLLIN));
    R("ctl_closed_epfd", sp_epoll_ctl(closed_ep, SPEAR_EPOLL_CTL_ADD, session, SPEAR_EPOLLIN));
    R("ctl_closed_fd", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, closed_session, SPEAR_EPOLLIN));
    R("ctl_op_0", sp_epoll_ctl(ep, 0, session, SPEAR_EPOLLIN));
    R("ctl_op_4", sp_epoll_ctl(ep, 4, session, SPEAR_EPOLLIN));
    R("ctl_op_neg", sp_epoll_ctl(ep, -1, session, SPEAR_EPOLLIN));
    R("ctl_mod_nonmember", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_MOD, session, SPEAR_EPOLLIN));
    R("ctl_del_nonmember", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, session, 0));
    R("ctl_add_all_bits", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, session, -1));
    R("ctl_add_twice", sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, session, SPEAR_EPOLLIN));

    /* ---- spear_epoll_wait */
    len = sizeof buf;
    R("wait_ok", sp_epoll_wait(ep, P(buf), P(&len), 0));
    len = sizeof buf;
    R("wait_out_neg", sp_epoll_wait(ep, -8, P(&len), 0));
    len = sizeof buf;
    R("wait_out_intmin", sp_epoll_wait(ep, INT32_MIN, P(&len), 0));
    len = sizeof buf;
    R("wait_out_past", sp_epoll_wait(ep, END, P(&len), 0));
    len = 64;
    R("wait_out_straddle", sp_epoll_wait(ep, END - 8, P(&len), 0));
    len = 0xfffffff8u;
    R("wait_cap_huge", sp_epoll_wait(ep, P(buf), P(&len), 0));
    R("wait_len_neg", sp_epoll_wait(ep, P(buf), -4, 0));
    R("wait_len_intmin", sp_epoll_wait(ep, P(buf), INT32_MIN, 0));
    R("wait_len_straddle", sp_epoll_wait(ep, P(buf), END - 2, 0));
    R("wait_len_past", sp_epoll_wait(ep, P(buf), END, 0));
    len = 7;
    R("wait_cap_small", sp_epoll_wait(ep, P(buf), P(&len), 0));
    R("wait_cap_small_len", len);
    len = 0;
    R("wait_cap_zero_unknown_epfd", sp_epoll_wait(unknown, P(buf), P(&len), 0));
    len = sizeof buf;
    R("wait_unknown_epfd", sp_epoll_wait(unknown, P(buf), P(&len), 0));
    len = sizeof buf;
    R("wait_wrong_kind", sp_epoll_wait(session, P(buf), P(&len), 0));
    len = sizeof buf;
    R("wait_closed_epfd", sp_epoll_wait(closed_ep, P(buf), P(&len), 0));

    /* ---- spear_fd_ctl */
    len = sizeof buf;
    R("fdctl_unknown_fd", sp_fd_ctl(unknown, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_negative_fd", sp_fd_ctl(-5, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_closed_fd", sp_fd_ctl(closed_ep, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_cmd_0", sp_fd_ctl(ep, 0, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_cmd_6", sp_fd_ctl(ep, 6, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_cmd_neg", sp_fd_ctl(ep, -1, P(buf), P(&len)));
    len = sizeof buf;
    R("fdctl_arg_neg", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, -1, P(&len)));
    len = sizeof buf;
    R("fdctl_arg_straddle", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_STATUS, END - 2, P(&len)));
    len = sizeof buf;
    R("fdctl_arg_past", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_METRICS, END + 4096, P(&len)));
    R("fdctl_len_neg", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, P(buf), -1));
    R("fdctl_len_straddle", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_FLAGS, P(buf), END - 3));
    R("fdctl_len_past", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, P(buf), END));
    len = 0x7fffffff;
    R("fdctl_setflags_len_huge", sp_fd_ctl(ep, SPEAR_FD_CTL_SET_FLAGS, P(buf), P(&len)));
    memcpy(buf, "{\"set\":", 7);
    len = 7;
    R("fdctl_setflags_bad_json", sp_fd_ctl(ep, SPEAR_FD_CTL_SET_FLAGS, P(buf), P(&len)));
    memcpy(buf, "{\"set\":[\"O_SYNC\"]}", 18);
    len = 18;
    R("fdctl_setflags_bad_flag", sp_fd_ctl(ep, SPEAR_FD_CTL_SET_FLAGS, P(buf), P(&len)));
    len = 3;
    R("fdctl_small_buffer", sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len)));
    R("fdctl_small_buffer_len", len);

    /* ---- cchat (built) */
    R("write_msg_role_neg", sp_cchat_write_msg(session, -1, 4, P(msg), n));
    R("write_msg_role_len_neg", sp_cchat_write_msg(session, P(msg), -1, P(msg), n));
    R("write_msg_role_len_huge", sp_cchat_write_msg(session, P(msg), 0x7fffffff, P(msg), n));
    R("write_msg_content_past", sp_cchat_write_msg(session, P(msg), 4, END + 16, 4));
    R("write_msg_content_straddle", sp_cchat_write_msg(session, P(msg), 4, END - 1, 2));
    R("write_msg_unknown_fd", sp_cchat_write_msg(unknown, P(msg), 4, P(msg), n));
    R("write_msg_wrong_kind", sp_cchat_write_msg(ep, P(msg), 4, P(msg), n));
    R("write_msg_closed", sp_cchat_write_msg(closed_session, P(msg), 4, P(msg), n));
    R("write_fn_ptr_neg", sp_cchat_write_fn(session, 1, -16, 8));
    R("write_fn_len_huge", sp_cchat_write_fn(session, 1, P(msg), 0x7fffffff));
    R("write_fn_wrong_kind", sp_cchat_write_fn(ep, 1, P(msg), n));
    R("write_fn_unknown_fd", sp_cchat_write_fn(unknown, 1, P(msg), n));
    R("cchat_ctl_len_neg", sp_cchat_ctl(session, SPEAR_CCHAT_CTL_SET_PARAM, P(buf), -1));
    len = 16;
    R("cchat_ctl_arg_past", sp_cchat_ctl(session, SPEAR_CCHAT_CTL_SET_PARAM, END, P(&len)));
    len = sizeof buf;
    R("cchat_ctl_metrics_wrong_kind", sp_cchat_ctl(session, SPEAR_CCHAT_CTL_GET_METRICS, P(buf), P(&len)));
    len = sizeof buf;
    R("cchat_ctl_unknown_fd", sp_cchat_ctl(unknown, SPEAR_CCHAT_CTL_GET_METRICS, P(buf), P(&len)));
    len = sizeof buf;
    R("cchat_ctl_bad_cmd", sp_cchat_ctl(session, 9, P(buf), P(&len)));
    R("send_unknown_fd", sp_cchat_send(unknown, 0));
    R("send_wrong_kind", sp_cchat_send(ep, 0));
    R("send_closed", sp_cchat_send(closed_session, 0));
    len = sizeof buf;
    R("recv_unknown_fd", sp_cchat_recv(unknown, P(buf), P(&len)));
    len = sizeof buf;
    R("recv_wrong_kind", sp_cchat_recv(session, P(buf), P(&len)));
    R("cchat_close_unknown", sp_cchat_close(unknown));
    R("cchat_close_twice", sp_cchat_close(closed_session));

    /* ---- epoll_close */
    R("epoll_close_unknown", sp_epoll_close(unknown));
    R("epoll_close_never", sp_epoll_close(never));
    R("epoll_close_twice", sp_epoll_close(closed_ep));

    /* ---- rtasr */
    len = sizeof buf;
    int32_t asr = sp_rtasr_create();
    R("rtasr_create", asr >= 1000);
    R("rtasr_ctl", sp_rtasr_ctl(unknown, SPEAR_RTA_CTL_GET_STATUS, P(buf), P(&len)));
    R("rtasr_ctl_len_ptr_bad", sp_rtasr_ctl(asr, SPEAR_RTA_CTL_GET_STATUS, P(buf), -1));
    R("rtasr_ctl_bad_cmd", sp_rtasr_ctl(asr, 99, P(buf), P(&len)));
    R("rtasr_write", sp_rtasr_write(unknown, P(buf), 4));
    R("rtasr_write_len_huge", sp_rtasr_write(asr, P(buf), 0x7fffffff));
    R("rtasr_read", sp_rtasr_read(unknown, P(buf), P(&len)));
    R("rtasr_read_empty", sp_rtasr_read(asr, P(buf), P(&len)));
    R("rtasr_close", sp_rtasr_close(unknown));
    R("rtasr_close_own", sp_rtasr_close(asr));

    /* ---- user streams: no endpoint serves this run (-ENOTCONN); unknown fds (-EBADF) */
    R("user_stream_open", sp_user_stream_open(1, SPEAR_USER_STREAM_DIR_BIDIRECTIONAL));
    R("user_stream_read", sp_user_stream_read(unknown, P(buf), P(&len)));
    R("user_stream_write", sp_user_stream_write(unknown, P(buf), 4));
    R("user_stream_close", sp_user_stream_close(unknown));
    R("user_stream_ctl_open", sp_user_stream_ctl_open());
    R("user_stream_ctl_read", sp_user_stream_ctl_read(unknown, P(buf), P(&len)));

    /* ---- the instance still works after all that */
    len = sizeof buf;
    int32_t got = sp_fd_ctl(ep, SPEAR_FD_CTL_GET_KIND, P(buf), P(&len));
    R("sanity_get_kind", got > 0 && len == (uint32_t)got && memcmp(buf, "{\"kind\":\"Epoll\"}", (size_t)got) == 0);
    int32_t ep3 = sp_epoll_create();
    R("sanity_next_fd", ep3 == ep + 6);
    printf("done\n");
    fflush(stdout);
    return 0;
}
