/*
 * voice_assistant: the main job. Speech in, answers out, in ONE epoll loop over
 *   - a mic fd (the device microphone, or the host config's `mic.file`),
 *   - an rtasr fd (transport `local`: offline Whisper inside the host), and
 *   - the response fds of the chat requests in flight.
 * Mic frames are written to the recogniser; each final transcript ("[n] heard: …") becomes an
 * asynchronous cchat_send; each answer is printed when its response fd turns readable
 * ("[n] answer: …"), in the order the answers come, so several questions can be in flight.
 *
 * Every utterance is a chat session of its own (system prompt + the question). The questions of
 * a voice assistant are mostly independent, and independent sessions can run concurrently
 * without one waiting for the previous answer to join its history; they also keep each prompt
 * small, which matters for a small local model (its prompt time grows with the history).
 *
 * Errors never stop the loop: an error response ({"error":…}) is printed as "[n] error: …",
 * a recogniser `error` event as "asr error: …"; a recogniser whose transport fails is reconnected
 * (up to MAX_RECONNECTS times).
 *
 * Arguments (after `--`, all optional):
 *   --utterances N     end after N utterances are answered (default 0: no limit)
 *   --idle-ms M        end after M ms in which nothing was heard or answered, counted from the
 *                      recogniser's first event (default 20000; 0: never)
 *   --source S         auto (default: the device mic if one opens, else mic.file), device or file
 *   --transport T      local (default; when the config has no local_asr backend, websocket is
 *                      tried next, i.e. the config's realtime service) or websocket
 *   --asr-backend B    the rtasr backend by name (default: the transport's choice)
 *   --chat-backend B   the chat backend by name (default: routing; with no chat backend
 *                      configured, the host's embedded default)
 *   --model M          the chat model (default: the backend's bound model)
 *   --system TEXT      the system prompt
 *   --max-tokens N     upper bound on an answer's length (default 96)
 *   --chat-timeout-ms N  each chat request's own deadline (default 20000)
 * Ends at the end of the input (mic.file) once every utterance is answered. Exit 0, or 1 when
 * the mic or the recogniser could not be used (the reason is printed).
 */
#define SPEAR_DISABLE_STDIO_REDIRECT_TO_LOG /* printf is the user-facing output: WASI stdout */
#include <stdlib.h>
#include <string.h>
#include "spear.h"

#define MAX_IN_FLIGHT 32
#define MAX_RECONNECTS 3
#define DRAIN_MS 30000 /* after the input ends: how long to wait for the last transcripts */
#define TEXT_CAP (16 * 1024)

static const char DEFAULT_SYSTEM[] =
    "You are a voice assistant. Answer the question in one short sentence.";

typedef struct {
    long utterances;
    long idle_ms;
    const char *source;
    const char *transport;
    int transport_given;
    const char *asr_backend;
    const char *chat_backend;
    const char *model;
    const char *system;
    long max_tokens;
    long chat_timeout_ms;
} options_t;

/* ------------------------------------------------------------------ a small JSON reader */
/* Enough JSON to read events and responses correctly: walks objects and arrays, decodes strings
 * (escapes, \uXXXX with surrogate pairs, as UTF-8). Pointers point into the NUL-terminated text. */

static const char *json_ws(const char *p) {
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* p at '"': returns the position after the closing quote, or NULL. */
static const char *json_skip_string(const char *p) {
    for (p++; *p; p++) {
        if (*p == '\\') {
            if (!*++p) return NULL;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return NULL;
}

/* p at a value: returns the position after it, or NULL. */
static const char *json_skip_value(const char *p) {
    p = json_ws(p);
    if (!p || !*p) return NULL;
    if (*p == '"') return json_skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = json_skip_string(p);
                if (!p) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') {
                if (--depth == 0) return p + 1;
            }
            p++;
        }
        return NULL;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
    return p;
}

/* The value of `key` in the object at p, or NULL. */
static const char *json_get(const char *p, const char *key) {
    p = json_ws(p);
    if (!p || *p != '{') return NULL;
    size_t key_len = strlen(key);
    p = json_ws(p + 1);
    while (p && *p == '"') {
        const char *name = p + 1;
        const char *end = json_skip_string(p);
        if (!end) return NULL;
        int match = (size_t)(end - 1 - name) == key_len && memcmp(name, key, key_len) == 0;
        p = json_ws(end);
        if (*p != ':') return NULL;
        p = json_ws(p + 1);
        if (match) return p;
        p = json_ws(json_skip_value(p));
        if (!p || *p != ',') return NULL;
        p = json_ws(p + 1);
    }
    return NULL;
}

/* Element `index` of the array at p, or NULL. */
static const char *json_at(const char *p, int index) {
    p = json_ws(p);
    if (!p || *p != '[') return NULL;
    p = json_ws(p + 1);
    for (int i = 0; p && *p && *p != ']'; i++) {
        if (i == index) return p;
        p = json_ws(json_skip_value(p));
        if (!p || *p != ',') return NULL;
        p = json_ws(p + 1);
    }
    return NULL;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

static size_t put_utf8(char *out, size_t n, size_t cap, unsigned cp) {
    char b[4];
    size_t len;
    if (cp < 0x80) b[0] = (char)cp, len = 1;
    else if (cp < 0x800) b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), len = 2;
    else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), len = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), len = 4;
    }
    if (n + len >= cap) return n;
    memcpy(out + n, b, len);
    return n + len;
}

/* Decodes the string at p into out (NUL-terminated, cut to cap). 1 if p is a string, else 0. */
static int json_text(const char *p, char *out, size_t cap) {
    p = json_ws(p);
    if (!p || *p != '"' || cap == 0) return 0;
    size_t n = 0;
    for (p++; *p && *p != '"'; p++) {
        unsigned cp = (unsigned char)*p;
        if (*p == '\\') {
            p++;
            switch (*p) {
            case 'n': case 'r': case 't': cp = ' '; break;
            case 'b': case 'f': cp = ' '; break;
            case 'u':
                if (!hex4(p + 1, &cp)) return 0;
                p += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
                    unsigned low;
                    if (hex4(p + 3, &low) && low >= 0xDC00 && low < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        p += 6;
                    }
                }
                if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
                break;
            case 0: return 0;
            default: cp = (unsigned char)*p; /* \" \\ \/ */
            }
            n = put_utf8(out, n, cap, cp);
        } else if (n + 1 < cap) {
            out[n++] = *p;
        }
    }
    out[n] = 0;
    return 1;
}

/* Collapses whitespace (an answer is printed on one line) and trims; returns the length. */
static size_t one_line(char *s) {
    size_t n = 0;
    int space = 1;
    for (char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7F) {
            if (!space) s[n++] = ' ';
            space = 1;
        } else {
            s[n++] = (char)c;
            space = 0;
        }
    }
    while (n > 0 && s[n - 1] == ' ') n--;
    s[n] = 0;
    return n;
}

/* ------------------------------------------------------------------ arguments */

static int parse_args(int argc, char **argv, options_t *o) {
    *o = (options_t){0, 20000, "auto", "local", 0, NULL, NULL, NULL, DEFAULT_SYSTEM, 96, 20000};
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "voice_assistant: %s needs a value\n", a);
            return 0;
        }
        char *end = NULL;
        long n = strtol(v, &end, 10);
        int numeric = end && *end == 0 && n >= 0;
        if (!strcmp(a, "--utterances") && numeric) o->utterances = n;
        else if (!strcmp(a, "--idle-ms") && numeric) o->idle_ms = n;
        else if (!strcmp(a, "--max-tokens") && numeric && n > 0) o->max_tokens = n;
        else if (!strcmp(a, "--chat-timeout-ms") && numeric && n > 0) o->chat_timeout_ms = n;
        else if (!strcmp(a, "--source") && (!strcmp(v, "auto") || !strcmp(v, "device") || !strcmp(v, "file")))
            o->source = v;
        else if (!strcmp(a, "--transport") && (!strcmp(v, "local") || !strcmp(v, "websocket")))
            o->transport = v, o->transport_given = 1;
        else if (!strcmp(a, "--asr-backend")) o->asr_backend = v;
        else if (!strcmp(a, "--chat-backend")) o->chat_backend = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--system")) o->system = v;
        else {
            fprintf(stderr, "voice_assistant: bad argument %s %s\n", a, v);
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ microphone */

/* Starts the mic on `source` ("device" or "file"); 0, or -errno with the reason in `why`. */
static int32_t mic_start(int32_t mic, const char *source, char *why, size_t why_cap) {
    char cfg[256];
    int len = snprintf(cfg, sizeof cfg,
                       "{\"sample_rate_hz\":24000,\"channels\":1,\"format\":\"pcm16\",\"frame_ms\":20,"
                       "\"source\":\"%s\",\"fallback\":{\"to_stub\":false}}",
                       source);
    int32_t rc = sp_mic_set_param_json(mic, cfg, (uint32_t)len);
    if (rc != 0) {
        uint32_t status_len = 0;
        uint8_t *status = sp_mic_get_status_alloc(mic, &status_len);
        if (!status || !json_text(json_get((const char *)status, "last_error"), why, why_cap))
            snprintf(why, why_cap, "mic_ctl SET_PARAM returned %d", rc);
        free(status);
    }
    return rc;
}

/* The device mic if one opens (for `auto`), else the host config's mic.file. */
static int mic_open(const options_t *o, int32_t mic) {
    char device_why[512] = "", file_why[512] = "";
    if (strcmp(o->source, "file") != 0) {
        if (mic_start(mic, "device", device_why, sizeof device_why) == 0) {
            printf("listening on the device microphone\n");
            return 1;
        }
        if (!strcmp(o->source, "device")) {
            printf("mic error: no device microphone: %s\n", device_why);
            return 0;
        }
    }
    if (mic_start(mic, "file", file_why, sizeof file_why) == 0) {
        printf("listening to the speech file (mic.file)\n");
        return 1;
    }
    if (device_why[0]) printf("mic error: no device microphone (%s) and no speech file (%s)\n", device_why, file_why);
    else printf("mic error: no speech file: %s\n", file_why);
    return 0;
}

/* ------------------------------------------------------------------ recogniser */

/* A connected rtasr fd, or -1 with the reason printed. */
static int32_t asr_connect(const char *transport, const char *backend, int quiet) {
    int32_t asr = sp_rtasr_create();
    if (asr < 0) {
        printf("asr error: rtasr_create returned %d\n", asr);
        return -1;
    }
    sp_rtasr_set_param_string(asr, "transport", transport);
    if (backend) sp_rtasr_set_param_string(asr, "backend", backend);
    static const char seg[] = "{\"strategy\":\"server_vad\",\"vad\":{\"silence_ms\":600}}";
    sp_rtasr_set_autoflush_json(asr, seg, (uint32_t)strlen(seg));
    int32_t rc = sp_rtasr_connect(asr);
    if (rc == 0) return asr;
    if (!quiet) {
        char why[512] = "";
        uint32_t len = 0;
        uint8_t *status = sp_rtasr_get_status_alloc(asr, &len);
        if (!status || !json_text(json_get((const char *)status, "last_error"), why, sizeof why))
            snprintf(why, sizeof why, "CONNECT returned %d", rc);
        printf("asr error: %s\n", why);
        free(status);
    }
    sp_rtasr_close(asr);
    return -1;
}

static int32_t asr_open(const options_t *o) {
    int32_t asr = asr_connect(o->transport, o->asr_backend, !o->transport_given && !o->asr_backend);
    if (asr < 0 && !o->transport_given && !o->asr_backend) {
        /* No local_asr backend in the config: the config's realtime service, if it has one. */
        asr = asr_connect("websocket", NULL, 0);
    }
    return asr;
}

/* The recogniser's last_error, or `otherwise`. */
static void asr_status_error(int32_t asr, char *why, size_t cap, const char *otherwise) {
    uint32_t len = 0;
    uint8_t *status = sp_rtasr_get_status_alloc(asr, &len);
    if (!status || !json_text(json_get((const char *)status, "last_error"), why, cap))
        snprintf(why, cap, "%s", otherwise);
    free(status);
}

/* ------------------------------------------------------------------ chat */

typedef struct {
    int32_t session;
    int32_t response;
    int utterance;
} request_t;

static request_t requests[MAX_IN_FLIGHT];
static int in_flight;

/* Sends one question; the response fd joins the epoll set. 1 if sent. */
static int ask(const options_t *o, int32_t ep, int utterance, const char *question) {
    if (in_flight == MAX_IN_FLIGHT) {
        printf("[%d] error: %d questions are already in flight\n", utterance, MAX_IN_FLIGHT);
        return 0;
    }
    int32_t session = sp_cchat_create();
    if (session < 0) {
        printf("[%d] error: cchat_create returned %d\n", utterance, session);
        return 0;
    }
    int32_t rc = sp_cchat_write_msg_str(session, "system", o->system);
    if (rc == 0) rc = sp_cchat_write_msg_str(session, "user", question);
    if (rc == 0 && o->model) rc = sp_cchat_set_param_string(session, "model", o->model);
    if (rc == 0 && o->chat_backend) rc = sp_cchat_set_param_string(session, "backend", o->chat_backend);
    if (rc == 0) rc = sp_cchat_set_param_u32(session, "max_tokens", (uint32_t)o->max_tokens);
    if (rc == 0) rc = sp_cchat_set_param_u32(session, "timeout_ms", (uint32_t)o->chat_timeout_ms);
    int32_t response = rc == 0 ? sp_cchat_send(session, 0) : rc;
    if (response < 0) {
        printf("[%d] error: the question could not be sent (%d)\n", utterance, response);
        sp_cchat_close(session);
        return 0;
    }
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_ADD, response, SPEAR_EPOLLIN);
    requests[in_flight++] = (request_t){session, response, utterance};
    return 1;
}

/* Prints the answer (or the error) of a response JSON. */
static void print_answer(int utterance, const char *json) {
    static char text[TEXT_CAP];
    const char *error = json_get(json, "error");
    if (error) {
        char code[128] = "";
        json_text(json_get(error, "code"), code, sizeof code);
        if (!json_text(json_get(error, "message"), text, sizeof text)) snprintf(text, sizeof text, "%s", "(no message)");
        one_line(text);
        printf("[%d] error: %s%s%s\n", utterance, code[0] ? code : "", code[0] ? ": " : "", text);
        return;
    }
    const char *message = json_get(json_at(json_get(json, "choices"), 0), "message");
    if (json_text(json_get(message, "content"), text, sizeof text) && one_line(text) > 0) {
        printf("[%d] answer: %s\n", utterance, text);
    } else if (json_get(message, "tool_calls")) {
        printf("[%d] answer: (the model asked for a tool instead of answering)\n", utterance);
    } else {
        printf("[%d] error: the response has no answer text\n", utterance);
    }
}

/* Reads and prints the response of requests[i], then forgets the request. */
static void collect(int32_t ep, int i) {
    request_t r = requests[i];
    uint32_t len = 0;
    uint8_t *json = sp_cchat_recv_alloc(r.response, &len);
    if (json) print_answer(r.utterance, (const char *)json);
    else printf("[%d] error: cchat_recv failed\n", r.utterance);
    free(json);
    sp_epoll_ctl(ep, SPEAR_EPOLL_CTL_DEL, r.response, 0);
    sp_cchat_close(r.response);
    sp_cchat_close(r.session);
    requests[i] = requests[--in_flight];
}

static int request_of(int32_t fd) {
    for (int i = 0; i < in_flight; i++)
        if (requests[i].response == fd) return i;
    return -1;
}

/* ------------------------------------------------------------------ the loop */

typedef struct {
    const options_t *o;
    int32_t ep, mic, asr;
    int mic_armed;        /* the mic is in the epoll set (out while a frame waits for EPOLLOUT) */
    uint8_t pending[64 * 1024];
    int32_t pending_len;  /* a frame the recogniser's full send queue did not take yet */
    int started, committed, completed; /* recogniser utterances */
    int heard;            /* transcripts sent as questions */
    int input_ended;      /* end of file, mic failure, utterance limit, or the recogniser closed */
    int64_t drain_until;  /* after the input ended: the last transcripts are awaited until then */
    int64_t last_activity;
    int asr_ready;        /* the recogniser has spoken (session.created): idle time counts from then */
    int reconnects;
    int failed;
} loop_t;

static void mic_arm(loop_t *s, int on) {
    if (s->mic < 0 || s->mic_armed == on) return;
    sp_epoll_ctl(s->ep, on ? SPEAR_EPOLL_CTL_ADD : SPEAR_EPOLL_CTL_DEL, s->mic,
                 SPEAR_EPOLLIN | SPEAR_EPOLLERR | SPEAR_EPOLLHUP);
    s->mic_armed = on;
}

/* EPOLLOUT is watched only while a frame waits: level-triggered, it is up almost always. */
static void asr_watch_out(loop_t *s, int on) {
    sp_epoll_ctl(s->ep, SPEAR_EPOLL_CTL_MOD, s->asr, SPEAR_EPOLLIN | (on ? SPEAR_EPOLLOUT : 0));
}

static int limit_reached(const loop_t *s) {
    return s->o->utterances > 0 && s->heard >= s->o->utterances;
}

static void mic_stop(loop_t *s) {
    if (s->mic < 0) return;
    mic_arm(s, 0);
    sp_mic_close(s->mic);
    s->mic = -1;
    s->pending_len = 0;
}

/* No more input: commit speech the VAD has not ended yet, then await its transcript. */
static void end_input(loop_t *s) {
    if (s->input_ended) return;
    s->input_ended = 1;
    mic_stop(s);
    if (s->asr >= 0 && s->started > s->committed && !limit_reached(s)) sp_rtasr_flush(s->asr);
    s->drain_until = sp_time_now_ms() + DRAIN_MS;
}

/* Moves mic frames to the recogniser until either runs dry. */
static void pump_audio(loop_t *s) {
    for (int batch = 0; batch < 64 && s->mic >= 0 && s->asr >= 0; batch++) {
        if (s->pending_len == 0) {
            uint32_t len = sizeof s->pending;
            int32_t r = sp_mic_read(s->mic, SP__PTR(s->pending), SP__PTR(&len));
            if (r <= 0) return; /* -EAGAIN: the queue is empty (EPOLLHUP/EPOLLERR say the rest) */
            s->pending_len = r;
        }
        int32_t w = sp_rtasr_write(s->asr, SP__PTR(s->pending), s->pending_len);
        if (w == -SPEAR_EAGAIN) {
            mic_arm(s, 0); /* until EPOLLOUT: the recogniser paces the mic, frames wait in its queue */
            asr_watch_out(s, 1);
            return;
        }
        s->pending_len = 0; /* written, or lost with the recogniser */
        if (w < 0) {
            /* -EIO/-EPIPE: the recogniser failed or closed; its EPOLLERR/EPOLLHUP says why. */
            if (w != -SPEAR_EIO && w != -SPEAR_EPIPE) printf("asr error: rtasr_write returned %d\n", w);
            return;
        }
    }
}

static void on_transcript(loop_t *s, const char *json) {
    static char text[TEXT_CAP];
    s->completed++;
    if (!json_text(json_get(json, "transcript"), text, sizeof text) || one_line(text) == 0) return;
    if (limit_reached(s)) return;
    s->heard++;
    printf("[%d] heard: %s\n", s->heard, text);
    ask(s->o, s->ep, s->heard, text);
    if (limit_reached(s)) end_input(s); /* the answers still come */
}

static void on_asr_event(loop_t *s, const char *json) {
    static char type[128], text[TEXT_CAP];
    if (!json_text(json_get(json, "type"), type, sizeof type)) return;
    s->last_activity = sp_time_now_ms();
    s->asr_ready = 1; /* a model that loads slowly is not silence */
    if (!strcmp(type, "input_audio_buffer.speech_started")) s->started++;
    else if (!strcmp(type, "input_audio_buffer.committed")) s->committed++;
    else if (!strcmp(type, "conversation.item.input_audio_transcription.completed")) on_transcript(s, json);
    else {
        int failed = !strcmp(type, "conversation.item.input_audio_transcription.failed");
        if (!failed && strcmp(type, "error") != 0) return; /* deltas and session events */
        if (!json_text(json_get(json_get(json, "error"), "message"), text, sizeof text))
            snprintf(text, sizeof text, "%s", type);
        one_line(text);
        printf("asr error: %s\n", text);
        if (failed) s->completed++; /* that utterance will have no transcript */
    }
}

/* The recogniser failed (EPOLLERR) or closed (EPOLLHUP): reconnect, or end the input. */
static void on_asr_down(loop_t *s, int events) {
    char why[512];
    asr_status_error(s->asr, why, sizeof why,
                     events & SPEAR_EPOLLERR ? "the recogniser failed" : "the server ended the session");
    sp_epoll_ctl(s->ep, SPEAR_EPOLL_CTL_DEL, s->asr, 0);
    sp_rtasr_close(s->asr);
    s->asr = -1;
    s->started = s->committed = s->completed = 0; /* what was in it is lost */
    if (!(events & SPEAR_EPOLLERR)) {
        printf("asr closed: %s\n", why);
        end_input(s);
        return;
    }
    printf("asr error: %s\n", why);
    if (!s->input_ended && s->reconnects < MAX_RECONNECTS) {
        s->reconnects++;
        s->asr = asr_open(s->o);
        if (s->asr >= 0) {
            printf("asr reconnected (%d of %d)\n", s->reconnects, MAX_RECONNECTS);
            sp_epoll_ctl(s->ep, SPEAR_EPOLL_CTL_ADD, s->asr, SPEAR_EPOLLIN);
            s->pending_len = 0;
            mic_arm(s, 1);
            return;
        }
    }
    s->failed = 1;
    end_input(s);
}

static void on_asr_ready(loop_t *s, int events) {
    if (events & SPEAR_EPOLLOUT) {
        asr_watch_out(s, 0);
        mic_arm(s, 1);
        pump_audio(s);
    }
    for (int i = 0; i < 64 && (events & SPEAR_EPOLLIN); i++) {
        uint32_t len = 0;
        uint8_t *msg = sp_rtasr_read_alloc(s->asr, &len);
        if (!msg) break; /* -EAGAIN: drained */
        on_asr_event(s, (const char *)msg);
        free(msg);
        if (s->asr < 0) return;
    }
    if (events & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP) && !(events & SPEAR_EPOLLIN)) on_asr_down(s, events);
}

static void on_mic_ready(loop_t *s, int events) {
    if (events & SPEAR_EPOLLIN) {
        pump_audio(s);
        return; /* level-triggered: an end or error is seen once the frames are read */
    }
    if (events & SPEAR_EPOLLERR) {
        char why[512] = "";
        uint32_t len = 0;
        uint8_t *status = sp_mic_get_status_alloc(s->mic, &len);
        if (!status || !json_text(json_get((const char *)status, "last_error"), why, sizeof why))
            snprintf(why, sizeof why, "the microphone failed");
        free(status);
        printf("mic error: %s\n", why);
        s->failed = 1;
    }
    if (events & (SPEAR_EPOLLERR | SPEAR_EPOLLHUP)) end_input(s); /* EPOLLHUP: end of the file */
}

/* 1 while the loop has something left to do. */
static int running(loop_t *s) {
    int64_t now = sp_time_now_ms();
    if (s->input_ended) {
        int expected = s->started > s->committed ? s->started : s->committed;
        int transcripts_due = s->asr >= 0 && s->completed < expected && !limit_reached(s);
        if (transcripts_due && now > s->drain_until) {
            printf("asr error: gave up waiting for %d transcript(s)\n", s->started - s->completed);
            transcripts_due = 0;
        }
        return transcripts_due || in_flight > 0;
    }
    int busy = in_flight > 0 || s->started > s->completed;
    if (s->o->idle_ms > 0 && s->asr_ready && !busy && now - s->last_activity > s->o->idle_ms) {
        printf("nothing heard for %ld ms: stopping\n", s->o->idle_ms);
        end_input(s);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    static options_t o;
    if (!parse_args(argc, argv, &o)) return 2;
    static loop_t s;
    s.o = &o;
    s.ep = sp_epoll_create();
    s.mic = sp_mic_create();
    s.asr = -1;
    if (!mic_open(&o, s.mic)) return 1;
    sp_fd_set_nonblock(s.mic, 1);
    s.asr = asr_open(&o);
    if (s.asr < 0) return 1;
    mic_arm(&s, 1);
    sp_epoll_ctl(s.ep, SPEAR_EPOLL_CTL_ADD, s.asr, SPEAR_EPOLLIN);
    s.last_activity = sp_time_now_ms();

    while (running(&s)) {
        sp_epoll_event_t ev[16];
        int32_t n = sp_ep_wait_events(s.ep, ev, 16, 250);
        if (n < 0) {
            printf("epoll error: %d\n", n);
            s.failed = 1;
            break;
        }
        for (int32_t i = 0; i < n; i++) {
            int32_t fd = ev[i].fd, events = ev[i].events;
            int r;
            if (fd == s.mic && s.mic >= 0) on_mic_ready(&s, events);
            else if (fd == s.asr && s.asr >= 0) on_asr_ready(&s, events);
            else if ((r = request_of(fd)) >= 0) {
                collect(s.ep, r);
                s.last_activity = sp_time_now_ms();
            }
        }
    }
    while (in_flight > 0) { /* only after an epoll failure: close what is left */
        sp_cchat_close(requests[in_flight - 1].response);
        sp_cchat_close(requests[--in_flight].session);
    }
    mic_stop(&s);
    if (s.asr >= 0) sp_rtasr_close(s.asr);
    sp_epoll_close(s.ep);
    printf("%d utterance(s) heard\n", s.heard);
    return s.failed;
}
