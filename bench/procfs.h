/* procfs.h - facts about the server process from /proc (Linux): pid lookup, RSS, CPU time. */
#ifndef BENCH_PROCFS_H
#define BENCH_PROCFS_H

#include <stdint.h>

/* A process whose name (/proc/PID/comm) is "magpie". With several, the first whose command
 * line mentions ":port" is preferred. 0 if none. */
int procfs_find_magpie(int port);
/* The process listening on TCP port `port` (found through /proc/net/tcp{,6} and the socket
 * inodes in /proc/PID/fd, so it works for any server, Magpie or WuKongIM); if none is visible,
 * procfs_find_magpie(port). 0 if neither finds one. */
int procfs_find_server(int port);
/* VmRSS, VmHWM (peak) and RssAnon (heap, stacks: RSS without mapped files such as the
 * LMDB data file) in KiB. MP_OK or MP_ENOTFOUND. */
int procfs_rss_kib(int pid, uint64_t *rss, uint64_t *hwm, uint64_t *anon);
/* utime + stime of the process in clock ticks (sysconf(_SC_CLK_TCK) per second). */
int procfs_cpu_ticks(int pid, uint64_t *ticks);

#endif
