/* api_auth.c - manager users, HS256 JWTs and POST /manager/login (spec §4.8).
 *
 * A token is header.payload.signature in base64url without padding; the payload holds
 * iss, exp, iat and username, as WuKongIM's manager issues them. Permissions are not in
 * the token: they are looked up by username at every check, so removing a user from
 * auth.users (and restarting) ends its tokens. */
#include "api_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../proto/crypto.h"
#include "json_util.h"

#define SECRET_FILE "jwt.secret"
#define SECRET_RANDOM_BYTES 32
#define USERS_MAX 64
#define JWT_MAX 2048 /* longer Authorization values are refused unread */

typedef struct user {
    char *name, *password, *perm;
    int access; /* API_ACCESS_READ or API_ACCESS_WRITE */
} user;

static struct {
    user users[USERS_MAX];
    size_t nusers;
    char *secret; /* HMAC key (text) */
    size_t secret_len;
    const mp_config *cfg;
} g;

/* ---- users ---------------------------------------------------------------------------------- */

/* "*", "*:*", "*:rw" or "*:w" anywhere in the list (brackets optional) may change things;
 * resource-level permissions are not distinguished (docs/monitoring.md). */
static int perm_access(const char *perm) {
    const char *p = perm;
    while (*p) {
        p += strspn(p, "[ ,");
        size_t n = strcspn(p, ",]");
        if ((n == 1 && p[0] == '*') || (n == 3 && memcmp(p, "*:*", 3) == 0) || (n == 4 && memcmp(p, "*:rw", 4) == 0) ||
            (n == 3 && memcmp(p, "*:w", 3) == 0))
            return API_ACCESS_WRITE;
        p += n;
        if (*p) p++;
    }
    return API_ACCESS_READ;
}

static void add_user(const char *name, size_t nlen, const char *pwd, size_t plen, const char *perm, size_t permlen) {
    if (g.nusers == USERS_MAX) {
        LOG_WARN("auth", "auth.users has too many entries: the rest are ignored max=%d", USERS_MAX);
        return;
    }
    user *u = &g.users[g.nusers++];
    u->name = mp_strndup(name, nlen);
    u->password = mp_strndup(pwd, plen);
    u->perm = mp_strndup(perm, permlen);
    u->access = perm_access(u->perm);
}

/* auth.users (checked at start-up by the config, so every entry parses). */
static void parse_users(const char *v) {
    mp_str name, pwd, perm, entry;
    while (*v)
        if (config_next_user(&v, &name, &pwd, &perm, &entry) == MP_OK)
            add_user(name.p, name.len, pwd.p, pwd.len, perm.p, perm.len);
    if (g.nusers == 0) add_user("guest", 5, "guest", 5, "*:r", 3); /* spec §4.8: read-only guest */
}

static const user *find_user(mp_str name) {
    for (size_t i = 0; i < g.nusers; i++)
        if (mp_str_eq_c(name, g.users[i].name)) return &g.users[i];
    return NULL;
}

/* ---- the key -------------------------------------------------------------------------------- */

/* dataDir/jwt.secret: read it, or create it with a random key (hex) readable by us only. */
static int load_or_create_secret(const char *dir, char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, SECRET_FILE);
    char text[256];
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) n--;
        if (n >= 16) {
            g.secret = mp_strndup(text, n);
            g.secret_len = n;
            return MP_OK;
        }
    }
    uint8_t raw[SECRET_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        snprintf(err, errlen, "cannot make a random jwt.secret");
        return MP_EIO;
    }
    for (size_t i = 0; i < sizeof raw; i++) snprintf(text + 2 * i, 3, "%02x", raw[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, text, 2 * sizeof raw) != (ssize_t)(2 * sizeof raw)) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return MP_EIO;
    }
    close(fd);
    g.secret = mp_strndup(text, 2 * sizeof raw);
    g.secret_len = 2 * sizeof raw;
    return MP_OK;
}

int api_auth_init(const mp_config *cfg, char *err, size_t errlen) {
    api_auth_free();
    g.cfg = cfg;
    parse_users(cfg->auth_users ? cfg->auth_users : "");
    if (cfg->jwt_secret && cfg->jwt_secret[0]) {
        g.secret = mp_strndup(cfg->jwt_secret, strlen(cfg->jwt_secret));
        g.secret_len = strlen(cfg->jwt_secret);
        return MP_OK;
    }
    return load_or_create_secret(cfg->data_dir, err, errlen);
}

void api_auth_free(void) {
    for (size_t i = 0; i < g.nusers; i++) {
        free(g.users[i].name);
        free(g.users[i].password);
        free(g.users[i].perm);
    }
    g.nusers = 0;
    free(g.secret);
    g.secret = NULL;
    g.secret_len = 0;
}

/* ---- JWT ------------------------------------------------------------------------------------ */

static void b64url_append(mp_buf *out, const void *p, size_t n) {
    mp_buf b = MP_BUF_INIT;
    crypto_b64_encode(p, n, &b);
    for (size_t i = 0; i < b.len && b.data[i] != '='; i++) {
        char c = (char)b.data[i];
        mp_buf_append_u8(out, (uint8_t)(c == '+' ? '-' : c == '/' ? '_' : c));
    }
    mp_buf_free(&b);
}

static int b64url_decode(const char *p, size_t n, mp_buf *out) {
    mp_buf b = MP_BUF_INIT;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '+' || c == '/' || c == '=') { /* standard alphabet: not a JWT */
            mp_buf_free(&b);
            return MP_EPROTO;
        }
        mp_buf_append_u8(&b, (uint8_t)(c == '-' ? '+' : c == '_' ? '/' : c));
    }
    while (b.len % 4) mp_buf_append_u8(&b, '=');
    int rc = crypto_b64_decode((const char *)b.data, b.len, out);
    mp_buf_free(&b);
    return rc;
}

static void sign(const uint8_t *data, size_t n, uint8_t mac[32]) {
    unsigned len = 32;
    HMAC(EVP_sha256(), g.secret, (int)g.secret_len, data, n, mac, &len);
}

size_t api_jwt_sign(const char *username, uint64_t now_s, uint64_t expire_s, char *out, size_t cap) {
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    json_t *claims = json_object();
    json_object_set_new(claims, "exp", json_integer((json_int_t)(now_s + expire_s)));
    json_object_set_new(claims, "iat", json_integer((json_int_t)now_s));
    json_object_set_new(claims, "iss", json_string(g.cfg && g.cfg->jwt_issuer ? g.cfg->jwt_issuer : ""));
    json_object_set_new(claims, "username", ju_string(mp_str_c(username)));
    size_t plen;
    char *payload = ju_dump(claims, &plen);
    json_decref(claims);
    mp_buf t = MP_BUF_INIT;
    b64url_append(&t, header, sizeof header - 1);
    mp_buf_append_u8(&t, '.');
    b64url_append(&t, payload, plen);
    free(payload);
    uint8_t mac[32];
    sign(t.data, t.len, mac);
    mp_buf_append_u8(&t, '.');
    b64url_append(&t, mac, sizeof mac);
    size_t n = t.len < cap ? t.len : 0;
    if (n) {
        memcpy(out, t.data, n);
        out[n] = '\0';
    }
    mp_buf_free(&t);
    return n;
}

/* The user a valid, unexpired token names; NULL (with why) otherwise. */
static const user *jwt_verify(mp_str tok, const char **why) {
    *why = "invalid token";
    if (tok.len == 0 || tok.len > JWT_MAX || !g.secret) return NULL;
    const char *dot1 = memchr(tok.p, '.', tok.len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(tok.p + tok.len - dot1 - 1)) : NULL;
    if (!dot2) return NULL;
    mp_buf mac = MP_BUF_INIT, hdr = MP_BUF_INIT, payload = MP_BUF_INIT;
    const user *u = NULL;
    uint8_t want[32];
    sign((const uint8_t *)tok.p, (size_t)(dot2 - tok.p), want);
    if (b64url_decode(dot2 + 1, (size_t)(tok.p + tok.len - dot2 - 1), &mac) != MP_OK || mac.len != 32 ||
        CRYPTO_memcmp(mac.data, want, 32) != 0 || b64url_decode(tok.p, (size_t)(dot1 - tok.p), &hdr) != MP_OK ||
        b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &payload) != MP_OK)
        goto out;
    /* only HS256 is accepted: a token naming another algorithm is not ours */
    json_t *h = json_loadb((const char *)hdr.data, hdr.len, 0, NULL);
    json_t *alg = h ? json_object_get(h, "alg") : NULL;
    int hs256 = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0;
    json_decref(h);
    json_t *c = hs256 ? json_loadb((const char *)payload.data, payload.len, 0, NULL) : NULL;
    if (!c) goto out;
    json_t *exp = json_object_get(c, "exp"), *name = json_object_get(c, "username");
    if (!json_is_integer(exp) || json_integer_value(exp) <= (json_int_t)(mp_now_ms() / 1000)) {
        *why = "token expired";
    } else if (json_is_string(name)) {
        u = find_user((mp_str){json_string_value(name), (uint32_t)json_string_length(name)});
        if (!u) *why = "unknown user";
    }
    json_decref(c);
out:
    mp_buf_free(&mac);
    mp_buf_free(&hdr);
    mp_buf_free(&payload);
    return u;
}

static int const_time_eq(mp_str a, const char *b) {
    size_t n = strlen(b);
    return a.len == n && CRYPTO_memcmp(a.p, b, n) == 0;
}

int api_auth_check(mp_str token_header, mp_str authorization, const char **why) {
    const char *mt = g.cfg ? g.cfg->manager_token : NULL;
    if (mt && !ju_blank(mp_str_c(mt)) && token_header.len && const_time_eq(token_header, mt)) return API_ACCESS_WRITE;
    mp_str tok = authorization;
    if (tok.len > 7 && strncasecmp(tok.p, "Bearer ", 7) == 0) tok = (mp_str){tok.p + 7, tok.len - 7};
    if (tok.len == 0) {
        *why = token_header.len ? "invalid manager token" : "missing token";
        return API_ACCESS_NONE;
    }
    const user *u = jwt_verify(tok, why);
    return u ? u->access : API_ACCESS_NONE;
}

/* ---- POST /manager/login -------------------------------------------------------------------- */

void api_manager_login(api_req *r) {
    json_t *root = api_parse_object(r);
    if (!root) return;
    ju j;
    ju_init(&j, root);
    mp_str name = ju_str(&j, "username"), pwd = ju_str(&j, "password");
    if (!j.failed && (name.len == 0 || pwd.len == 0)) ju_fail(&j, "username and password are required");
    const user *u = j.failed ? NULL : find_user(name);
    if (!j.failed && (!u || !const_time_eq(pwd, u->password))) ju_fail(&j, "wrong username or password");
    if (j.failed) {
        json_decref(root);
        api_reply_error(r, 400, "%s", j.err);
        return;
    }
    json_decref(root);
    uint64_t now = mp_now_ms() / 1000, ttl = g.cfg->jwt_expire_ms / 1000;
    char tok[1024];
    if (!api_jwt_sign(u->name, now, ttl, tok, sizeof tok)) {
        api_reply_error(r, 400, "username is too long");
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "username", ju_string(mp_str_c(u->name)));
    json_object_set_new(o, "token", json_string(tok));
    json_object_set_new(o, "exp", json_integer((json_int_t)(now + ttl)));
    json_object_set_new(o, "permissions", ju_string(mp_str_c(u->perm)));
    api_reply_json(r, 200, o);
}
