/* The Linux side of `make bench`: the same metrics as the `bench` application (applications/bench), printed in
 * the same format, one line per metric:
 *   bench: metric=null_call unit=ns median=... min=... max=... iters=10000 runs=5 (null_call: 10x ITERS)
 * Each metric runs RUNS times; a run times `iters` operations back to back (CLOCK_MONOTONIC) and gives the mean
 * of one operation; the line has the median, minimum and maximum of the runs.
 *
 * Usage: linux_bench ITERS SPAWN_ITERS LOAD_ITERS SMALL.ko LARGE.ko   (run as PID 1's child in the initramfs)
 * Built by scripts/bench/setup_linux.sh with gcc -static -O2 -pthread. Written for this project. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS 5

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void print_line(const char *name, uint64_t *runs, unsigned iters, const char *extra) {
    qsort(runs, RUNS, sizeof runs[0], compare);
    printf("bench: metric=%s unit=ns median=%llu min=%llu max=%llu iters=%u runs=%d%s\n", name,
           (unsigned long long)runs[RUNS / 2], (unsigned long long)runs[0], (unsigned long long)runs[RUNS - 1], iters,
           RUNS, extra);
    fflush(stdout);
}

static void die(const char *what) {
    printf("bench: error: %s\n", what);
    fflush(stdout);
    exit(1);
}

static uint64_t null_call(unsigned n) {
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) syscall(SYS_getpid);
    return (now_ns() - start) / n;
}

static volatile int stop_partner;

static void pin_cpu0(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static void *partner(void *unused) {
    (void)unused;
    pin_cpu0();
    while (!stop_partner) sched_yield();
    return NULL;
}

static uint64_t context_switch(unsigned n) {
    pthread_t thread;
    stop_partner = 0;
    pin_cpu0();
    if (pthread_create(&thread, NULL, partner, NULL) != 0) die("pthread_create");
    sched_yield();
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) sched_yield();
    uint64_t elapsed = now_ns() - start;
    stop_partner = 1;
    pthread_join(thread, NULL);
    return elapsed / (2 * (uint64_t)n);
}

static uint64_t spawn(unsigned n) {
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) {
        pid_t child = fork();
        if (child < 0) die("fork");
        if (child == 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0) dup2(null, 1);
            execl("/bin/hello", "hello", "bench", (char *)NULL);
            _exit(127);
        }
        int status;
        if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("hello");
    }
    return (now_ns() - start) / n;
}

static uint64_t map_unmap(unsigned n) {
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) {
        volatile char *page =
            mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (page == MAP_FAILED) die("mmap");
        page[0] = (char)i;
        munmap((void *)page, 4096);
    }
    return (now_ns() - start) / n;
}

/* A 1-byte round trip to an echo child over a pipe pair (Linux has one kind; both channel metrics use it). */
static uint64_t round_trip(unsigned n) {
    int request[2], reply[2];
    if (pipe(request) != 0 || pipe(reply) != 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
        char byte;
        close(request[1]); /* else the child's own copy keeps the pipe open: no EOF at the end */
        close(reply[0]);
        while (read(request[0], &byte, 1) == 1)
            if (write(reply[1], &byte, 1) != 1) break;
        _exit(0);
    }
    close(request[0]);
    close(reply[1]);
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) {
        char byte = (char)i, back;
        if (write(request[1], &byte, 1) != 1 || read(reply[0], &back, 1) != 1 || back != byte) die("echo");
    }
    uint64_t elapsed = now_ns() - start;
    close(request[1]);
    close(reply[0]);
    waitpid(child, NULL, 0);
    return elapsed / n;
}

static uint64_t heap(unsigned n) {
    uint64_t state = 0x2545f4914f6cdd1dull;
    uint64_t start = now_ns();
    for (unsigned i = 0; i < n; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        volatile char *block = malloc(1 + state % 1000);
        if (!block) die("malloc");
        block[0] = (char)state;
        free((void *)block);
    }
    return (now_ns() - start) / n;
}

/* A module file in memory, with its size, relocation count (SHT_RELA entries) and module name. */
struct module {
    char *image;
    size_t size;
    unsigned long relocations;
    char name[64];
};

static void read_module(const char *path, struct module *module) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) die(path);
    module->size = (size_t)st.st_size;
    module->image = malloc(module->size);
    if (!module->image || read(fd, module->image, module->size) != (ssize_t)module->size) die(path);
    close(fd);
    const Elf64_Ehdr *header = (const Elf64_Ehdr *)module->image;
    if (module->size < sizeof *header || memcmp(header->e_ident, ELFMAG, SELFMAG) != 0 ||
        header->e_shoff + (uint64_t)header->e_shnum * sizeof(Elf64_Shdr) > module->size)
        die("not an ELF module");
    const Elf64_Shdr *sections = (const Elf64_Shdr *)(module->image + header->e_shoff);
    module->relocations = 0;
    for (unsigned i = 0; i < header->e_shnum; i++)
        if (sections[i].sh_type == SHT_RELA && sections[i].sh_entsize)
            module->relocations += sections[i].sh_size / sections[i].sh_entsize;
    const char *base = strrchr(path, '/');
    snprintf(module->name, sizeof module->name, "%s", base ? base + 1 : path);
    char *dot = strchr(module->name, '.');
    if (dot) *dot = 0;
    for (char *c = module->name; *c; c++)
        if (*c == '-') *c = '_';
}

static uint64_t load_module(const struct module *module, unsigned n) {
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t start = now_ns();
        if (syscall(SYS_init_module, module->image, module->size, "") != 0) die("init_module");
        total += now_ns() - start;
        if (syscall(SYS_delete_module, module->name, O_NONBLOCK) != 0) die("delete_module");
    }
    return total / n;
}

#define MEASURE(name, iters, call)                                    \
    do {                                                              \
        uint64_t runs[RUNS];                                          \
        for (int r = 0; r < RUNS; r++) runs[r] = call;                \
        print_line(name, runs, iters, "");                            \
    } while (0)

static void cell_load(const char *metric, const char *path, unsigned n) {
    struct module module;
    read_module(path, &module);
    uint64_t runs[RUNS];
    for (int r = 0; r < RUNS; r++) runs[r] = load_module(&module, n);
    uint64_t sorted[RUNS];
    memcpy(sorted, runs, sizeof runs);
    qsort(sorted, RUNS, sizeof sorted[0], compare);
    char extra[256];
    snprintf(extra, sizeof extra, " cell=%s bytes=%zu relocations=%lu ns_per_kib=%llu ns_per_relocation=%llu",
             module.name, module.size, module.relocations,
             (unsigned long long)(sorted[RUNS / 2] * 1024 / module.size),
             (unsigned long long)(sorted[RUNS / 2] / (module.relocations ? module.relocations : 1)));
    print_line(metric, runs, n, extra);
    free(module.image);
}

int main(int argc, char **argv) {
    if (argc != 6) die("usage: linux_bench ITERS SPAWN_ITERS LOAD_ITERS SMALL.ko LARGE.ko");
    unsigned iters = (unsigned)atoi(argv[1]), spawn_iters = (unsigned)atoi(argv[2]),
             load_iters = (unsigned)atoi(argv[3]);
    if (!iters || !spawn_iters || !load_iters) die("iteration counts must be positive");
    MEASURE("null_call", iters * 10, null_call(iters * 10)); /* 10x, as ours (applications/bench) */
    MEASURE("context_switch", iters, context_switch(iters));
    MEASURE("spawn", spawn_iters, spawn(spawn_iters));
    MEASURE("map_unmap", iters, map_unmap(iters));
    MEASURE("ipc_rendezvous", iters, round_trip(iters));
    MEASURE("ipc_buffered", iters, round_trip(iters));
    MEASURE("heap", iters, heap(iters));
    cell_load("cell_load_small", argv[4], load_iters);
    cell_load("cell_load_large", argv[5], load_iters);
    printf("bench: done (0 failed)\n");
    fflush(stdout);
    return 0;
}
