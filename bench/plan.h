/* plan.h - what a workload looks like: which connections exist (uid, sender or receiver,
 * target channel, expected sender) and the server-side set-up through the HTTP API. */
#ifndef BENCH_PLAN_H
#define BENCH_PLAN_H

#include "bench.h"

/* Allocate ctx->conns for ctx->o's workload and fill identities and roles.
 * MP_OK or MP_EINVAL (impossible parameters; a message is printed). */
int plan_build(bench_ctx *ctx);
/* Create the channels and subscribers (chunks of <= 1000 per call) and, with --token-auth,
 * register a token per connection. Runs on the calling thread, blocking.
 * MP_OK, or an error after printing the failing call and its answer. */
int plan_setup(bench_ctx *ctx);
/* The CONNECT token used for a uid (meaningful with --token-auth). */
void plan_token(const char *uid, char out[72]);
/* Release what plan_build allocated. */
void plan_free(bench_ctx *ctx);

#endif
