/*
 * summarise: fetches a web page with http_request and asks the AI for a summary with
 * ai_prompt. The page's host must be in the manifest's http.allow; the AI backend is the
 * manifest's `ai`, or the config's first chat backend.
 *
 *   spear skill add guests/build/skills/summarise.wasm --name summarise --allow-host example.com
 *   spear skill run summarise --input '{"url":"https://example.com/"}'
 *     -> {"url":"https://example.com/","bytes":1256,"summary":"…"}
 *
 * Input: {"url": "...", "max_chars"?: N (page text sent to the AI, default 6000)}.
 * The page is reduced to its text (tags, scripts and styles dropped, whitespace collapsed).
 * Failures come back as {"error": "...", "rc": -errno}.
 */
#include "cis.h"

#include <ctype.h>

CIS_DEFINE_ALLOC()

/* Case-insensitive prefix test. */
static int starts(const char *p, const char *word) {
    for (; *word; p++, word++)
        if (tolower((unsigned char)*p) != *word) return 0;
    return 1;
}

/* The visible text of an HTML (or plain text) page, at most max bytes. */
static char *page_text(const char *html, size_t len, size_t max) {
    char *out = malloc(max + 1);
    if (!out) return NULL;
    size_t n = 0;
    int space = 1;
    for (size_t i = 0; i < len && n < max; i++) {
        char c = html[i];
        if (c == '<') {
            const char *skip_to = NULL;
            if (starts(&html[i + 1], "script")) skip_to = "</script";
            else if (starts(&html[i + 1], "style")) skip_to = "</style";
            if (skip_to) {
                while (i < len && !starts(&html[i], skip_to)) i++;
            }
            while (i < len && html[i] != '>') i++;
            c = ' ';
        } else if (c == '&') {
            /* the common entities; others become a space */
            if (starts(&html[i], "&amp;")) c = '&', i += 4;
            else if (starts(&html[i], "&lt;")) c = '<', i += 3;
            else if (starts(&html[i], "&gt;")) c = '>', i += 3;
            else if (starts(&html[i], "&quot;")) c = '"', i += 5;
            else if (starts(&html[i], "&#39;")) c = '\'', i += 4;
            else if (starts(&html[i], "&nbsp;")) c = ' ', i += 5;
        }
        if (isspace((unsigned char)c)) {
            if (!space) out[n++] = ' ';
            space = 1;
        } else {
            out[n++] = c;
            space = 0;
        }
    }
    while (n > 0 && out[n - 1] == ' ') n--;
    out[n] = 0;
    return out;
}

static char *fail(const char *what, int32_t rc) {
    cis_buf out = {0};
    cis_buf_puts(&out, "{\"error\":");
    cis_buf_json_string(&out, what, strlen(what));
    cis_buf_printf(&out, ",\"rc\":%d}", (int)rc);
    return cis_buf_finish(&out);
}

CIS_EXPORT("execute") char *execute(const char *input) {
    char *url = cis_json_get_string(input, "url", NULL);
    if (!url) return fail("input needs {\"url\": \"...\"}", -SPEAR_EINVAL);
    int64_t max_chars = 6000;
    cis_json_get_int(input, "max_chars", &max_chars);
    if (max_chars < 100) max_chars = 100;

    int32_t rc;
    char *page = cis_http_request_alloc(url, NULL, 0, &rc);
    if (!page) return fail("http_request failed", rc);
    int32_t page_bytes = rc;
    char *text = page_text(page, (size_t)page_bytes, (size_t)max_chars);
    free(page);
    if (!text) return fail("out of memory", -SPEAR_ENOMEM);

    cis_buf prompt = {0};
    cis_buf_puts(&prompt, "Summarise this web page in two or three sentences.\n\nURL: ");
    cis_buf_puts(&prompt, url);
    cis_buf_puts(&prompt, "\n\n");
    cis_buf_puts(&prompt, text);
    free(text);
    char *summary = cis_ai_prompt_alloc(cis_buf_finish(&prompt), &rc);
    free(prompt.data);
    if (!summary) return fail("ai_prompt failed", rc);

    cis_buf out = {0};
    cis_buf_puts(&out, "{\"url\":");
    cis_buf_json_string(&out, url, strlen(url));
    cis_buf_printf(&out, ",\"bytes\":%d,\"summary\":", (int)page_bytes);
    cis_buf_json_string(&out, summary, strlen(summary));
    cis_buf_puts(&out, "}");
    free(summary);
    free(url);
    return cis_buf_finish(&out);
}
