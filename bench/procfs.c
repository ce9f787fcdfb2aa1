/* procfs.c - /proc readers for the report. */
#include "procfs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mp.h"

static size_t read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

/* Inodes of the sockets listening on TCP port `port` (any local IPv4/IPv6 address), from
 * /proc/net/tcp and /proc/net/tcp6. Returns how many were stored (at most cap). */
static size_t listen_inodes(int port, unsigned long *ino, size_t cap) {
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    size_t n = 0;
    for (size_t f = 0; f < MP_ARRAY_LEN(files); f++) {
        FILE *fp = fopen(files[f], "r");
        if (!fp) continue;
        char line[512];
        while (n < cap && fgets(line, sizeof line, fp)) {
            char local[64];
            unsigned st;
            unsigned long inode;
            /* sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %63s %*s %x %*s %*s %*s %*s %*s %lu", local, &st, &inode) != 3) continue;
            const char *colon = strrchr(local, ':');
            if (st != 0x0A || !colon || strtol(colon + 1, NULL, 16) != port || !inode) continue;
            ino[n++] = inode;
        }
        fclose(fp);
    }
    return n;
}

/* The process holding one of the given socket inodes open, or 0. */
static int pid_of_inodes(const unsigned long *ino, size_t n) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0) continue;
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/fd", pid);
        DIR *fd = opendir(path); /* only our own processes (or all, as root) are readable */
        if (!fd) continue;
        struct dirent *fe;
        while (!found && (fe = readdir(fd)) != NULL) {
            char link[320], target[64];
            if (fe->d_name[0] == '.') continue;
            snprintf(link, sizeof link, "/proc/%ld/fd/%s", pid, fe->d_name);
            ssize_t len = readlink(link, target, sizeof target - 1);
            if (len <= 0) continue;
            target[len] = 0;
            unsigned long v;
            if (sscanf(target, "socket:[%lu]", &v) != 1) continue;
            for (size_t i = 0; i < n; i++)
                if (ino[i] == v) found = (int)pid;
        }
        closedir(fd);
    }
    closedir(d);
    return found;
}

int procfs_find_server(int port) {
    unsigned long ino[16];
    size_t n = listen_inodes(port, ino, MP_ARRAY_LEN(ino));
    int pid = n ? pid_of_inodes(ino, n) : 0;
    return pid ? pid : procfs_find_magpie(port);
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
