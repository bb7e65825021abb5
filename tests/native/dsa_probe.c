// SPDX-License-Identifier: Apache-2.0
/*
 * A small DSA program, written as one for real hardware is: it reads the idxd sysfs,
 * opens /dev/dsa/wqD.Q, maps the portal and submits with ENQCMD and MOVDIR64B, in the
 * inline .byte encodings accel-config's dsa_test uses and in the forms the assembler and
 * gcc's intrinsics emit (REX, SIB, displacements). It also faults on purpose, to show
 * that its own SIGSEGV handlers still see real faults. Prints key=value lines.
 *
 *   dsa_probe sysfs                    list the bus, read wq0.0's attributes, list /dev/dsa
 *   dsa_probe enqcmd WQ                NOOPs by ENQCMD to /dev/dsa/WQ, every encoding
 *   dsa_probe movdir64b WQ             NOOPs by MOVDIR64B to /dev/dsa/WQ, every encoding
 *   dsa_probe write PATH VALUE         write(2) VALUE to PATH, print the result
 *   dsa_probe segv                     own sigaction() handler: a NULL store, a plain ENQCMD
 *   dsa_probe signal                   own signal() handler: a NULL store
 *   dsa_probe default                  no handler: a NULL store kills the program
 *   dsa_probe reopen WQ                open, map, unmap, close, open again
 *   dsa_probe threads WQ N             N threads, one ENQCMD each
 *   dsa_probe exec WQ                  ENQCMD, then exec "dsa_probe enqcmd WQ"
 *   dsa_probe fork WQ                  ENQCMD, fork, a child of its own WQ file, ENQCMD
 *   dsa_probe memmove WQ SIZE          MEMMOVE of SIZE bytes into untouched pages (block on
 *                                      fault), ENQCMD or MOVDIR64B by the WQ's mode; polls the
 *                                      completion record and checks every byte
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <immintrin.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NOOP_FLAGS ((1u << 2) | (1u << 3)) /* IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR */

static unsigned char desc[64] __attribute__((aligned(64)));
static unsigned char comp[32] __attribute__((aligned(32)));

static void noop(unsigned int tag)
{
	uint32_t w1 = NOOP_FLAGS; /* opcode 0 (NOOP) in bits 31:24 */
	uint64_t ca = (uint64_t)(uintptr_t)comp;

	memset(desc, 0, sizeof(desc));
	memcpy(desc + 4, &w1, 4);
	memcpy(desc + 8, &ca, 8);
	/* A tag in the reserved tail so that a test can tell the stores apart. */
	memcpy(desc + 60, &tag, 4);
}

static int read_attr(const char *path, char *out, size_t n)
{
	int fd = open(path, O_RDONLY);
	ssize_t len;

	if (fd < 0)
		return -errno;
	len = read(fd, out, n - 1);
	close(fd);
	if (len < 0)
		return -errno;
	out[len] = '\0';
	if (len && out[len - 1] == '\n')
		out[len - 1] = '\0';
	return 0;
}

static int cmd_sysfs(void)
{
	static const char *const attrs[] = { "mode", "size", "state", "type", "threshold", "priority", NULL };
	char buf[4096], path[512], link[512];
	struct dirent *d;
	DIR *dir;
	FILE *f;

	dir = opendir("/sys/bus/dsa/devices");
	if (!dir) {
		printf("error=opendir %s\n", strerror(errno));
		return 1;
	}
	while ((d = readdir(dir)))
		if (d->d_name[0] != '.')
			printf("device=%s\n", d->d_name);
	closedir(dir);
	for (int i = 0; attrs[i]; i++) {
		snprintf(path, sizeof(path), "/sys/bus/dsa/devices/wq0.0/%s", attrs[i]);
		if (read_attr(path, buf, sizeof(buf)) == 0)
			printf("wq0.0.%s=%s\n", attrs[i], buf);
		else
			printf("wq0.0.%s=<%s>\n", attrs[i], strerror(errno));
	}
	f = fopen("/sys/bus/dsa/devices/dsa0/max_work_queues", "r");
	if (f && fgets(buf, sizeof(buf), f))
		printf("dsa0.max_work_queues=%s", buf);
	if (f)
		fclose(f);
	printf("access_idxd=%d\n", access("/sys/module/idxd", F_OK));
	ssize_t n = readlink("/sys/bus/dsa/devices/wq0.0", link, sizeof(link) - 1);
	if (n > 0) {
		link[n] = '\0';
		printf("wq0.0.link=%s\n", link);
	}
	char *real = realpath("/sys/bus/dsa/devices/dsa0", NULL);
	printf("dsa0.realpath_ok=%d\n", real != NULL && strstr(real, "/dsa0") != NULL);
	free(real);
	dir = opendir("/dev/dsa");
	while (dir && (d = readdir(dir)))
		if (d->d_name[0] != '.')
			printf("devnode=%s\n", d->d_name);
	if (dir)
		closedir(dir);
	return 0;
}

static void *map_portal(const char *wq, int *fdp)
{
	char path[256];
	void *p;
	int fd;

	snprintf(path, sizeof(path), "/dev/dsa/%s", wq);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("open_errno=%d\n", errno);
		return NULL;
	}
	p = mmap(NULL, 0x1000, PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED) {
		printf("mmap_errno=%d\n", errno);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return p;
}

/* dsa_test's encoding: ENQCMD with rax = portal, [rdx] = descriptor, then setz. */
static unsigned char enqcmd_bytes(void *dst, const void *src)
{
	unsigned char retry;

	asm volatile(".byte 0xf2, 0x0f, 0x38, 0xf8, 0x02\n\t"
		     "setz %0\n\t"
		     : "=r"(retry)
		     : "a"(dst), "d"(src)
		     : "memory", "cc");
	return retry;
}

/* The assembler's REX form: destination r10, source (r9): f2 45 0f 38 f8 11. */
static unsigned char enqcmd_rex(void *dst, const void *src)
{
	register void *d asm("r10") = dst;
	register const void *s asm("r9") = src;
	unsigned char retry;

	asm volatile("enqcmd (%%r9), %%r10\n\tsetz %0" : "=r"(retry) : "r"(d), "r"(s) : "memory", "cc");
	return retry;
}

/* SIB with an extended index and a displacement: 0x40(%rbx,%r13,1) as the source. */
static unsigned char enqcmd_sib(void *dst, const void *src)
{
	register void *d asm("r11") = dst;
	register uintptr_t base asm("rbx") = (uintptr_t)src - 0x40 - 0x100;
	register uintptr_t index asm("r13") = 0x100;
	unsigned char retry;

	asm volatile("enqcmd 0x40(%%rbx,%%r13,1), %%r11\n\tsetz %0"
		     : "=r"(retry)
		     : "r"(d), "r"(base), "r"(index)
		     : "memory", "cc");
	return retry;
}

/* RIP-relative source: the descriptor named by its symbol (src must be desc). */
static unsigned char enqcmd_riprel(void *dst, const void *src)
{
	unsigned char retry;

	(void)src;
	asm volatile("enqcmd desc(%%rip), %1\n\tsetz %0" : "=r"(retry) : "r"(dst) : "memory", "cc");
	return retry;
}

/* gcc's intrinsic (-menqcmd): whatever registers the compiler picks. */
__attribute__((target("enqcmd"))) static unsigned char enqcmd_intrinsic(void *dst, const void *src)
{
	return (unsigned char)_enqcmd(dst, src);
}

static void movdir64b_bytes(void *dst, const void *src)
{
	asm volatile(".byte 0x66, 0x0f, 0x38, 0xf8, 0x02\n\t" : : "a"(dst), "d"(src) : "memory");
}

static void movdir64b_rex(void *dst, const void *src)
{
	register void *d asm("r8") = dst;
	register const void *s asm("r15") = src;

	asm volatile("movdir64b (%%r15), %%r8" : : "r"(d), "r"(s) : "memory");
}

__attribute__((target("movdir64b"))) static void movdir64b_intrinsic(void *dst, const void *src)
{
	_movdir64b(dst, src);
}

static int cmd_enqcmd(const char *wq)
{
	unsigned char (*const forms[])(void *, const void *) = { enqcmd_bytes, enqcmd_rex, enqcmd_sib, enqcmd_intrinsic,
								      enqcmd_riprel };
	int fd;
	void *portal = map_portal(wq, &fd);

	if (!portal)
		return 1;
	for (unsigned int i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		noop(0x5a5a0000 | i);
		printf("enqcmd form=%u zf=%u\n", i, forms[i](portal, desc));
	}
	munmap(portal, 0x1000);
	close(fd);
	printf("done=1\n");
	return 0;
}

static int cmd_movdir64b(const char *wq)
{
	void (*const forms[])(void *, const void *) = { movdir64b_bytes, movdir64b_rex, movdir64b_intrinsic };
	int fd;
	void *portal = map_portal(wq, &fd);

	if (!portal)
		return 1;
	for (unsigned int i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		noop(0xa5a50000 | i);
		forms[i](portal, desc);
		printf("movdir64b form=%u\n", i);
	}
	munmap(portal, 0x1000);
	close(fd);
	printf("done=1\n");
	return 0;
}

static int cmd_reopen(const char *wq)
{
	int fd;
	void *portal = map_portal(wq, &fd);

	if (!portal)
		return 1;
	munmap(portal, 0x1000);
	close(fd);
	portal = map_portal(wq, &fd);
	printf("reopen=%d\n", portal != NULL);
	return portal ? 0 : 1;
}

/* The portal is not inherited (idxd maps it VM_DONTCOPY): the child opens its own. */
static int cmd_fork(const char *wq)
{
	int fd, status;
	void *portal = map_portal(wq, &fd);
	pid_t child;

	if (!portal)
		return 1;
	noop(0x11110000);
	printf("parent zf=%u\n", enqcmd_bytes(portal, desc));
	child = fork();
	if (child == 0) {
		int cfd;
		void *mine;

		printf("child portal_gone=%d\n", msync(portal, 0x1000, MS_ASYNC) < 0 && errno == ENOMEM);
		mine = map_portal(wq, &cfd);
		if (!mine)
			_exit(3);
		noop(0x22220000);
		printf("child zf=%u\n", enqcmd_bytes(mine, desc));
		fflush(stdout);
		_exit(0);
	}
	waitpid(child, &status, 0);
	printf("child_status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	noop(0x33330000);
	printf("parent zf=%u\n", enqcmd_bytes(portal, desc));
	return 0;
}

struct worker {
	void *portal;
	unsigned int tag;
	unsigned char desc[64] __attribute__((aligned(64)));
	unsigned int zf;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint32_t w1 = NOOP_FLAGS;
	uint64_t ca = (uint64_t)(uintptr_t)comp;

	memcpy(w->desc + 4, &w1, 4);
	memcpy(w->desc + 8, &ca, 8);
	memcpy(w->desc + 60, &w->tag, 4);
	/* The thread's first word with the bridge is from inside the trap handler. */
	w->zf = enqcmd_bytes(w->portal, w->desc);
	return NULL;
}

/* Threads of one process: each its own fabric thread, each its own first #GP. */
static int cmd_threads(const char *wq, int n)
{
	struct worker workers[16];
	pthread_t tids[16];
	int fd;
	void *portal = map_portal(wq, &fd);

	if (!portal || n < 1 || n > 16)
		return 1;
	for (int i = 0; i < n; i++) {
		memset(&workers[i], 0, sizeof(workers[i]));
		workers[i].portal = portal;
		workers[i].tag = 0x77770000 | (unsigned int)i;
		pthread_create(&tids[i], NULL, worker_main, &workers[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(tids[i], NULL);
		printf("thread %d zf=%u\n", i, workers[i].zf);
	}
	return 0;
}

/* execve() under the same pid: a new image, with a fresh mm, opening afresh. */
static int cmd_exec(const char *wq)
{
	int fd;
	void *portal = map_portal(wq, &fd);

	if (!portal)
		return 1;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	noop(0x44440000);
	printf("before_exec zf=%u\n", enqcmd_bytes(portal, desc));
	execl("/proc/self/exe", "dsa_probe", "enqcmd", wq, (char *)NULL);
	printf("exec_errno=%d\n", errno);
	return 1;
}

static int cmd_write(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	ssize_t n;

	if (fd < 0) {
		printf("open_errno=%d\n", errno);
		return 1;
	}
	n = write(fd, value, strlen(value));
	printf("write=%zd errno=%d\n", n, n < 0 ? errno : 0);
	close(fd);
	return 0;
}

/* A store to an unmapped low address, hidden from the compiler's bounds checks. */
static void store_to(uintptr_t addr)
{
	int *volatile p = (int *)addr;

	*p = 1;
}

static sigjmp_buf jump;
static volatile sig_atomic_t got_sig, got_code;
static void *volatile got_addr;

static void on_segv(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_code = info->si_code;
	got_addr = info->si_addr;
	siglongjmp(jump, 1);
}

static void on_segv_plain(int sig)
{
	got_sig = sig;
	siglongjmp(jump, 1);
}

static int cmd_segv(void)
{
	struct sigaction act = { .sa_sigaction = on_segv, .sa_flags = SA_SIGINFO }, old;
	static unsigned char plain[64] __attribute__((aligned(64)));

	sigemptyset(&act.sa_mask);
	sigaction(SIGSEGV, &act, NULL);
	sigaction(SIGSEGV, NULL, &old);
	printf("handler_kept=%d\n", old.sa_sigaction == on_segv);
	if (!sigsetjmp(jump, 1))
		store_to(0x10);
	printf("null sig=%d code=%d addr=%p\n", (int)got_sig, (int)got_code, got_addr);
	/* ENQCMD to ordinary memory from a process without a PASID: the CPU's own #GP
	 * (SIGSEGV, SI_KERNEL), or SIGILL on a CPU without ENQCMD; never a portal store. */
	got_sig = 0;
	sigaction(SIGILL, &act, NULL);
	noop(0);
	if (!sigsetjmp(jump, 1))
		enqcmd_bytes(plain, desc);
	printf("plain_enqcmd sig=%d code=%d\n", (int)got_sig, (int)got_code);
	return 0;
}

static int cmd_signal(void)
{
	signal(SIGSEGV, on_segv_plain);
	if (!sigsetjmp(jump, 1))
		store_to(0x20);
	printf("signal sig=%d\n", (int)got_sig);
	return 0;
}

static int cmd_memmove(const char *wq, size_t size)
{
	static unsigned char mdesc[64] __attribute__((aligned(64)));
	static volatile unsigned char mcomp[32] __attribute__((aligned(32)));
	char path[256], mode[32] = "";
	unsigned char *src, *dst;
	struct timespec t0, t;
	uint32_t w1 = (3u << 24) | (1u << 1) | (1u << 2) | (1u << 3); /* MEMMOVE, BOF, CRAV, RCR */
	uint64_t addr;
	uint32_t xfer = (uint32_t)size;
	void *portal;
	int fd, shared;

	snprintf(path, sizeof(path), "/sys/bus/dsa/devices/%s/mode", wq);
	read_attr(path, mode, sizeof(mode));
	shared = !strcmp(mode, "shared");
	src = malloc(size);
	/* The destination's pages are never touched: the device's writes fault them in. */
	dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!src || dst == MAP_FAILED)
		return 1;
	for (size_t i = 0; i < size; i++)
		src[i] = (unsigned char)(i * 7 + 3);
	portal = map_portal(wq, &fd);
	if (!portal)
		return 1;
	memset(mdesc, 0, sizeof(mdesc));
	memcpy(mdesc + 4, &w1, 4);
	addr = (uint64_t)(uintptr_t)mcomp;
	memcpy(mdesc + 8, &addr, 8);
	addr = (uint64_t)(uintptr_t)src;
	memcpy(mdesc + 16, &addr, 8);
	addr = (uint64_t)(uintptr_t)dst;
	memcpy(mdesc + 24, &addr, 8);
	memcpy(mdesc + 32, &xfer, 4);
	if (shared) {
		while (enqcmd_bytes(portal, mdesc))
			;
	} else {
		movdir64b_bytes(portal, mdesc);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (mcomp[0] == 0) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 20) {
			printf("timeout\n");
			return 1;
		}
	}
	printf("status=%#x bytes_completed=%u\n", mcomp[0], *(volatile uint32_t *)(mcomp + 4));
	printf("same=%d\n", memcmp(src, dst, size) == 0);
	munmap(portal, 0x1000);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "sysfs"))
		return cmd_sysfs();
	if (argc >= 3 && !strcmp(argv[1], "enqcmd"))
		return cmd_enqcmd(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "movdir64b"))
		return cmd_movdir64b(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "threads"))
		return cmd_threads(argv[2], atoi(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "exec"))
		return cmd_exec(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "fork"))
		return cmd_fork(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "memmove"))
		return cmd_memmove(argv[2], (size_t)strtoul(argv[3], NULL, 0));
	if (argc >= 3 && !strcmp(argv[1], "reopen"))
		return cmd_reopen(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "write"))
		return cmd_write(argv[2], argv[3]);
	if (argc >= 2 && !strcmp(argv[1], "segv"))
		return cmd_segv();
	if (argc >= 2 && !strcmp(argv[1], "signal"))
		return cmd_signal();
	if (argc >= 2 && !strcmp(argv[1], "default")) {
		store_to(0x30);
		return 0;
	}
	fprintf(stderr, "usage: dsa_probe sysfs|enqcmd WQ|movdir64b WQ|reopen WQ|write PATH VALUE|segv|signal|default\n");
	return 2;
}
