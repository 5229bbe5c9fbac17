/*
 * Checks, inside the emulated ARM machine, that the guest's monotonic clock counts executed
 * instructions when QEMU runs with `-icount shift=0` (tools/arm/run.sh --icount): QEMU then
 * advances its virtual clock, which drives the ARM generic timer and so CLOCK_MONOTONIC, by
 * 2^0 ns per guest instruction.
 *
 * It times loops whose instruction count is known (an N-iteration loop of SUBS + B.NE, 2N
 * instructions; with dotprod also SDOT + SUBS + B.NE, 3N) with clock_gettime and, independently,
 * with the PMU's retired-instruction counter through perf_event_open (user-space instructions
 * only; QEMU implements that event only in icount mode). Each loop size runs REPEATS times; one
 * line per size:
 *   icount-check LOOP N EXPECTED MIN_CLOCK_NS MAX_CLOCK_NS MIN_PMU_INSTRUCTIONS
 * (the PMU figure is -1 when the counter cannot be opened), then a verdict line. The PMU
 * counts user-space instructions only and must exceed the loop's count by at most MAX_EXCESS
 * (clock_gettime and read). The clock also counts the guest kernel's instructions: the fastest
 * run must take at least the loop's count in ns and at most 0.5 % + MAX_EXCESS more (a timer
 * tick every few million instructions costs a few thousand; a loop shorter than a tick period has
 * runs no interrupt hits, and those exceed the count by clock_gettime's instructions alone).
 * Exit status 0 when the check holds, 1 when not.
 *
 * Built by tools/arm/count.sh with the aarch64 cross compiler (-O2 -static).
 */
#define _GNU_SOURCE
#include <linux/perf_event.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Runs of each loop; the fastest is compared with the expected count. */
#define REPEATS 5
/* Instructions outside the loop allowed in a measurement besides the kernel's (clock_gettime,
   read). */
#define MAX_EXCESS 1000

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* A counter of the user-space instructions this process retires, or -1. */
static int open_counter(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_HARDWARE;
  a.config = PERF_COUNT_HW_INSTRUCTIONS;
  a.exclude_kernel = 1;
  a.exclude_hv = 1;
  return (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
}

static int64_t read_counter(int fd) {
  uint64_t v;
  if (fd < 0 || read(fd, &v, sizeof v) != (ssize_t)sizeof v) return -1;
  return (int64_t)v;
}

/* n iterations of 2 instructions. */
static void loop_subs(uint64_t n) {
  __asm__ volatile("1: subs %0, %0, #1\n\tb.ne 1b" : "+r"(n) : : "cc");
}

/* n iterations of 3 instructions, one of them SDOT (ARMv8.2 dotprod). */
static void loop_sdot(uint64_t n) {
  __asm__ volatile(".arch armv8.2-a+dotprod\n"
                   "1: sdot v0.4s, v1.16b, v2.16b\n\tsubs %0, %0, #1\n\tb.ne 1b"
                   : "+r"(n)
                   :
                   : "cc", "v0");
}

/* What the measurements found. */
struct result {
  int ok;                /* every measurement within its bounds */
  int pmu;               /* the PMU counter was read */
  int64_t pmu_excess;    /* largest excess of the PMU's count over the loop's */
  double kernel_share;   /* largest excess of the fastest clock time, relative */
};

static void measure(const char *name, void (*loop)(uint64_t), int64_t per, int fd,
                    struct result *r) {
  static const int64_t sizes[] = {100000, 1000000, 10000000};
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    int64_t n = sizes[i], expected = per * n;
    int64_t min_ns = -1, max_ns = 0, pmu = -1;
    for (int repeat = 0; repeat < REPEATS; repeat++) {
      int64_t c0 = read_counter(fd);
      int64_t t0 = now_ns();
      loop((uint64_t)n);
      int64_t t1 = now_ns();
      int64_t c1 = read_counter(fd);
      if (min_ns < 0 || t1 - t0 < min_ns) min_ns = t1 - t0;
      if (t1 - t0 > max_ns) max_ns = t1 - t0;
      if (c0 >= 0 && c1 >= 0 && (pmu < 0 || c1 - c0 < pmu)) pmu = c1 - c0;
    }
    /* The fastest run: the loop, clock_gettime, and the guest kernel's interrupts in between
       (a timer tick every few million instructions, each a few thousand). */
    if (min_ns < expected || min_ns - expected > MAX_EXCESS + expected / 200) r->ok = 0;
    double share = (double)(min_ns - expected) / (double)expected;
    if (share > r->kernel_share) r->kernel_share = share;
    if (pmu >= 0) {
      r->pmu = 1;
      if (pmu < expected || pmu - expected > MAX_EXCESS) r->ok = 0;
      if (pmu - expected > r->pmu_excess) r->pmu_excess = pmu - expected;
    }
    printf("icount-check %s %lld %lld %lld %lld %lld\n", name, (long long)n, (long long)expected,
           (long long)min_ns, (long long)max_ns, (long long)pmu);
  }
}

int main(void) {
  int fd = open_counter();
  if (fd < 0) perror("icount-check: perf_event_open (no PMU count, the clock alone is checked)");
  struct result r = {1, 0, 0, 0.0};
  measure("subs+b.ne", loop_subs, 2, fd, &r);
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) measure("sdot+subs+b.ne", loop_sdot, 3, fd, &r);
  int ok = r.ok;
  printf("icount-check %s: user-space instructions on the PMU exceed the loop's by at most %lld "
         "(%s; allowed %d), the clock by at most %.3f %% (allowed 0.5 %% + %d)\n",
         ok ? "ok" : "FAIL", (long long)(r.pmu ? r.pmu_excess : -1),
         r.pmu ? "measured" : "no PMU", MAX_EXCESS, 100 * r.kernel_share, MAX_EXCESS);
  return ok ? 0 : 1;
}
