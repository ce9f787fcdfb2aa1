/* report.c - text and JSON renderings of a bench_result. */
#include "report.h"

#include <stdio.h>

const char *report_workload_name(int wl) {
    switch (wl) {
    case WL_SEND: return "send";
    case WL_FANOUT: return "fanout";
    case WL_PERSON: return "person";
    case WL_IDLE: return "idle";
    case WL_MIXED: return "mixed";
    default: return "?";
    }
}

uint64_t report_errors(const bench_result *r) {
    const bstats *s = &r->st;
    return s->conn_failed + s->ack_failed + s->ack_unknown + r->unacked + s->bad_msgkey + s->bad_payload +
           s->proto_errors + s->disconnects + s->unexpected + r->delivered_unacked;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static double per_s(uint64_t n, double s) { return s > 0 ? (double)n / s : 0; }

static void params(const bench_ctx *ctx, char *buf, size_t cap) {
    const bench_opts *o = &ctx->o;
    int n = 0;
    switch (o->workload) {
    case WL_SEND: n = snprintf(buf, cap, "groups=%u members=%u", o->groups, o->members); break;
    case WL_FANOUT: n = snprintf(buf, cap, "members=%u online=%u", o->members, o->online); break;
    case WL_PERSON: n = snprintf(buf, cap, "pairs=%u", o->pairs); break;
    case WL_IDLE: n = snprintf(buf, cap, "conns=%u", o->conns); break;
    case WL_MIXED:
        n = snprintf(buf, cap, "pairs=%u groups=%ux%u big=%u online=%u", o->pairs, o->groups, o->group_size, o->members,
                     o->online);
        break;
    }
    char rate[32] = "closed-loop";
    if (o->rate > 0) snprintf(rate, sizeof rate, "%.0f/s", o->rate);
    snprintf(buf + n, cap - (size_t)n,
             " window=%u rate=%s ping=%gs payload=%uB threads=%u sources=%u token-auth=%s verify=1/%u prefix=%s", o->window,
             rate, o->ping_interval, o->payload_size, o->threads, o->sources, o->token_auth ? "yes" : "no",
             o->verify_every, o->prefix);
}

static void lat_line(const char *name, const hist *h) {
    if (!h->count) {
        printf("  %-13s n/a\n", name);
        return;
    }
    printf("  %-13s p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (n=%llu)\n", name, ms(hist_quantile(h, 0.5)),
           ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)), ms(h->max), (unsigned long long)h->count);
}

static void reasons(const char *what, const uint64_t *r) {
    for (int i = 0; i < 32; i++)
        if (r[i]) printf("      %s reason %d%s: %llu\n", what, i, i == 31 ? "+" : "", (unsigned long long)r[i]);
}

void report_text(const bench_ctx *ctx, const bench_result *r) {
    const bench_opts *o = &ctx->o;
    const bstats *s = &r->st;
    char p[384];
    params(ctx, p, sizeof p);
    printf("magpie-bench: workload %s%s%s\n", report_workload_name(o->workload), r->aborted ? "  ABORTED: " : "",
           r->aborted ? r->aborted : "");
    printf("  parameters   %s\n", p);
    printf("  server       tcp %s, api %s\n", o->addr, o->api);
    printf("  connections  %llu ok, %llu failed of %u (all settled in %.2f s; CONNECT->CONNACK p50 %.2f ms p99 %.2f ms)\n",
           (unsigned long long)s->conn_ok, (unsigned long long)s->conn_failed, ctx->nconns, r->connect_s,
           ms(hist_quantile(&s->connect, 0.5)), ms(hist_quantile(&s->connect, 0.99)));
    printf("  duration     %.2f s measured after %.1f s warm-up; drain took %.2f s\n", r->measured_s, o->warmup,
           r->drain_s);
    printf("  sends/s      %.1f  (acked in window %llu; whole run: sent %llu, acked %llu, refused %llu, unacked %llu)\n",
           per_s(s->acked_in_win, r->measured_s), (unsigned long long)s->acked_in_win, (unsigned long long)s->sent,
           (unsigned long long)s->acked, (unsigned long long)s->ack_failed, (unsigned long long)r->unacked);
    printf("  deliveries/s %.1f  (in window %llu; whole run: %llu distinct of %llu owed)\n",
           per_s(s->delivered_in_win, r->measured_s), (unsigned long long)s->delivered_in_win,
           (unsigned long long)s->delivered, (unsigned long long)r->expected);
    lat_line("SENDACK ms", &s->sendack);
    lat_line("end-to-end ms", &s->e2e);
    if (o->workload == WL_MIXED) {
        static const char *names[PART_N] = {"person pairs", "small groups", "big group"};
        for (int i = 0; i < PART_N; i++) {
            printf("  part %-12s sends/s %.1f  deliveries/s %.1f  lost %llu\n", names[i],
                   per_s(s->part_acked_in_win[i], r->measured_s), per_s(s->part_delivered_in_win[i], r->measured_s),
                   (unsigned long long)r->part_lost[i]);
            lat_line("  SENDACK ms", &s->part_sendack[i]);
            if (i != PART_GROUPS) lat_line("  e2e ms", &s->part_e2e[i]);
        }
    }
    printf("  pings        %llu sent, %llu PONGs\n", (unsigned long long)s->pings, (unsigned long long)s->pongs);
    if (s->recvs)
        printf("  msgKey       checked on %llu of %llu RECVs\n", (unsigned long long)s->msgkey_checked,
               (unsigned long long)s->recvs);
    if (o->workload == WL_IDLE && r->server_pid > 0 && r->idle_conns)
        printf("  idle memory  %u connections up and idle 2 s: server RssAnon %.1f -> %.1f MiB, VmRSS %.1f -> %.1f MiB;\n"
               "               %.2f KiB anonymous memory per idle connection\n",
               r->idle_conns, (double)r->rss_anon_before_kib / 1024, (double)r->idle_anon_kib / 1024,
               (double)r->rss_before_kib / 1024, (double)r->idle_rss_kib / 1024,
               ((double)r->idle_anon_kib - (double)r->rss_anon_before_kib) / r->idle_conns);
    uint64_t errors = report_errors(r);
    printf("  lost %llu  duplicated %llu  errors %llu\n", (unsigned long long)r->lost, (unsigned long long)s->duplicated,
           (unsigned long long)errors);
    if (errors) {
        struct { const char *name; uint64_t v; } e[] = {
            {"connect failed", s->conn_failed},     {"  of which CONNACK refused", s->connack_failed},
            {"SENDACK not success", s->ack_failed}, {"SENDACK unknown/duplicate", s->ack_unknown},
            {"SEND never acknowledged", r->unacked}, {"RECV bad msgKey", s->bad_msgkey},
            {"RECV bad payload", s->bad_payload},   {"protocol errors", s->proto_errors},
            {"disconnects", s->disconnects},        {"  of which DISCONNECT from server", s->kicked},
            {"RECV unexpected", s->unexpected},     {"RECV of a SEND not acked", r->delivered_unacked},
        };
        for (size_t i = 0; i < MP_ARRAY_LEN(e); i++)
            if (e[i].v) printf("    %-34s %llu\n", e[i].name, (unsigned long long)e[i].v);
        reasons("SENDACK", s->ack_fail_reason);
        reasons("CONNACK", s->connack_reason);
        if (r->receivers_lost)
            printf("    (%llu receivers disconnected early are left out of 'lost')\n",
                   (unsigned long long)r->receivers_lost);
    }
    if (r->server_pid > 0 && r->rss_kib)
        printf("  server       pid %d: RSS %.1f MiB at end of load, of which anonymous %.1f MiB (%.1f MiB before\n"
               "               connecting, peak %.1f MiB; the rest is file-backed, e.g. LMDB pages), CPU %.0f%% (100%% = one core)\n",
               r->server_pid, (double)r->rss_kib / 1024, (double)r->rss_anon_kib / 1024, (double)r->rss_before_kib / 1024,
               (double)r->rss_peak_kib / 1024, r->server_cpu_pct);
    else if (o->server_pid)
        printf("  server       RSS unknown (no server process found)\n");
    printf("  bench        CPU %.0f%% (100%% = one core)\n", r->bench_cpu_pct);
}

static void json_lat(const char *name, const hist *h) {
    if (!h->count) {
        printf(",\"%s\":null", name);
        return;
    }
    printf(",\"%s\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"n\":%llu}", name, ms(hist_quantile(h, 0.5)),
           ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)), ms(h->max), (unsigned long long)h->count);
}

void report_json(const bench_ctx *ctx, const bench_result *r) {
    const bench_opts *o = &ctx->o;
    const bstats *s = &r->st;
    printf("{\"workload\":\"%s\",\"groups\":%u,\"members\":%u,\"online\":%u,\"pairs\":%u,\"window\":%u,"
           "\"payload_size\":%u,\"threads\":%u,\"sources\":%u,\"token_auth\":%s,\"prefix\":\"%s\"",
           report_workload_name(o->workload), o->groups, o->members, o->online, o->pairs, o->window, o->payload_size,
           o->threads, o->sources, o->token_auth ? "true" : "false", o->prefix);
    printf(",\"connections\":%u,\"conn_ok\":%llu,\"conn_failed\":%llu,\"connect_s\":%.3f", ctx->nconns,
           (unsigned long long)s->conn_ok, (unsigned long long)s->conn_failed, r->connect_s);
    printf(",\"duration_s\":%.3f,\"sent\":%llu,\"acked\":%llu,\"acked_in_window\":%llu,\"sends_per_s\":%.1f", r->measured_s,
           (unsigned long long)s->sent, (unsigned long long)s->acked, (unsigned long long)s->acked_in_win,
           per_s(s->acked_in_win, r->measured_s));
    printf(",\"deliveries\":%llu,\"deliveries_in_window\":%llu,\"deliveries_per_s\":%.1f,\"deliveries_owed\":%llu",
           (unsigned long long)s->delivered, (unsigned long long)s->delivered_in_win,
           per_s(s->delivered_in_win, r->measured_s), (unsigned long long)r->expected);
    json_lat("sendack_ms", &s->sendack);
    json_lat("e2e_ms", &s->e2e);
    printf(",\"rate\":%.1f,\"pings\":%llu,\"pongs\":%llu", o->rate, (unsigned long long)s->pings,
           (unsigned long long)s->pongs);
    if (o->workload == WL_MIXED) {
        static const char *names[PART_N] = {"person", "groups", "big"};
        printf(",\"parts\":{");
        for (int i = 0; i < PART_N; i++) {
            printf("%s\"%s\":{\"sends_per_s\":%.1f,\"deliveries_per_s\":%.1f,\"lost\":%llu", i ? "," : "", names[i],
                   per_s(s->part_acked_in_win[i], r->measured_s), per_s(s->part_delivered_in_win[i], r->measured_s),
                   (unsigned long long)r->part_lost[i]);
            json_lat("sendack_ms", &s->part_sendack[i]);
            json_lat("e2e_ms", &s->part_e2e[i]);
            printf("}");
        }
        printf("}");
    }
    if (o->workload == WL_IDLE && r->server_pid > 0 && r->idle_conns)
        printf(",\"idle_conns\":%u,\"idle_rss_anon_before_kib\":%llu,\"idle_rss_anon_kib\":%llu,\"idle_rss_before_kib\":%llu,"
               "\"idle_rss_kib\":%llu,\"anon_kib_per_idle_conn\":%.3f",
               r->idle_conns, (unsigned long long)r->rss_anon_before_kib, (unsigned long long)r->idle_anon_kib,
               (unsigned long long)r->rss_before_kib, (unsigned long long)r->idle_rss_kib,
               ((double)r->idle_anon_kib - (double)r->rss_anon_before_kib) / r->idle_conns);
    printf(",\"lost\":%llu,\"duplicated\":%llu,\"errors\":%llu", (unsigned long long)r->lost,
           (unsigned long long)s->duplicated, (unsigned long long)report_errors(r));
    printf(",\"recvs\":%llu,\"msgkey_checked\":%llu", (unsigned long long)s->recvs,
           (unsigned long long)s->msgkey_checked);
    printf(",\"error_detail\":{\"conn_failed\":%llu,\"connack_refused\":%llu,\"sendack_failed\":%llu,"
           "\"sendack_unknown\":%llu,\"unacked\":%llu,\"bad_msgkey\":%llu,\"bad_payload\":%llu,\"proto_errors\":%llu,"
           "\"disconnects\":%llu,\"kicked\":%llu,\"unexpected\":%llu,\"delivered_unacked\":%llu}",
           (unsigned long long)s->conn_failed, (unsigned long long)s->connack_failed, (unsigned long long)s->ack_failed,
           (unsigned long long)s->ack_unknown, (unsigned long long)r->unacked, (unsigned long long)s->bad_msgkey,
           (unsigned long long)s->bad_payload, (unsigned long long)s->proto_errors, (unsigned long long)s->disconnects,
           (unsigned long long)s->kicked, (unsigned long long)s->unexpected, (unsigned long long)r->delivered_unacked);
    if (r->server_pid > 0 && r->rss_kib)
        printf(",\"server_pid\":%d,\"server_rss_kib\":%llu,\"server_rss_anon_kib\":%llu,\"server_rss_before_kib\":%llu,"
               "\"server_rss_peak_kib\":%llu,\"server_cpu_pct\":%.1f",
               r->server_pid, (unsigned long long)r->rss_kib, (unsigned long long)r->rss_anon_kib,
               (unsigned long long)r->rss_before_kib, (unsigned long long)r->rss_peak_kib, r->server_cpu_pct);
    else
        printf(",\"server_pid\":null,\"server_rss_kib\":null");
    printf(",\"bench_cpu_pct\":%.1f", r->bench_cpu_pct);
    if (r->aborted) printf(",\"aborted\":\"%s\"", r->aborted);
    else printf(",\"aborted\":null");
    printf("}\n");
}
