/* procfs.c - /proc readers for the report. */
#include "procfs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mp.h"

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

int procfs_find_magpie(int port) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int first = 0, best = 0;
    char want[16];
    snprintf(want, sizeof want, ":%d", port);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64], buf[4096];
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        if (!read_file(path, buf, sizeof buf) || strcmp(buf, "magpie\n") != 0) continue;
        if (!first) first = (int)pid;
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        size_t n = read_file(path, buf, sizeof buf);
        for (size_t i = 0; i < n; i++)
            if (!buf[i]) buf[i] = ' ';
        if (!best && memmem(buf, n, want, strlen(want))) best = (int)pid;
    }
    closedir(d);
    return best ? best : first;
}

int procfs_rss_kib(int pid, uint64_t *rss, uint64_t *hwm, uint64_t *anon) {
    char path[64], buf[8192];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    if (!read_file(path, buf, sizeof buf)) return MP_ENOTFOUND;
    const char *r = strstr(buf, "VmRSS:"), *h = strstr(buf, "VmHWM:"), *a = strstr(buf, "RssAnon:");
    if (!r) return MP_ENOTFOUND;
    *rss = strtoull(r + 6, NULL, 10);
    *hwm = h ? strtoull(h + 6, NULL, 10) : *rss;
    *anon = a ? strtoull(a + 8, NULL, 10) : 0;
    return MP_OK;
}

int procfs_cpu_ticks(int pid, uint64_t *ticks) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (!read_file(path, buf, sizeof buf)) return MP_ENOTFOUND;
    const char *p = strrchr(buf, ')'); /* the name may contain spaces */
    if (!p) return MP_ENOTFOUND;
    /* After ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return MP_ENOTFOUND;
    *ticks = ut + st;
    return MP_OK;
}
