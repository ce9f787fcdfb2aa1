/* client.h - load threads: each runs one libuv loop over its share of the connections
 * (connection i belongs to thread i % threads) and speaks the binary protocol: CONNECT /
 * CONNACK with X25519, encrypted SEND with msgKey, SENDACK, RECV with msgKey check, RECVACK.
 * The main thread moves ctx->phase forward and calls client_threads_wake() after each move. */
#ifndef BENCH_CLIENT_H
#define BENCH_CLIENT_H

#include "bench.h"

/* Create ctx->o.threads loops and start them; they begin connecting at once (PH_CONNECT).
 * MP_OK or MP_EIO. */
int client_threads_start(bench_ctx *ctx);
/* Tell every loop to look at ctx->phase again. Thread-safe. */
void client_threads_wake(bench_ctx *ctx);
/* Wait for every loop to end (after PH_QUIT) and free the loops' resources; the
 * connections and counters stay readable. */
void client_threads_join(bench_ctx *ctx);

#endif
