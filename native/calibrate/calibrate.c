// SPDX-License-Identifier: MIT
/*
 * svasim-calibrate: time, from user space on this host, the operations whose costs
 * svasim's cost table models. Prints one JSON object on stdout: the TSC frequency and,
 * per measurement, the per-operation time in nanoseconds of each repeated run (or why
 * it cannot be measured here). The caller pins the process to one CPU before it starts
 * (the affinity is inherited by the thread and the child process created below).
 *
 * Measured: XSAVE/XSAVEOPT/XSAVEC/XRSTOR of the enabled user state, context switches by
 * pipe ping-pong between threads and between processes, a #GP and its SIGSEGV handler, a
 * signal and a null system call, an uncached load, LOCK XADD, first touch of a page,
 * WRGSBASE, WRPKRU, and the AMX tile data in XSAVEC/XRSTOR.
 *
 * Loops are timed with CLOCK_MONOTONIC_RAW; the single uncached load is timed with
 * RDTSC between LFENCEs and converted to nanoseconds with the TSC frequency measured
 * against CLOCK_MONOTONIC_RAW.
 *
 * Build: gcc -O2 -pthread -o svasim-calibrate calibrate.c
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_RUNS 64
#define XFEATURE_MASK_XTILEDATA (1ULL << 18)
#ifndef HWCAP2_FSGSBASE
#define HWCAP2_FSGSBASE (1 << 1)
#endif

static int runs = 11;
static long scale = 10; /* iterations multiplier: 2 with --quick */
static int first_output = 1;

/* ---- clocks ---------------------------------------------------------------------- */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* RDTSC fenced on both sides, so the load between two reads is what is timed. */
static inline uint64_t rdtsc_fenced(void)
{
	uint32_t lo, hi;

	asm volatile("lfence\n\trdtsc\n\tlfence" : "=a"(lo), "=d"(hi)::"memory");
	return ((uint64_t)hi << 32) | lo;
}

static double tsc_hz;

static void measure_tsc(void)
{
	uint64_t t0, c0, t1, c1;
	uint64_t span = scale > 2 ? 100000000ULL : 20000000ULL; /* 100 ms, 20 ms quick */

	t0 = now_ns();
	c0 = rdtsc_fenced();
	do
		t1 = now_ns();
	while (t1 - t0 < span);
	c1 = rdtsc_fenced();
	tsc_hz = (double)(c1 - c0) * 1e9 / (double)(t1 - t0);
}

/* ---- output ---------------------------------------------------------------------- */

static void emit_samples(const char *name, const double *ns, int n, const char *note)
{
	printf("%s\n    \"%s\": {\"ns\": [", first_output ? "" : ",", name);
	for (int i = 0; i < n; i++)
		printf("%s%.3f", i ? ", " : "", ns[i]);
	printf("]");
	if (note)
		printf(", \"note\": \"%s\"", note);
	printf("}");
	first_output = 0;
}

static void emit_unavailable(const char *name, const char *why)
{
	printf("%s\n    \"%s\": {\"unavailable\": \"%s\"}", first_output ? "" : ",", name, why);
	first_output = 0;
}

/* ---- CPUID and XSAVE ------------------------------------------------------------- */

static void cpuid_count(unsigned int leaf, unsigned int sub, unsigned int r[4])
{
	__cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static inline void xsave(void *buf, uint64_t mask)
{
	asm volatile("xsave64 (%0)" ::"r"(buf), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
}

static inline void xsaveopt(void *buf, uint64_t mask)
{
	asm volatile("xsaveopt64 (%0)" ::"r"(buf), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
}

static inline void xsavec(void *buf, uint64_t mask)
{
	asm volatile("xsavec64 (%0)" ::"r"(buf), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
}

static inline void xrstor(void *buf, uint64_t mask)
{
	asm volatile("xrstor64 (%0)" ::"r"(buf), "a"((uint32_t)mask), "d"((uint32_t)(mask >> 32)) : "memory");
}

enum xop { OP_XSAVE, OP_XSAVEOPT, OP_XSAVEC, OP_XRSTOR_STD, OP_XRSTOR_COMPACT };

/*
 * Make the SSE, AVX and AVX-512 registers hold non-init values, so the init
 * optimization of XSAVEOPT/XSAVEC/XSAVES cannot skip them (a thread that used SIMD).
 * PKRU and the other components keep what they hold.
 */
static void dirty_vector_state(void *buf, uint64_t mask)
{
	unsigned int r[4];
	uint8_t *b = buf;
	uint64_t dirty = 0;

	xsave(buf, mask);
	memset(b + 160, 0x5a, 256); /* XMM0-15 in the legacy region */
	dirty |= mask & (1ULL << 1);
	for (int i = 2; i <= 7; i++) {
		if (i == 3 || i == 4 || !(mask & (1ULL << i)))
			continue; /* MPX bounds are not touched */
		cpuid_count(0xd, i, r);
		memset(b + r[1], 0x5a + i, r[0]);
		dirty |= 1ULL << i;
	}
	*(uint64_t *)(b + 512) |= dirty; /* XSTATE_BV */
	xrstor(buf, mask);
}

static void time_xop(enum xop op, void *buf, uint64_t mask, double *ns)
{
	long n = 2000 * scale;

	for (int r = 0; r < runs; r++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < n; i++) {
			switch (op) {
			case OP_XSAVE:
				xsave(buf, mask);
				break;
			case OP_XSAVEOPT:
				xsaveopt(buf, mask);
				break;
			case OP_XSAVEC:
				xsavec(buf, mask);
				break;
			case OP_XRSTOR_STD:
			case OP_XRSTOR_COMPACT:
				xrstor(buf, mask);
				break;
			}
		}
		ns[r] = (double)(now_ns() - t0) / (double)n;
	}
}

static void measure_xsave(void)
{
	unsigned int r[4];
	double ns[MAX_RUNS];
	uint64_t xcr0, mask;
	size_t size;
	void *orig, *buf;

	cpuid_count(1, 0, r);
	if (!(r[2] & (1u << 26)) || !(r[2] & (1u << 27))) {
		const char *why = !(r[2] & (1u << 26)) ? "CPUID.1:ECX.XSAVE[26] is clear"
						       : "CPUID.1:ECX.OSXSAVE[27] is clear: the OS has not enabled XSAVE";
		emit_unavailable("xsave", why);
		emit_unavailable("xsaveopt", why);
		emit_unavailable("xsavec", why);
		emit_unavailable("xrstor", why);
		emit_unavailable("xrstor_compacted", why);
		return;
	}
	xcr0 = xgetbv0();
	/* Linux arms XFD for AMX tile data until a thread asks for it: leave it out. */
	mask = xcr0 & ~XFEATURE_MASK_XTILEDATA;
	cpuid_count(0xd, 0, r);
	size = (r[2] + 63) & ~(size_t)63; /* ECX: the largest standard-format area */
	orig = aligned_alloc(64, size);
	buf = aligned_alloc(64, size);
	if (!orig || !buf) {
		emit_unavailable("xsave", "cannot allocate an XSAVE area");
		return;
	}
	memset(orig, 0, size);
	memset(buf, 0, size);
	xsave(orig, mask);
	dirty_vector_state(buf, mask);

	time_xop(OP_XSAVE, buf, mask, ns);
	emit_samples("xsave", ns, runs, NULL);
	time_xop(OP_XRSTOR_STD, buf, mask, ns);
	emit_samples("xrstor", ns, runs, NULL);

	cpuid_count(0xd, 1, r);
	if (r[0] & 1) {
		/* Back to back without a change in between: the modified optimization skips. */
		xrstor(buf, mask);
		time_xop(OP_XSAVEOPT, buf, mask, ns);
		emit_samples("xsaveopt", ns, runs, NULL);
	} else {
		emit_unavailable("xsaveopt", "CPUID.(EAX=0DH,ECX=1):EAX[0] (XSAVEOPT) is clear");
	}
	if (r[0] & 2) {
		memset(buf, 0, size);
		xsavec(buf, mask);
		time_xop(OP_XSAVEC, buf, mask, ns);
		emit_samples("xsavec", ns, runs, NULL);
		/* XRSTOR takes the compacted format XSAVEC wrote (XCOMP_BV[63] set). */
		time_xop(OP_XRSTOR_COMPACT, buf, mask, ns);
		emit_samples("xrstor_compacted", ns, runs, NULL);
	} else {
		emit_unavailable("xsavec", "CPUID.(EAX=0DH,ECX=1):EAX[1] (XSAVEC) is clear");
		emit_unavailable("xrstor_compacted", "CPUID.(EAX=0DH,ECX=1):EAX[1] (XSAVEC) is clear");
	}
	printf(",\n    \"xsaves_supported\": {\"flag\": %s}", (r[0] & 8) ? "true" : "false");
	printf(",\n    \"xstate\": {\"xcr0\": \"0x%llx\", \"mask\": \"0x%llx\"}", (unsigned long long)xcr0,
	       (unsigned long long)mask);
	xrstor(orig, mask);
	free(orig);
	free(buf);
}

/*
 * AMX tile data (XSAVE component 18) once a thread uses it: permission from the kernel
 * (arch_prctl(ARCH_REQ_XCOMP_PERM)), the first tile load taking the #NM that grows the
 * thread's fpstate, then XSAVEC/XRSTOR with and without the component, all eight tiles
 * loaded with non-zero data. Run last: the thread keeps the larger fpstate afterwards.
 */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static void measure_tiles(void)
{
	static uint8_t cfg[64] __attribute__((aligned(64)));
	static uint8_t data[1024] __attribute__((aligned(64)));
	double ns[MAX_RUNS];
	unsigned int r[4];
	uint64_t xcr0, with, without;
	size_t size;
	void *full, *part;

	cpuid_count(7, 0, r);
	if (!(r[3] & (1u << 24))) {
		emit_unavailable("tiles", "CPUID.(EAX=07H,ECX=0):EDX.AMX-TILE[24] is clear");
		return;
	}
	cpuid_count(1, 0, r);
	if (!(r[2] & (1u << 27))) {
		emit_unavailable("tiles", "CPUID.1:ECX.OSXSAVE[27] is clear");
		return;
	}
	xcr0 = xgetbv0();
	if ((xcr0 & (3ULL << 17)) != (3ULL << 17)) {
		emit_unavailable("tiles", "XCR0 does not enable XTILECFG and XTILEDATA (bits 17, 18)");
		return;
	}
	cpuid_count(0xd, 1, r);
	if (!(r[0] & 2)) {
		emit_unavailable("tiles", "CPUID.(EAX=0DH,ECX=1):EAX[1] (XSAVEC) is clear");
		return;
	}
	if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)) {
		emit_unavailable("tiles", "arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) was refused");
		return;
	}
	cpuid_count(0xd, 0, r);
	size = (r[2] + 63) & ~(size_t)63;
	full = aligned_alloc(64, size);
	part = aligned_alloc(64, size);
	if (!full || !part) {
		emit_unavailable("tiles", "cannot allocate an XSAVE area");
		return;
	}
	memset(full, 0, size);
	memset(part, 0, size);
	memset(data, 0x3c, sizeof(data));
	cfg[0] = 1; /* palette 1: eight tiles of 16 rows x 64 bytes */
	for (int i = 0; i < 8; i++) {
		((uint16_t *)(cfg + 16))[i] = 64;
		cfg[48 + i] = 16;
	}
	asm volatile("ldtilecfg (%0)" ::"r"(cfg));
	asm volatile("tileloadd (%0,%1,1), %%tmm0\n\t"
		     "tileloadd (%0,%1,1), %%tmm1\n\t"
		     "tileloadd (%0,%1,1), %%tmm2\n\t"
		     "tileloadd (%0,%1,1), %%tmm3\n\t"
		     "tileloadd (%0,%1,1), %%tmm4\n\t"
		     "tileloadd (%0,%1,1), %%tmm5\n\t"
		     "tileloadd (%0,%1,1), %%tmm6\n\t"
		     "tileloadd (%0,%1,1), %%tmm7" ::"r"(data),
		     "r"(64L)
		     : "memory");
	with = xcr0 & ~(1ULL << 9); /* PKRU is left as it is */
	/* TILECFG goes with the data: restoring it alone re-initialises the tiles (a slow path). */
	without = with & ~(3ULL << 17);
	xsavec(full, with);
	xsavec(part, without);
	time_xop(OP_XSAVEC, full, with, ns);
	emit_samples("xsavec_tiles", ns, runs, NULL);
	time_xop(OP_XSAVEC, part, without, ns);
	emit_samples("xsavec_no_tiles", ns, runs, NULL);
	time_xop(OP_XRSTOR_COMPACT, full, with, ns);
	emit_samples("xrstor_compacted_tiles", ns, runs, NULL);
	time_xop(OP_XRSTOR_COMPACT, part, without, ns);
	emit_samples("xrstor_compacted_no_tiles", ns, runs, NULL);
	asm volatile("tilerelease" ::: "memory");
	free(full);
	free(part);
}

/* ---- context switches: lmbench lat_ctx's pipe ping-pong -------------------------- */

struct pingpong {
	int to_peer[2], from_peer[2];
	long n;
};

static void *pong(void *arg)
{
	struct pingpong *p = arg;
	char c;

	for (long i = 0; i < p->n; i++) {
		if (read(p->to_peer[0], &c, 1) != 1 || write(p->from_peer[1], &c, 1) != 1)
			break;
	}
	return NULL;
}

static int ping(struct pingpong *p)
{
	char c = 'x';

	for (long i = 0; i < p->n; i++) {
		if (write(p->to_peer[1], &c, 1) != 1 || read(p->from_peer[0], &c, 1) != 1)
			return -1;
	}
	return 0;
}

/* A write and a read of one pipe by one thread: the pipe cost without a switch. */
static double pipe_overhead_ns(long n)
{
	int fd[2];
	char c = 'x';
	uint64_t t0;
	double ns;

	if (pipe(fd))
		return -1;
	t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (write(fd[1], &c, 1) != 1 || read(fd[0], &c, 1) != 1)
			break;
	}
	ns = (double)(now_ns() - t0) / (double)n;
	close(fd[0]);
	close(fd[1]);
	return ns;
}

/* Per switch: (round trip - two pipe write+read pairs) / two switches. */
static int time_ctx(int processes, double *ns)
{
	long n = 1000 * scale;

	for (int r = 0; r < runs; r++) {
		struct pingpong p = { .n = n };
		pthread_t t;
		pid_t child = 0;
		uint64_t t0;
		double overhead = pipe_overhead_ns(n), rt;
		int failed;

		if (pipe(p.to_peer) || pipe(p.from_peer))
			return -1;
		if (processes) {
			child = fork();
			if (child < 0)
				return -1;
			if (child == 0) {
				pong(&p);
				_exit(0);
			}
		} else if (pthread_create(&t, NULL, pong, &p)) {
			return -1;
		}
		t0 = now_ns();
		failed = ping(&p);
		rt = (double)(now_ns() - t0) / (double)n;
		/* Closing both pipes ends the peer's loop even when the ping failed half way. */
		close(p.to_peer[0]);
		close(p.to_peer[1]);
		close(p.from_peer[0]);
		close(p.from_peer[1]);
		if (processes)
			waitpid(child, NULL, 0);
		else
			pthread_join(t, NULL);
		if (failed)
			return -1;
		ns[r] = (rt - 2 * overhead) / 2;
	}
	return 0;
}

/* ---- traps and signals ----------------------------------------------------------- */

extern char svasim_gp_insn[], svasim_gp_resume[];
static volatile sig_atomic_t gp_taken;

static void on_sigsegv(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;

	(void)si;
	if (uc->uc_mcontext.gregs[REG_RIP] != (greg_t)svasim_gp_insn) {
		signal(sig, SIG_DFL); /* a real fault: die of it on return */
		return;
	}
	gp_taken++;
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)svasim_gp_resume;
}

/* A load from a non-canonical address: #GP in user mode, SIGSEGV, stepped over. */
__attribute__((noinline, noclone)) static void take_gp(void)
{
	asm volatile("movabs $0x8000000000000000, %%rax\n\t"
		     ".globl svasim_gp_insn\n"
		     "svasim_gp_insn:\n\t"
		     "movq (%%rax), %%rax\n\t"
		     ".globl svasim_gp_resume\n"
		     "svasim_gp_resume:\n\t" ::
			     : "rax", "memory");
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void measure_traps(void)
{
	double gp[MAX_RUNS], sig[MAX_RUNS], sys[MAX_RUNS];
	long n = 200 * scale;
	struct sigaction sa = { 0 }, old_segv, old_usr1;
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

	sa.sa_sigaction = on_sigsegv;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old_usr1);

	for (int r = 0; r < runs; r++) {
		uint64_t t0 = now_ns();

		for (long i = 0; i < n; i++)
			take_gp();
		gp[r] = (double)(now_ns() - t0) / (double)n;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_tgkill, pid, tid, SIGUSR1);
		sig[r] = (double)(now_ns() - t0) / (double)n;
		t0 = now_ns();
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
		sys[r] = (double)(now_ns() - t0) / (double)n;
	}
	sigaction(SIGSEGV, &old_segv, NULL);
	sigaction(SIGUSR1, &old_usr1, NULL);
	if (gp_taken != (sig_atomic_t)(n * runs)) {
		emit_unavailable("gp_signal_roundtrip", "the #GP was not taken on every iteration");
		return;
	}
	emit_samples("gp_signal_roundtrip", gp, runs, NULL);
	emit_samples("tgkill_signal_roundtrip", sig, runs, NULL);
	emit_samples("null_syscall", sys, runs, NULL);
}

/* ---- memory: an uncached line, an atomic, a first touch -------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median_ticks(uint64_t *t, int n)
{
	double d[4096];

	for (int i = 0; i < n; i++)
		d[i] = (double)t[i];
	qsort(d, n, sizeof(d[0]), cmp_double);
	return n % 2 ? d[n / 2] : (d[n / 2 - 1] + d[n / 2]) / 2;
}

static void measure_memory(void)
{
	double uncached[MAX_RUNS], atomic[MAX_RUNS], fault[MAX_RUNS];
	uint64_t load[4096], empty[4096];
	int samples = scale > 2 ? 4096 : 1024;
	long n = 10000 * scale;
	long page = sysconf(_SC_PAGESIZE);
	long pages = 64 * scale;
	volatile uint64_t *line = aligned_alloc(64, 64);

	if (!line) {
		emit_unavailable("uncached_load", "cannot allocate a line");
		return;
	}
	*line = 1;
	for (int r = 0; r < runs; r++) {
		for (int i = 0; i < samples; i++) {
			uint64_t t0, t1;

			asm volatile("clflush (%0)\n\tmfence" ::"r"(line) : "memory");
			t0 = rdtsc_fenced();
			(void)*line;
			t1 = rdtsc_fenced();
			load[i] = t1 - t0;
			t0 = rdtsc_fenced();
			t1 = rdtsc_fenced();
			empty[i] = t1 - t0;
		}
		uncached[r] = (median_ticks(load, samples) - median_ticks(empty, samples)) * 1e9 / tsc_hz;
	}
	emit_samples("uncached_load", uncached, runs, NULL);

	for (int r = 0; r < runs; r++) {
		uint64_t t0 = now_ns(), v = 1;

		for (long i = 0; i < n; i++)
			asm volatile("lock xaddq %0, (%1)" : "+r"(v) : "r"(line) : "memory");
		atomic[r] = (double)(now_ns() - t0) / (double)n;
	}
	emit_samples("lock_xadd", atomic, runs, NULL);
	free((void *)line);

	for (int r = 0; r < runs; r++) {
		uint8_t *p = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t t0;

		if (p == MAP_FAILED) {
			emit_unavailable("first_touch", "mmap failed");
			return;
		}
		/* One fault per 4 KiB page: no transparent huge page may serve the range. */
		madvise(p, pages * page, MADV_NOHUGEPAGE);
		t0 = now_ns();
		for (long i = 0; i < pages; i++)
			((volatile uint8_t *)p)[i * page] = 1;
		fault[r] = (double)(now_ns() - t0) / (double)pages;
		munmap(p, pages * page);
	}
	emit_samples("first_touch", fault, runs, NULL);
}

/* ---- registers a user thread may write ------------------------------------------- */

static void measure_registers(void)
{
	unsigned int r[4];
	double ns[MAX_RUNS];
	long n = 10000 * scale;

	cpuid_count(7, 0, r);
	if (!(r[1] & 1)) {
		emit_unavailable("wrgsbase", "CPUID.(EAX=07H,ECX=0):EBX.FSGSBASE[0] is clear");
	} else if (!(getauxval(AT_HWCAP2) & HWCAP2_FSGSBASE)) {
		emit_unavailable("wrgsbase", "the kernel has not enabled FSGSBASE (AT_HWCAP2)");
	} else {
		uint64_t gs;

		asm volatile("rdgsbase %0" : "=r"(gs));
		for (int k = 0; k < runs; k++) {
			uint64_t t0 = now_ns();

			for (long i = 0; i < n; i++)
				asm volatile("wrgsbase %0" ::"r"(gs) : "memory");
			ns[k] = (double)(now_ns() - t0) / (double)n;
		}
		emit_samples("wrgsbase", ns, runs, NULL);
	}
	if (!(r[2] & (1u << 3))) {
		emit_unavailable("wrpkru", "CPUID.(EAX=07H,ECX=0):ECX.PKU[3] is clear");
	} else if (!(r[2] & (1u << 4))) {
		emit_unavailable("wrpkru", "CPUID.(EAX=07H,ECX=0):ECX.OSPKE[4] is clear: the OS has not enabled PKRU");
	} else {
		uint32_t pkru;

		asm volatile("rdpkru" : "=a"(pkru) : "c"(0) : "rdx");
		for (int k = 0; k < runs; k++) {
			uint64_t t0 = now_ns();

			for (long i = 0; i < n; i++)
				asm volatile("wrpkru" ::"a"(pkru), "c"(0), "d"(0) : "memory");
			ns[k] = (double)(now_ns() - t0) / (double)n;
		}
		emit_samples("wrpkru", ns, runs, NULL);
	}
}

int main(int argc, char **argv)
{
	unsigned int r[4];
	cpu_set_t allowed;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			scale = 2;
			runs = 7;
		} else {
			fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
			return 2;
		}
	}
	measure_tsc();
	__cpuid(0x80000000, r[0], r[1], r[2], r[3]);
	int invariant = 0;
	if (r[0] >= 0x80000007) {
		__cpuid(0x80000007, r[0], r[1], r[2], r[3]);
		invariant = !!(r[3] & (1u << 8));
	}
	CPU_ZERO(&allowed);
	sched_getaffinity(0, sizeof(allowed), &allowed);
	printf("{\n  \"tsc_hz\": %.0f,\n  \"invariant_tsc\": %s,\n  \"runs\": %d,\n  \"cpu\": %d,\n"
	       "  \"cpus_allowed\": %d,\n  \"measurements\": {",
	       tsc_hz, invariant ? "true" : "false", runs, sched_getcpu(), CPU_COUNT(&allowed));
	measure_xsave();
	{
		double ns[MAX_RUNS];

		if (time_ctx(0, ns))
			emit_unavailable("ctx_threads", strerror(errno));
		else
			emit_samples("ctx_threads", ns, runs, NULL);
		if (time_ctx(1, ns))
			emit_unavailable("ctx_processes", strerror(errno));
		else
			emit_samples("ctx_processes", ns, runs, NULL);
	}
	measure_traps();
	measure_memory();
	measure_registers();
	measure_tiles();
	printf("\n  }\n}\n");
	return 0;
}
