/* main.c - magpie-bench: options, the run's phases (set-up, connect, warm-up, measure,
 * drain, quit), the loss/duplicate accounting and the report.
 * Exit status: 0 clean run, 1 run completed with lost/duplicated messages or errors (or
 * aborted early), 2 bad usage or set-up failure, 3 hard deadline hit, 4 the server went
 * away during the run (every connection lost; the report and --ack-log hold what came). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"
#include "plan.h"
#include "procfs.h"
#include "report.h"

#define HARD_DEADLINE_EXTRA_S 30.0 /* the process ends at most this long after --duration */
#define SOFT_MARGIN_S 3.0          /* stop waiting this long before the hard deadline, to report */
#define POLL_NS 10000000ull        /* main thread's wait granularity */
#define EXIT_SERVER_GONE 4
static const char SERVER_GONE[] = "every connection was lost (the server went away)";

static volatile sig_atomic_t g_interrupted;
static uint64_t g_hard_deadline_ns; /* monotonic */

static void usage(FILE *f) {
    fputs("usage: magpie-bench [options]\n"
          "  --workload NAME     send | fanout | person | idle | mixed (default send)\n"
          "  --addr HOST:PORT    server's binary-protocol TCP address (default 127.0.0.1:5100)\n"
          "  --api URL           server's HTTP API for set-up (default http://127.0.0.1:5001)\n"
          "  --duration S        measured seconds (default 10), after --warmup S (default 1)\n"
          "  --drain S           max seconds to wait for outstanding acks/deliveries (default 2)\n"
          "  --groups N          send, mixed: number of groups (default 100)\n"
          "  --members N         send: members per group (default 100); fanout, mixed: big group size (default 10000)\n"
          "  --online N          fanout, mixed: big group receivers connected (default 5000 fanout, 500 mixed)\n"
          "  --pairs N           person, mixed: sender/receiver pairs (default 1000)\n"
          "  --group-size N      mixed: members of each small group (default 100)\n"
          "  --conns N           idle: connections (default 10000)\n"
          "  --ping-interval S   seconds between PINGs on each connection (default 30)\n"
          "  --rate R            open loop: R SENDs/s in total across all senders, still within --window\n"
          "                      (default 0 = closed loop, as fast as the window allows)\n"
          "  --window N          unacknowledged SENDs per sender (default 16)\n"
          "  --threads N         load threads, one libuv loop each (default 1)\n"
          "  --sources N         source addresses 127.0.0.1..127.0.0.N, cycled per connection (default 1)\n"
          "  --payload-size N    bytes of padding in each JSON payload (default 32)\n"
          "  --verify-every N    check the msgKey of 1 RECV in N (default 1: every RECV; every RECV is\n"
          "                      still decrypted and checked for loss, duplicates and sender)\n"
          "  --token-auth        register a token per uid (POST /user/token) and send it in CONNECT\n"
          "  --prefix P          uid/channel prefix, [A-Za-z0-9_], <= 16 chars (default random)\n"
          "  --server-pid PID|auto  report the server's RSS and CPU (auto: the one listening on --addr's port)\n"
          "  --json              print one JSON line instead of the text report\n"
          "  --ack-log FILE      append \"channel_id channel_type client_msg_no message_id message_seq from_uid\"\n"
          "                      for every successful SENDACK (written every loop turn)\n"
          "  --cmn random|seq    client_msg_no: random-looking like real SDKs (default: a 16-hex hash\n"
          "                      first, then prefix-conn-seq), or seq: prefix-conn-seq alone\n",
          f);
}

static int parse_u32(const char *name, const char *v, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "--%s: want an integer in [%u, %u], got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = (uint32_t)x;
    return 0;
}

static int parse_secs(const char *name, const char *v, double lo, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (*end || end == v || !(x >= lo) || x > 86400) {
        fprintf(stderr, "--%s: want seconds >= %g, got \"%s\"\n", name, lo, v);
        return -1;
    }
    *out = x;
    return 0;
}

static void random_prefix(char *out) {
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    uint8_t r[7];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t t = bench_wall_ns() ^ (uint64_t)getpid();
        memcpy(r, &t, sizeof r);
    }
    out[0] = 'b';
    for (int i = 0; i < 7; i++) out[1 + i] = al[r[i] % 36];
    out[8] = '_';
    out[9] = 0;
}

static int parse_opts(int argc, char **argv, bench_opts *o) {
    enum { O_ADDR = 256, O_API, O_WORKLOAD, O_DURATION, O_WARMUP, O_DRAIN, O_GROUPS, O_MEMBERS, O_ONLINE, O_PAIRS,
           O_WINDOW, O_THREADS, O_SOURCES, O_PAYLOAD, O_TOKEN, O_PREFIX, O_PID, O_JSON, O_HELP, O_CONNS, O_PING,
           O_RATE, O_GSIZE, O_VERIFY, O_ACKLOG, O_CMN };
    static const struct option longs[] = {
        {"addr", required_argument, 0, O_ADDR},       {"api", required_argument, 0, O_API},
        {"workload", required_argument, 0, O_WORKLOAD}, {"duration", required_argument, 0, O_DURATION},
        {"warmup", required_argument, 0, O_WARMUP},   {"drain", required_argument, 0, O_DRAIN},
        {"groups", required_argument, 0, O_GROUPS},   {"members", required_argument, 0, O_MEMBERS},
        {"online", required_argument, 0, O_ONLINE},   {"pairs", required_argument, 0, O_PAIRS},
        {"window", required_argument, 0, O_WINDOW},   {"threads", required_argument, 0, O_THREADS},
        {"sources", required_argument, 0, O_SOURCES}, {"payload-size", required_argument, 0, O_PAYLOAD},
        {"token-auth", no_argument, 0, O_TOKEN},      {"prefix", required_argument, 0, O_PREFIX},
        {"server-pid", required_argument, 0, O_PID},  {"json", no_argument, 0, O_JSON},
        {"help", no_argument, 0, O_HELP},             {"conns", required_argument, 0, O_CONNS},
        {"ping-interval", required_argument, 0, O_PING}, {"rate", required_argument, 0, O_RATE},
        {"group-size", required_argument, 0, O_GSIZE}, {"verify-every", required_argument, 0, O_VERIFY},
        {"ack-log", required_argument, 0, O_ACKLOG}, {"cmn", required_argument, 0, O_CMN},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    snprintf(o->addr, sizeof o->addr, "127.0.0.1:5100");
    snprintf(o->api, sizeof o->api, "http://127.0.0.1:5001");
    o->workload = WL_SEND;
    o->duration = 10;
    o->warmup = 1;
    o->drain = 2;
    o->groups = 100;
    o->online = 5000;
    o->pairs = 1000;
    o->window = 16;
    o->threads = 1;
    o->sources = 1;
    o->payload_size = 32;
    o->conns = 10000;
    o->group_size = 100;
    o->verify_every = 1;
    o->ping_interval = 30;
    random_prefix(o->prefix);
    int members_set = 0, online_set = 0, opt, bad = 0;
    while ((opt = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (opt) {
        case O_ADDR:
            if (strlen(optarg) >= sizeof o->addr) bad = 1;
            else snprintf(o->addr, sizeof o->addr, "%s", optarg);
            break;
        case O_API:
            if (strlen(optarg) >= sizeof o->api) bad = 1;
            else snprintf(o->api, sizeof o->api, "%s", optarg);
            break;
        case O_WORKLOAD:
            if (!strcmp(optarg, "send")) o->workload = WL_SEND;
            else if (!strcmp(optarg, "fanout")) o->workload = WL_FANOUT;
            else if (!strcmp(optarg, "person")) o->workload = WL_PERSON;
            else if (!strcmp(optarg, "idle")) o->workload = WL_IDLE;
            else if (!strcmp(optarg, "mixed")) o->workload = WL_MIXED;
            else {
                fprintf(stderr, "--workload: send, fanout, person, idle or mixed, not \"%s\"\n", optarg);
                bad = 1;
            }
            break;
        case O_DURATION: bad |= parse_secs("duration", optarg, 0.1, &o->duration) != 0; break;
        case O_WARMUP: bad |= parse_secs("warmup", optarg, 0, &o->warmup) != 0; break;
        case O_DRAIN: bad |= parse_secs("drain", optarg, 0, &o->drain) != 0; break;
        case O_GROUPS: bad |= parse_u32("groups", optarg, 1, 1000000, &o->groups) != 0; break;
        case O_MEMBERS:
            bad |= parse_u32("members", optarg, 1, 10000000, &o->members) != 0;
            members_set = 1;
            break;
        case O_ONLINE:
            bad |= parse_u32("online", optarg, 1, 10000000, &o->online) != 0;
            online_set = 1;
            break;
        case O_CONNS: bad |= parse_u32("conns", optarg, 1, 10000000, &o->conns) != 0; break;
        case O_GSIZE: bad |= parse_u32("group-size", optarg, 1, 10000000, &o->group_size) != 0; break;
        case O_PING: bad |= parse_secs("ping-interval", optarg, 0.1, &o->ping_interval) != 0; break;
        case O_RATE: {
            char *end;
            o->rate = strtod(optarg, &end);
            if (*end || end == optarg || !(o->rate >= 0) || o->rate > 1e8) {
                fprintf(stderr, "--rate: want SENDs per second >= 0, got \"%s\"\n", optarg);
                bad = 1;
            }
            break;
        }
        case O_PAIRS: bad |= parse_u32("pairs", optarg, 1, 5000000, &o->pairs) != 0; break;
        case O_WINDOW: bad |= parse_u32("window", optarg, 1, 65536, &o->window) != 0; break;
        case O_THREADS: bad |= parse_u32("threads", optarg, 1, 256, &o->threads) != 0; break;
        case O_SOURCES: bad |= parse_u32("sources", optarg, 1, 1u << 20, &o->sources) != 0; break;
        case O_PAYLOAD: bad |= parse_u32("payload-size", optarg, 0, 900000, &o->payload_size) != 0; break;
        case O_TOKEN: o->token_auth = 1; break;
        case O_VERIFY: bad |= parse_u32("verify-every", optarg, 1, 1000000, &o->verify_every) != 0; break;
        case O_PREFIX: {
            size_t n = strlen(optarg);
            int ok = n > 0 && n <= 16;
            for (size_t i = 0; ok && i < n; i++)
                ok = (optarg[i] >= 'a' && optarg[i] <= 'z') || (optarg[i] >= 'A' && optarg[i] <= 'Z') ||
                     (optarg[i] >= '0' && optarg[i] <= '9') || optarg[i] == '_';
            if (!ok) {
                fprintf(stderr, "--prefix: 1..16 characters of [A-Za-z0-9_]\n");
                bad = 1;
            } else {
                snprintf(o->prefix, sizeof o->prefix, "%s", optarg);
            }
            break;
        }
        case O_PID:
            if (!strcmp(optarg, "auto")) o->server_pid = -1;
            else {
                uint32_t pid;
                bad |= parse_u32("server-pid", optarg, 1, INT32_MAX, &pid) != 0;
                o->server_pid = (int)pid;
            }
            break;
        case O_JSON: o->json = 1; break;
        case O_ACKLOG: o->ack_log = optarg; break;
        case O_CMN:
            if (strcmp(optarg, "seq") == 0) o->sequential_cmn = 1;
            else if (strcmp(optarg, "random") != 0) bad = 1, fprintf(stderr, "magpie-bench: --cmn is random or seq\n");
            break;
        case O_HELP: usage(stdout); exit(0);
        default: bad = 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "unexpected argument \"%s\"\n", argv[optind]);
        bad = 1;
    }
    if (!members_set) o->members = o->workload == WL_FANOUT || o->workload == WL_MIXED ? 10000 : 100;
    if (!online_set && o->workload == WL_MIXED) o->online = 500;
    if (o->rate > 0 && o->workload == WL_IDLE) fprintf(stderr, "magpie-bench: note: --rate has no effect on idle\n");
    if (bad) {
        usage(stderr);
        return -1;
    }
    return 0;
}

static int resolve_addr(const char *hostport, struct sockaddr_in *out) {
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport) return -1;
    char host[80];
    snprintf(host, sizeof host, "%.*s", (int)(colon - hostport), hostport);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res) return -1;
    memcpy(out, res->ai_addr, sizeof *out);
    freeaddrinfo(res);
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    if (g_interrupted) _exit(130);
    g_interrupted = 1;
}

/* The backstop: whatever hangs, the process ends at the hard deadline. */
static void *watchdog(void *arg) {
    (void)arg;
    struct timespec ts = {(time_t)(g_hard_deadline_ns / 1000000000ull), (long)(g_hard_deadline_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
    static const char msg[] = "magpie-bench: hard deadline (duration + 30 s) reached, exiting\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    _exit(3);
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static uint64_t sum_atomic(bench_ctx *ctx, size_t field_off) {
    uint64_t s = 0;
    for (uint32_t t = 0; t < ctx->o.threads; t++)
        s += atomic_load_explicit((_Atomic uint64_t *)((char *)&ctx->threads[t] + field_off), memory_order_relaxed);
    return s;
}
#define SUM(ctx, field) sum_atomic((ctx), offsetof(bthread, field))

static int all_threads_saw(bench_ctx *ctx, int phase) {
    for (uint32_t t = 0; t < ctx->o.threads; t++)
        if (atomic_load(&ctx->threads[t].seen_phase) < phase) return 0;
    return 1;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

static uint64_t self_cpu_ns(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000ull +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

/* Why waiting must stop now, or NULL. */
static const char *stop_reason(uint64_t soft_deadline) {
    if (g_interrupted) return "interrupted";
    if (bench_mono_ns() >= soft_deadline) return "deadline (duration + 30 s) reached";
    return NULL;
}

/* While the load runs: also stop once no connection is left (the server went away). */
static const char *run_stop_reason(bench_ctx *ctx, uint64_t soft_deadline) {
    const char *why = stop_reason(soft_deadline);
    if (!why && SUM(ctx, a_live) == 0) why = SERVER_GONE;
    return why;
}

/* The server's soft open-file limit from /proc/PID/limits, or 0. */
static unsigned long long server_nofile(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/limits", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    unsigned long long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "Max open files", 14)) v = strtoull(line + 14, NULL, 10);
    fclose(f);
    return v;
}

/* Raise the soft open-file limit to the hard limit; say clearly when either side is short. */
static void raise_fd_limit(uint32_t need, int server_pid) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    unsigned long long soft0 = (unsigned long long)rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < (rlim_t)need + 64)
        fprintf(stderr,
                "magpie-bench: WARNING: %u connections need about %u file descriptors, but the open-file limit is "
                "only %llu (soft %llu raised to the hard limit %llu). Connections beyond it will fail with EMFILE. "
                "Raise the hard limit first, e.g. as root: ulimit -Hn %u; ulimit -n %u\n",
                need, need + 64, (unsigned long long)rl.rlim_cur, soft0, (unsigned long long)rl.rlim_max, need + 1024,
                need + 1024);
    unsigned long long sv = server_pid > 0 ? server_nofile(server_pid) : 0;
    if (sv && sv < (unsigned long long)need + 64)
        fprintf(stderr,
                "magpie-bench: WARNING: the server (pid %d) may open only %llu files, fewer than the %u connections; "
                "start it with a higher ulimit -n\n",
                server_pid, sv, need);
}

/* Losses and duplicates, from the bitmaps, once the threads are gone. */
static void account(bench_ctx *ctx, bench_result *r) {
    for (uint32_t i = 0; i < ctx->nconns; i++) {
        const bconn *c = &ctx->conns[i];
        if (c->is_sender) r->unacked += c->inflight;
        if (c->expect_src == BC_NO_SRC) continue;
        const bconn *s = &ctx->conns[c->expect_src];
        uint32_t words = MP_MAX(s->acked.nwords, c->got.nwords);
        for (uint32_t w = 0; w < words; w++) {
            uint64_t acked = bm_word(&s->acked, w), got = bm_word(&c->got, w);
            r->delivered_unacked += (uint64_t)__builtin_popcountll(got & ~acked);
            if (c->alive_at_end) {
                r->expected += (uint64_t)__builtin_popcountll(acked);
                r->lost += (uint64_t)__builtin_popcountll(acked & ~got);
                r->part_lost[c->part] += (uint64_t)__builtin_popcountll(acked & ~got);
            }
        }
        if (c->counted && !c->alive_at_end) r->receivers_lost++;
    }
}

int main(int argc, char **argv) {
    bench_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    if (parse_opts(argc, argv, &ctx.o) != 0) return 2;
    bench_opts *o = &ctx.o;
    if (resolve_addr(o->addr, &ctx.server) != 0) {
        fprintf(stderr, "--addr: cannot resolve \"%s\" (want IPv4 host:port)\n", o->addr);
        return 2;
    }
    int loopback = (ntohl(ctx.server.sin_addr.s_addr) >> 24) == 127;
    if (o->sources > 1 && !loopback) {
        fprintf(stderr, "--sources > 1 needs a loopback --addr (sources are 127.0.0.x)\n");
        return 2;
    }
    ctx.bind_source = loopback;
    ctx.ack_fd = -1;
    if (o->ack_log && (ctx.ack_fd = open(o->ack_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "--ack-log: cannot open \"%s\": %s\n", o->ack_log, strerror(errno));
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t t_begin = bench_mono_ns();
    g_hard_deadline_ns = t_begin + (uint64_t)((o->duration + HARD_DEADLINE_EXTRA_S) * 1e9);
    uint64_t soft_deadline = g_hard_deadline_ns - (uint64_t)(SOFT_MARGIN_S * 1e9);
    pthread_t wd;
    pthread_create(&wd, NULL, watchdog, NULL);
    pthread_detach(wd);

    bench_result r;
    memset(&r, 0, sizeof r);
    r.server_pid = o->server_pid;
    if (o->server_pid < 0) {
        const char *colon = strrchr(o->addr, ':');
        r.server_pid = procfs_find_server(atoi(colon + 1));
        if (!r.server_pid)
            fprintf(stderr, "magpie-bench: --server-pid auto: no process listening on %s, none named magpie\n",
                    o->addr);
    }
    uint64_t hwm;
    if (r.server_pid > 0) procfs_rss_kib(r.server_pid, &r.rss_before_kib, &hwm, &r.rss_anon_before_kib);

    if (plan_build(&ctx) != MP_OK) return 2;
    raise_fd_limit(ctx.nconns, r.server_pid);
    fprintf(stderr, "magpie-bench: workload %s, prefix %s, %u connections\n", report_workload_name(o->workload),
            o->prefix, ctx.nconns);
    if (plan_setup(&ctx) != MP_OK) return 2;

    /* Connect. */
    uint64_t t_conn0 = bench_mono_ns();
    if (client_threads_start(&ctx) != MP_OK) return 2;
    const char *stop = NULL;
    while (SUM(&ctx, a_settled) < ctx.nconns && !(stop = stop_reason(soft_deadline))) sleep_ns(POLL_NS);
    r.connect_s = secs(bench_mono_ns() - t_conn0);
    uint32_t ready = 0;
    for (uint32_t i = 0; i < ctx.nconns; i++) ready += atomic_load(&ctx.conns[i].state) == BC_READY;
    fprintf(stderr, "magpie-bench: %u of %u connections ready after %.2f s\n", ready, ctx.nconns, r.connect_s);

    /* Each sender owes its messages to the receivers online now. */
    for (uint32_t i = 0; i < ctx.nconns; i++) {
        bconn *c = &ctx.conns[i];
        if (c->expect_src != BC_NO_SRC && atomic_load(&c->state) == BC_READY) {
            c->counted = 1;
            ctx.conns[c->expect_src].n_receivers++;
        }
    }

    /* idle: let the server settle for 2 s with every connection up, then sample its memory. */
    if (o->workload == WL_IDLE && ready && !stop) {
        uint64_t until = bench_mono_ns() + 2000000000ull;
        while (bench_mono_ns() < until && !(stop = stop_reason(soft_deadline))) sleep_ns(POLL_NS);
        if (r.server_pid > 0) procfs_rss_kib(r.server_pid, &r.idle_rss_kib, &hwm, &r.idle_anon_kib);
        for (uint32_t i = 0; i < ctx.nconns; i++) r.idle_conns += atomic_load(&ctx.conns[i].state) == BC_READY;
        if (r.server_pid > 0 && r.idle_conns)
            fprintf(stderr, "magpie-bench: idle: %u connections, server RssAnon %.1f -> %.1f MiB (%.2f KiB each)\n",
                    r.idle_conns, (double)r.rss_anon_before_kib / 1024, (double)r.idle_anon_kib / 1024,
                    ((double)r.idle_anon_kib - (double)r.rss_anon_before_kib) / r.idle_conns);
    }

    /* Warm up, measure. */
    uint64_t cpu0 = 0, self0 = 0, t_meas0 = 0, t_meas1 = 0;
    if (!stop && ready) {
        uint64_t now = bench_mono_ns();
        ctx.meas_start_ns = now + (uint64_t)(o->warmup * 1e9);
        atomic_store(&ctx.meas_end_ns, ctx.meas_start_ns + (uint64_t)(o->duration * 1e9));
        atomic_store(&ctx.phase, PH_RUN);
        client_threads_wake(&ctx);
        while (bench_mono_ns() < ctx.meas_start_ns && !(stop = run_stop_reason(&ctx, soft_deadline))) sleep_ns(POLL_NS);
        t_meas0 = bench_mono_ns();
        if (r.server_pid > 0) procfs_cpu_ticks(r.server_pid, &cpu0);
        self0 = self_cpu_ns();
        uint64_t next_progress = t_meas0 + 1000000000ull, last_acked = SUM(&ctx, a_acked);
        uint64_t last_deliv = SUM(&ctx, a_distinct);
        while (!stop && bench_mono_ns() < atomic_load(&ctx.meas_end_ns) && !(stop = run_stop_reason(&ctx, soft_deadline))) {
            sleep_ns(POLL_NS);
            if (bench_mono_ns() >= next_progress) {
                uint64_t a = SUM(&ctx, a_acked), d = SUM(&ctx, a_distinct);
                fprintf(stderr, "magpie-bench: t=%.0fs acked %llu/s delivered %llu/s in flight %llu\n",
                        secs(bench_mono_ns() - t_meas0), (unsigned long long)(a - last_acked),
                        (unsigned long long)(d - last_deliv), (unsigned long long)SUM(&ctx, a_inflight));
                last_acked = a;
                last_deliv = d;
                next_progress += 1000000000ull;
            }
        }
        t_meas1 = bench_mono_ns();
        if (t_meas1 < atomic_load(&ctx.meas_end_ns)) atomic_store(&ctx.meas_end_ns, t_meas1); /* stopped early */
        uint64_t cpu1 = 0, self1 = self_cpu_ns();
        if (r.server_pid > 0 && procfs_cpu_ticks(r.server_pid, &cpu1) == MP_OK)
            r.server_cpu_pct = 100.0 * ((double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK)) / secs(t_meas1 - t_meas0);
        r.bench_cpu_pct = 100.0 * secs(self1 - self0) / secs(t_meas1 - t_meas0);
        if (r.server_pid > 0) procfs_rss_kib(r.server_pid, &r.rss_kib, &r.rss_peak_kib, &r.rss_anon_kib);

        /* Drain: no new SENDs; wait for the acks and deliveries still owed (also after an
         * interrupt, so the figures stay exact; a second signal exits at once). */
        atomic_store(&ctx.phase, PH_DRAIN);
        client_threads_wake(&ctx);
        uint64_t drain_end = MP_MIN(t_meas1 + (uint64_t)(o->drain * 1e9), soft_deadline);
        while (bench_mono_ns() < drain_end) {
            /* A thread may be inside send_one when the phase moves: until every thread has
             * seen PH_DRAIN, an in-flight count of 0 can still grow. */
            if (all_threads_saw(&ctx, PH_DRAIN) && SUM(&ctx, a_inflight) == 0 && SUM(&ctx, a_distinct) >= SUM(&ctx, a_expected)) break;
            if (SUM(&ctx, a_live) == 0) {
                if (!stop) stop = SERVER_GONE;
                break;
            }
            sleep_ns(POLL_NS);
        }
        r.drain_s = secs(bench_mono_ns() - t_meas1);
    }
    r.measured_s = t_meas1 > t_meas0 && t_meas0 >= ctx.meas_start_ns ? secs(t_meas1 - t_meas0) : 0;
    if (!ready && !stop) stop = "no connection could be established";
    r.aborted = stop;

    atomic_store(&ctx.phase, PH_QUIT);
    client_threads_wake(&ctx);
    client_threads_join(&ctx);

    for (uint32_t t = 0; t < o->threads; t++) {
        const bstats *s = &ctx.threads[t].st;
        bstats *m = &r.st;
        if (t == 0) {
            *m = *s;
            continue;
        }
#define ADD(f) m->f += s->f
        ADD(sent); ADD(acked); ADD(acked_in_win); ADD(ack_failed); ADD(ack_unknown);
        ADD(delivered); ADD(delivered_in_win); ADD(duplicated); ADD(unexpected);
        ADD(bad_msgkey); ADD(bad_payload); ADD(proto_errors); ADD(msgkey_checked); ADD(recvs);
        ADD(conn_ok); ADD(conn_failed); ADD(connack_failed); ADD(disconnects); ADD(kicked);
        ADD(pings); ADD(pongs);
#undef ADD
        for (int p = 0; p < PART_N; p++) {
            m->part_acked_in_win[p] += s->part_acked_in_win[p];
            m->part_delivered_in_win[p] += s->part_delivered_in_win[p];
            hist_merge(&m->part_sendack[p], &s->part_sendack[p]);
            hist_merge(&m->part_e2e[p], &s->part_e2e[p]);
        }
        for (int i = 0; i < 32; i++) {
            m->ack_fail_reason[i] += s->ack_fail_reason[i];
            m->connack_reason[i] += s->connack_reason[i];
        }
        hist_merge(&m->sendack, &s->sendack);
        hist_merge(&m->e2e, &s->e2e);
        hist_merge(&m->connect, &s->connect);
    }
    account(&ctx, &r);
    if (o->json) report_json(&ctx, &r);
    else report_text(&ctx, &r);
    fflush(stdout);

    int status = (r.aborted || r.lost || r.st.duplicated || report_errors(&r)) ? 1 : 0;
    if (r.aborted == SERVER_GONE) status = EXIT_SERVER_GONE;
    if (ctx.ack_fd >= 0) close(ctx.ack_fd);
    plan_free(&ctx);
    free(ctx.threads);
    return status;
}
