/*
 * host_reader: the C floor for one full host sample of hostmeter.
 *
 * Reads the files hostmeter's host collectors read each sample (given with -f, in the order the
 * collectors run) and calls statvfs(3) on the filesystems its filesystem collector meters (-s),
 * ITERATIONS times per way of reading, and prints one JSON document with the thread CPU time
 * (CLOCK_THREAD_CPUTIME_ID) and the wall time of one full pass:
 *
 *   pread_kept      every file opened once, then re-read with pread(2) from offset 0 until a
 *                   read returns 0 (end of file): the floor hostmeter's collectors are held to;
 *   pread_kept_once the same, but a read that does not fill the buffer is taken as the whole
 *                   file (procfs returns a whole seq_file in one read when it fits), saving the
 *                   read that returns 0;
 *   open_read_close open(2), read(2) to end of file and close(2) per file per pass (what a reader
 *                   without kept descriptors pays).
 *
 * Nothing is parsed: the floor is the kernel's cost of producing the text plus the system calls.
 * Built and run by scripts/hostmeter_tools/bench_peers.py (gcc -O2, in a temporary folder).
 *
 * Usage: host_reader -n ITERATIONS [-w WARMUP] [-f FILE]... [-s PATH]...
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 64
#define MAX_ITERATIONS 10000000L
#define BUFFER_SIZE (1 << 20)

static const char *files[MAX_FILES];
static const char *filesystems[MAX_FILES];
static int descriptors[MAX_FILES];
static int file_count, filesystem_count;
static char buffer[BUFFER_SIZE];
static long total_bytes;

enum mode { PREAD_KEPT, PREAD_KEPT_ONCE, OPEN_READ_CLOSE, MODE_COUNT };
static const char *mode_names[MODE_COUNT] = {"pread_kept", "pread_kept_once", "open_read_close"};

static void fail(const char *what, const char *path) {
    fprintf(stderr, "host_reader: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static long long nanoseconds(clockid_t clock) {
    struct timespec now;
    clock_gettime(clock, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Reads descriptor to end of file from offset 0 with pread; with `once`, a short read ends it. */
static void read_kept(int descriptor, const char *path, int once) {
    off_t offset = 0;
    for (;;) {
        ssize_t count = pread(descriptor, buffer, BUFFER_SIZE, offset);
        if (count < 0) {
            if (errno == EINTR) continue;
            fail("pread", path);
        }
        if (count == 0) break;
        offset += count;
        total_bytes += count;
        if (once && count < BUFFER_SIZE) break;
    }
}

static void read_fresh(const char *path) {
    int descriptor = open(path, O_RDONLY | O_CLOEXEC);
    if (descriptor < 0) fail("open", path);
    for (;;) {
        ssize_t count = read(descriptor, buffer, BUFFER_SIZE);
        if (count < 0) {
            if (errno == EINTR) continue;
            fail("read", path);
        }
        if (count == 0) break;
        total_bytes += count;
    }
    close(descriptor);
}

static void one_pass(enum mode mode) {
    for (int index = 0; index < file_count; index++) {
        if (mode == OPEN_READ_CLOSE) read_fresh(files[index]);
        else read_kept(descriptors[index], files[index], mode == PREAD_KEPT_ONCE);
    }
    for (int index = 0; index < filesystem_count; index++) {
        struct statvfs info;
        if (statvfs(filesystems[index], &info) != 0) fail("statvfs", filesystems[index]);
    }
}

static int compare(const void *left, const void *right) {
    long long a = *(const long long *)left, b = *(const long long *)right;
    return (a > b) - (a < b);
}

/* The value at fraction p of the sorted values, nearest rank (as the Python report's percentile). */
static double at(const long long *sorted, long count, double p) {
    long index = (long)((count - 1) * p + 0.5);
    return sorted[index] / 1000.0;
}

static void print_distribution(const char *name, long long *values, long count, int last) {
    qsort(values, (size_t)count, sizeof *values, compare);
    printf("    \"%s\": {\"median_us\": %.3f, \"p90_us\": %.3f, \"p99_us\": %.3f, \"min_us\": %.3f}%s\n", name,
           at(values, count, 0.5), at(values, count, 0.9), at(values, count, 0.99), values[0] / 1000.0,
           last ? "" : ",");
}

int main(int argc, char **argv) {
    long iterations = 0, warmup = 100;
    int option;
    while ((option = getopt(argc, argv, "n:w:f:s:")) != -1) {
        switch (option) {
        case 'n': iterations = strtol(optarg, NULL, 10); break;
        case 'w': warmup = strtol(optarg, NULL, 10); break;
        case 'f':
            if (file_count == MAX_FILES) { fprintf(stderr, "host_reader: too many files\n"); return 2; }
            files[file_count++] = optarg;
            break;
        case 's':
            if (filesystem_count == MAX_FILES) { fprintf(stderr, "host_reader: too many filesystems\n"); return 2; }
            filesystems[filesystem_count++] = optarg;
            break;
        default:
            fprintf(stderr, "usage: host_reader -n ITERATIONS [-w WARMUP] [-f FILE]... [-s PATH]...\n");
            return 2;
        }
    }
    if (iterations < 1 || iterations > MAX_ITERATIONS || warmup < 0 || warmup > MAX_ITERATIONS || file_count == 0) {
        fprintf(stderr, "host_reader: -n 1…%ld and at least one -f are needed\n", MAX_ITERATIONS);
        return 2;
    }
    for (int index = 0; index < file_count; index++) {
        descriptors[index] = open(files[index], O_RDONLY | O_CLOEXEC);
        if (descriptors[index] < 0) fail("open", files[index]);
    }
    long long *cpu = malloc(sizeof(long long) * (size_t)iterations);
    long long *wall = malloc(sizeof(long long) * (size_t)iterations);
    if (cpu == NULL || wall == NULL) { fprintf(stderr, "host_reader: out of memory\n"); return 1; }

    /* Paths are the caller's: only counts are printed, so no path needs JSON escaping. */
    printf("{\n  \"iterations\": %ld,\n  \"warmup\": %ld,\n  \"files\": %d,\n  \"statvfs\": %d,\n  \"modes\": {\n",
           iterations, warmup, file_count, filesystem_count);
    for (int mode = 0; mode < MODE_COUNT; mode++) {
        for (long pass = 0; pass < warmup; pass++) one_pass((enum mode)mode);
        total_bytes = 0;
        for (long pass = 0; pass < iterations; pass++) {
            long long cpu_start = nanoseconds(CLOCK_THREAD_CPUTIME_ID), wall_start = nanoseconds(CLOCK_MONOTONIC);
            one_pass((enum mode)mode);
            cpu[pass] = nanoseconds(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
            wall[pass] = nanoseconds(CLOCK_MONOTONIC) - wall_start;
        }
        printf("  \"%s\": {\n    \"bytes_per_pass\": %ld,\n", mode_names[mode], total_bytes / iterations);
        print_distribution("cpu", cpu, iterations, 0);
        print_distribution("wall", wall, iterations, 1);
        printf("  }%s\n", mode + 1 < MODE_COUNT ? "," : "");
    }
    printf("  }\n}\n");
    for (int index = 0; index < file_count; index++) close(descriptors[index]);
    free(cpu);
    free(wall);
    return 0;
}
