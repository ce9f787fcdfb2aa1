/* api_auth.h - manager authentication (spec §4.8): the auth.users list, HS256 JWTs signed
 * with jwt.secret, POST /manager/login, and the check the manager port's middleware makes.
 *
 * Thread rule: the API loop's thread (worker 0), like every handler. */
#ifndef MP_API_AUTH_H
#define MP_API_AUTH_H

#include "../config/config.h"
#include "api_req.h"

enum api_access { API_ACCESS_NONE = 0, API_ACCESS_READ = 1, API_ACCESS_WRITE = 2 };

/* Parse auth.users and settle the JWT key: jwt.secret, or a random key created once in
 * dataDir/jwt.secret. Returns MP_OK, or MP_EINVAL / MP_EIO with a message in err. */
int api_auth_init(const mp_config *cfg, char *err, size_t errlen);
void api_auth_free(void);

/* What a request may do, from its `token` header and its JWT (the Authorization header
 * "Bearer <jwt>", or the ?Authorization= query value; pass empty strings when absent).
 * The manager token gives API_ACCESS_WRITE; a valid JWT gives its user's access. On
 * API_ACCESS_NONE, why says what was wrong. */
int api_auth_check(mp_str token_header, mp_str authorization, const char **why);

/* A signed JWT for user (tests): iat = now_s, exp = now_s + expire_s. out gets the text
 * (cap >= 512 is plenty for short names). Returns its length, or 0 if it does not fit. */
size_t api_jwt_sign(const char *user, uint64_t now_s, uint64_t expire_s, char *out, size_t cap);

/* POST /manager/login {"username","password"} -> {"username","token","exp","permissions"}. */
void api_manager_login(api_req *r);

#endif
