/* api_static.c - the web files: the monitor UI (/web/ on the manager port) and the chat
 * demo (/chatdemo on the demo port), read from webDir.
 *
 * webDir defaults to the source tree's web/ directory, found next to the binary (build/
 * magpie -> ../web), so ./scripts/run.sh serves them from a fresh clone without an install
 * step. Files are small; each request reads its file whole (blocking, on the API thread). */
#include "api_static.h"

#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/log.h"

#define FILE_MAX (16u << 20) /* the bundled SDK is the largest file, well below this */

static char g_dir[PATH_MAX]; /* "" = not found */

static int has_web_files(const char *dir) {
    char p[PATH_MAX * 2];
    struct stat st;
    int n = snprintf(p, sizeof p, "%s/monitor/index.html", dir);
    return n > 0 && (size_t)n < sizeof p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

void api_static_init(const mp_config *cfg) {
    g_dir[0] = '\0';
    if (cfg->web_dir && cfg->web_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "%s", cfg->web_dir);
        if (!has_web_files(g_dir)) LOG_WARN("web", "webDir has no monitor/index.html webDir=%s", g_dir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return;
    *slash = '\0';
    static const char *const rel[] = {"../web", "web", "../../web", "../share/magpie/web"};
    for (size_t i = 0; i < MP_ARRAY_LEN(rel); i++) {
        char cand[PATH_MAX * 2];
        int n = snprintf(cand, sizeof cand, "%s/%s", exe, rel[i]);
        if (n > 0 && (size_t)n < sizeof cand && has_web_files(cand) && realpath(cand, g_dir)) return;
    }
    g_dir[0] = '\0';
    LOG_WARN("web", "no web files next to the binary: the monitor UI and the demo answer 404 (set webDir)");
}

const char *api_static_dir(void) { return g_dir; }

static const char *content_type(const char *path) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},  {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},          {".svg", "image/svg+xml"},
        {".png", "image/png"},                  {".ico", "image/x-icon"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < MP_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* Only plain names: letters, digits, '-', '_', '.', and '/' between them; no "..", no
 * hidden files. h2o has normalised the path already; this is the second lock. */
static int safe_rel(mp_str rel) {
    for (uint32_t i = 0; i < rel.len; i++) {
        char c = rel.p[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 c == '.' || c == '/';
        if (!ok) return 0;
        if (c == '.' && (i == 0 || rel.p[i - 1] == '/')) return 0;
    }
    return 1;
}

static void not_found(api_req *r) { api_reply_text(r, 404, "text/plain", MP_STR("404 page not found")); }

void api_static_serve(api_req *r, const char *sub, mp_str rel) {
    if (!g_dir[0] || !safe_rel(rel)) {
        not_found(r);
        return;
    }
    char path[PATH_MAX * 2];
    int n = snprintf(path, sizeof path, "%s/%s/%.*s", g_dir, sub, (int)rel.len, rel.p);
    if (n < 0 || (size_t)n >= sizeof path - 16) {
        not_found(r);
        return;
    }
    if (rel.len == 0 || rel.p[rel.len - 1] == '/') strcat(path, "index.html");
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > FILE_MAX) {
        if (f) fclose(f);
        not_found(r);
        return;
    }
    char *data = mp_malloc((size_t)st.st_size + 1);
    size_t got = fread(data, 1, (size_t)st.st_size, f);
    fclose(f);
    api_reply_text(r, 200, content_type(path), (mp_str){data, (uint32_t)got});
    free(data);
}
