/* The kernel's floor under hostwarden's host tick, for bench/hostonly.py (issue 20).
 *
 * Once per interval, on absolute deadlines, this reads the nine /proc files hostwarden's host
 * collector reads every tick, the way it reads them: descriptors opened once and kept, each
 * file read with pread from offset 0 to its end, which for the six files the kernel renders as
 * one record (stat, meminfo, loadavg, pressure) is the first read shorter than asked and for
 * the others a read that returns 0 (sys/procfile.rs). Nothing else: no parsing, no
 * statfs, no rules, no runtime. Its CPU per tick, measured in the same window as the agent's,
 * is what any agent reading the same files once a tick on this machine pays; the agent's own
 * work is the difference.
 *
 * usage: procfloor INTERVAL_MS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static const struct {
    const char *path;
    int one_record;
} FILES[] = {
    {"/proc/stat", 1},         {"/proc/meminfo", 1},         {"/proc/loadavg", 1},
    {"/proc/vmstat", 0},       {"/proc/pressure/cpu", 1},    {"/proc/pressure/memory", 1},
    {"/proc/pressure/io", 1},  {"/proc/diskstats", 0},       {"/proc/self/net/dev", 0},
};
#define NFILES (sizeof FILES / sizeof FILES[0])

static char buf[16384];

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 1000;
    if (ms <= 0) {
        fprintf(stderr, "procfloor: interval must be a positive number of milliseconds\n");
        return 2;
    }
    int fds[NFILES];
    for (size_t i = 0; i < NFILES; i++) {
        /* A file this kernel lacks (pressure without PSI) is skipped, as the agent skips it. */
        fds[i] = open(FILES[i].path, O_RDONLY | O_CLOEXEC);
    }
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    for (;;) {
        due.tv_nsec += (ms % 1000) * 1000000L;
        due.tv_sec += ms / 1000 + due.tv_nsec / 1000000000L;
        due.tv_nsec %= 1000000000L;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) == EINTR) {
        }
        for (size_t i = 0; i < NFILES; i++) {
            if (fds[i] < 0) {
                continue;
            }
            off_t at = 0;
            ssize_t n;
            while ((n = pread(fds[i], buf, sizeof buf, at)) > 0) {
                at += n;
                if (FILES[i].one_record && (size_t)n < sizeof buf) {
                    break;
                }
            }
        }
    }
}
