// SPDX-License-Identifier: Apache-2.0
/*
 * Portal stores: the trap handler that turns an ENQCMD or MOVDIR64B at a WQ portal into a
 * request to svasim's bridge, and the interposed sigaction()/signal() that keep the
 * program's own SIGSEGV and SIGILL handlers working behind it.
 *
 * The portal is a PROT_NONE page (paths.c maps it), so MOVDIR64B to it faults with
 * SEGV_ACCERR; ENQCMD from a process without a PASID takes #GP first (SIGSEGV,
 * SI_KERNEL), and a CPU without ENQCMD raises SIGILL. In each case the handler decodes
 * the instruction at the saved RIP, finds the destination in a portal, reads the 64-byte
 * source, asks the bridge, sets ZF as the CPU would and steps over the instruction.
 * Everything the handler calls is async-signal-safe (socket, connect, sendmsg, recv,
 * process_vm_readv, sigprocmask, raise, write).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ucontext.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "preload.h"

struct svasim_portal svasim_portals[SVASIM_MAX_PORTALS];

/* Initial-exec TLS: a general-dynamic access could allocate, which a handler must not. */
static __thread int t_sock __attribute__((tls_model("initial-exec"))) = -1;
static __thread int t_sock_registered __attribute__((tls_model("initial-exec")));

static struct sockaddr_un g_addr;
static socklen_t g_addrlen;
static uint64_t g_token;

/* Every socket this library opened, so that a fork child can close them all. */
#define MAX_SOCKS 1024
static int g_socks[MAX_SOCKS];

static pthread_key_t g_sock_key;

/* The program's own dispositions of the signals the trap handler takes over. */
static struct sigaction g_prog_act[NSIG];
static int (*real_sigaction_fn)(int, const struct sigaction *, struct sigaction *);

int svasim_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	if (!real_sigaction_fn)
		real_sigaction_fn = dlsym(RTLD_NEXT, "sigaction");
	return real_sigaction_fn(sig, act, oact);
}

static int is_trapped(int sig)
{
	return svasim_active && (sig == SIGSEGV || sig == SIGILL);
}

/* ---- the connection to the bridge ----------------------------------------------- */

static void sock_register(int s)
{
	for (int i = 0; i < MAX_SOCKS; i++) {
		int expected = -1;

		if (__atomic_compare_exchange_n(&g_socks[i], &expected, s, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return;
	}
}

static void sock_forget(int s)
{
	for (int i = 0; i < MAX_SOCKS; i++) {
		int expected = s;

		if (__atomic_compare_exchange_n(&g_socks[i], &expected, -1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return;
	}
}

static int send_all(int s, struct svasim_req *req, const void *data, size_t len)
{
	struct iovec iov[2] = { { req, sizeof(*req) }, { (void *)data, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	ssize_t n;

	req->len = (uint32_t)len;
	do
		n = sendmsg(s, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)(sizeof(*req) + len) ? 0 : -EIO;
}

static int recv_rsp(int s, struct svasim_rsp *rsp)
{
	ssize_t n;

	do
		n = recv(s, rsp, sizeof(*rsp), 0);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)sizeof(*rsp) ? 0 : -EIO;
}

static void drop_sock(void)
{
	if (t_sock >= 0) {
		sock_forget(t_sock);
		close(t_sock);
		t_sock = -1;
	}
}

static int connect_bridge(void)
{
	struct svasim_req hello = { .op = SVASIM_OP_HELLO, .kind = SVASIM_PROTO_VERSION };
	struct svasim_rsp rsp;
	int s;

	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	if (connect(s, (struct sockaddr *)&g_addr, g_addrlen) < 0) {
		int e = errno;

		close(s);
		return -e;
	}
	hello.arg0 = (uint64_t)getpid();
	/* syscall() is a bare trap into the kernel, safe in a handler like the named calls. */
	hello.arg1 = (uint64_t)syscall(SYS_gettid);
	hello.arg2 = (uint64_t)getppid();
	hello.arg3 = g_token;
	if (send_all(s, &hello, NULL, 0) || recv_rsp(s, &rsp) || rsp.status) {
		close(s);
		return -ECONNREFUSED;
	}
	sock_register(s);
	t_sock = s;
	return s;
}

int svasim_request(struct svasim_req *req, const void *data, size_t len, struct svasim_rsp *rsp)
{
	int s = t_sock >= 0 ? t_sock : connect_bridge();

	if (s < 0)
		return s;
	if (send_all(s, req, data, len) || recv_rsp(s, rsp)) {
		drop_sock();
		return -EIO;
	}
	return 0;
}

static void sock_destructor(void *unused)
{
	(void)unused;
	drop_sock();
}

int svasim_request_locked(struct svasim_req *req, const void *data, size_t len, struct svasim_rsp *rsp)
{
	sigset_t all, old;
	int rc;

	/* A handler of this thread must not interleave its own request on the socket. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGBUS);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = svasim_request(req, data, len, rsp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* Outside a handler: close the socket when the thread exits. */
	if (rc == 0 && !t_sock_registered) {
		pthread_setspecific(g_sock_key, (void *)1);
		t_sock_registered = 1;
	}
	return rc;
}

void svasim_portal_atfork_child(void)
{
	/* The child is a new process of the fabric: it says hello on sockets of its own. */
	for (int i = 0; i < MAX_SOCKS; i++) {
		int s = __atomic_exchange_n(&g_socks[i], -1, __ATOMIC_ACQ_REL);

		if (s >= 0)
			close(s);
	}
	t_sock = -1;
	t_sock_registered = 0;
	/* idxd maps portals VM_DONTCOPY (MADV_DONTFORK here): the child has none. */
	for (int i = 0; i < SVASIM_MAX_PORTALS; i++)
		__atomic_store_n(&svasim_portals[i].start, 0, __ATOMIC_RELEASE);
}

/* ---- instruction decoding ------------------------------------------------------- */

/* Reads another part of our own memory without faulting: EFAULT instead of SIGSEGV. */
static int safe_read(void *dst, uintptr_t addr, size_t len)
{
	uintptr_t split = (addr | 4095) + 1;
	struct iovec local = { dst, len };
	struct iovec remote[2];
	int n = 1;

	remote[0].iov_base = (void *)addr;
	remote[0].iov_len = len;
	if (addr + len > split) {
		remote[0].iov_len = split - addr;
		remote[1].iov_base = (void *)split;
		remote[1].iov_len = len - remote[0].iov_len;
		n = 2;
	}
	return syscall(SYS_process_vm_readv, getpid(), &local, 1, remote, n, 0) == (long)len ? 0 : -1;
}

struct portal_store {
	int kind;		/* SVASIM_STORE_ENQCMD or SVASIM_STORE_MOVDIR64B */
	unsigned int length;	/* bytes of the instruction */
	uintptr_t dst;		/* the destination address (register operand) */
	uintptr_t src;		/* the 64-byte source (memory operand) */
};

/* ModRM register numbers to ucontext slots: rax rcx rdx rbx rsp rbp rsi rdi r8..r15. */
static const int greg_of[16] = {
	REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI,
	REG_R8, REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15,
};

/*
 * Decodes ENQCMD (F2 0F 38 F8 /r) and MOVDIR64B (66 0F 38 F8 /r) at rip: legacy prefixes,
 * REX, then ModRM (reg = destination address register, r/m = the m512 source) with SIB,
 * displacements and RIP-relative forms. Returns 0 and fills *st, or -1 when the bytes are
 * something else (ENQCMDS and segment overrides included: those are not ours).
 */
static int decode(const ucontext_t *uc, struct portal_store *st)
{
	const greg_t *g = uc->uc_mcontext.gregs;
	uintptr_t rip = (uintptr_t)g[REG_RIP];
	unsigned char c[15] = { 0 };
	int rep = 0, opsize = 0, addr32 = 0, rex = 0;
	unsigned int i = 0;

	/* The longest form read here is 14 bytes: up to 4 prefixes, REX, 0F 38 F8, ModRM,
	 * SIB and a disp32. Code at the very end of a mapping still has its first bytes. */
	if (safe_read(c, rip, sizeof(c)) && safe_read(c, rip, 8))
		return -1;
	for (; i < 4; i++) {
		if (c[i] == 0xf2 || c[i] == 0xf3)
			rep = c[i];
		else if (c[i] == 0x66)
			opsize = 1;
		else if (c[i] == 0x67)
			addr32 = 1;
		else if (c[i] == 0x2e || c[i] == 0x36 || c[i] == 0x3e || c[i] == 0x26)
			continue;	/* null segments in 64-bit mode */
		else
			break;
	}
	if ((c[i] & 0xf0) == 0x40)
		rex = c[i++];
	if (c[i] != 0x0f || c[i + 1] != 0x38 || c[i + 2] != 0xf8)
		return -1;
	i += 3;
	if (rep == 0xf2)
		st->kind = SVASIM_STORE_ENQCMD;
	else if (rep == 0 && opsize)
		st->kind = SVASIM_STORE_MOVDIR64B;
	else
		return -1;

	unsigned char modrm = c[i++];
	unsigned int mod = modrm >> 6;
	unsigned int reg = ((modrm >> 3) & 7) | ((rex & 4) << 1);
	unsigned int rm = modrm & 7;
	uint64_t ea = 0;
	int rip_relative = 0;

	if (mod == 3)
		return -1;	/* the source must be memory: #UD */
	if (rm == 4) {
		unsigned char sib = c[i++];
		unsigned int scale = sib >> 6;
		unsigned int index = ((sib >> 3) & 7) | ((rex & 2) << 2);
		unsigned int base = (sib & 7) | ((rex & 1) << 3);

		if (index != 4)
			ea += (uint64_t)g[greg_of[index]] << scale;
		if ((sib & 7) == 5 && mod == 0) {
			int32_t d;

			memcpy(&d, &c[i], 4);
			i += 4;
			ea += (int64_t)d;
		} else {
			ea += (uint64_t)g[greg_of[base]];
		}
	} else if (rm == 5 && mod == 0) {
		rip_relative = 1;
	} else {
		ea += (uint64_t)g[greg_of[rm | ((rex & 1) << 3)]];
	}
	if (mod == 1) {
		ea += (int64_t)(int8_t)c[i++];
	} else if (mod == 2 || rip_relative) {
		int32_t d;

		memcpy(&d, &c[i], 4);
		i += 4;
		ea += (int64_t)d;
	}
	if (rip_relative)
		ea += rip + i;
	st->length = i;
	st->src = addr32 ? (uint32_t)ea : ea;
	st->dst = (uintptr_t)g[greg_of[reg]];
	if (addr32)
		st->dst = (uint32_t)st->dst;
	return 0;
}

static struct svasim_portal *portal_of(uintptr_t addr)
{
	for (int i = 0; i < SVASIM_MAX_PORTALS; i++) {
		struct svasim_portal *p = &svasim_portals[i];
		uintptr_t start = __atomic_load_n(&p->start, __ATOMIC_ACQUIRE);

		if (start && addr >= start && addr < p->end)
			return p;
	}
	return NULL;
}

/* ---- the handler ------------------------------------------------------------------ */

static void say(const char *msg)
{
	ssize_t unused = write(STDERR_FILENO, msg, strlen(msg));

	(void)unused;
}

/* Hand a fault to the program's disposition. A fault we synthesize (the fabric said
 * #GP or page fault) has no real twin to re-execute, so the default action is raised. */
static void chain(int sig, siginfo_t *info, void *uc, int synthesized)
{
	struct sigaction act = g_prog_act[sig];

	if (act.sa_handler == SIG_DFL || act.sa_handler == SIG_IGN) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		sigset_t set;

		/* A synchronous fault ignored is a fault killed: the kernel forces SIG_DFL too. */
		svasim_real_sigaction(sig, &dfl, NULL);
		if (synthesized) {
			sigemptyset(&set);
			sigaddset(&set, sig);
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			raise(sig);
		}
		return;		/* the instruction faults again, now to the default action */
	}
	if (act.sa_flags & SA_RESETHAND)
		g_prog_act[sig].sa_handler = SIG_DFL;

	sigset_t mask = act.sa_mask;

	if (act.sa_flags & SA_NODEFER) {
		sigset_t one;

		sigemptyset(&one);
		sigaddset(&one, sig);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
	}
	sigprocmask(SIG_BLOCK, &mask, NULL);
	if (act.sa_flags & SA_SIGINFO)
		act.sa_sigaction(sig, info, uc);
	else
		act.sa_handler(sig);
}

static void synth_fault(int code, uintptr_t addr, siginfo_t *out)
{
	memset(out, 0, sizeof(*out));
	out->si_signo = SIGSEGV;
	out->si_code = code;
	out->si_addr = (void *)addr;
}

/* Returns 1 if the fault was a portal store, handled; 0 to hand it on. */
static int portal_store(ucontext_t *uc)
{
	struct portal_store st;
	struct svasim_portal *p;
	struct svasim_req req = { .op = SVASIM_OP_SUBMIT };
	struct svasim_rsp rsp;
	unsigned char src[64];
	siginfo_t fake;
	int rc;

	if (decode(uc, &st))
		return 0;
	p = portal_of(st.dst);
	if (!p)
		return 0;
	if ((st.dst & 63) || st.dst + 64 > p->end)
		return 0;	/* misaligned: the CPU's own #GP stands */
	if (safe_read(src, st.src, sizeof(src))) {
		/* The CPU would take #PF on the source: SIGSEGV at that address. */
		synth_fault(SEGV_MAPERR, st.src, &fake);
		chain(SIGSEGV, &fake, uc, 1);
		return 1;
	}
	req.handle = p->handle;
	req.kind = (uint32_t)st.kind;
	req.arg0 = p->pgoff + (st.dst - p->start);
	rc = svasim_request(&req, src, sizeof(src), &rsp);
	if (rc || rsp.status) {
		struct sigaction dfl = { .sa_handler = SIG_DFL };

		/* The device is gone with the bridge: stopping loudly beats spinning on retry. */
		say("svasim: the native bridge is unreachable; stopping the program\n");
		svasim_real_sigaction(SIGBUS, &dfl, NULL);
		raise(SIGBUS);
		return 1;
	}
	switch (rsp.result) {
	case SVASIM_SUBMIT_ACCEPTED:
	case SVASIM_SUBMIT_RETRY:
		if (st.kind == SVASIM_STORE_ENQCMD) {
			/* ZF is bit 6 of RFLAGS; ENQCMD clears OF, SF, AF, PF and CF. */
			greg_t fl = uc->uc_mcontext.gregs[REG_EFL] & ~(greg_t)0x8d5;

			if (rsp.result == SVASIM_SUBMIT_RETRY)
				fl |= 0x40;
			uc->uc_mcontext.gregs[REG_EFL] = fl;
		}
		uc->uc_mcontext.gregs[REG_RIP] += st.length;
		return 1;
	case SVASIM_SUBMIT_PAGE_FAULT:
		synth_fault(SEGV_MAPERR, st.dst, &fake);
		chain(SIGSEGV, &fake, uc, 1);
		return 1;
	default:
		synth_fault(SI_KERNEL, 0, &fake);
		chain(SIGSEGV, &fake, uc, 1);
		return 1;
	}
}

static void trap_handler(int sig, siginfo_t *info, void *ctx)
{
	int saved = errno;

	if (!portal_store(ctx))
		chain(sig, info, ctx, 0);
	errno = saved;
}

static void install(int sig)
{
	struct sigaction act = { .sa_sigaction = trap_handler };

	/* On the program's alternate stack when it has one, as its own handler would run. */
	act.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&act.sa_mask);
	svasim_real_sigaction(sig, &act, &g_prog_act[sig]);
}

void svasim_portal_init(const char *sock_path)
{
	struct timespec ts;

	for (int i = 0; i < MAX_SOCKS; i++)
		g_socks[i] = -1;
	g_addr.sun_family = AF_UNIX;
	strncpy(g_addr.sun_path, sock_path, sizeof(g_addr.sun_path) - 1);
	g_addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(g_addr.sun_path) + 1);
	/* A token per program image: an exec under the same pid is a new image. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	g_token = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
	pthread_key_create(&g_sock_key, sock_destructor);
	install(SIGSEGV);
	install(SIGILL);
}

/* ---- fork ---------------------------------------------------------------------------- */

SVASIM_EXPORT pid_t fork(void)
{
	static pid_t (*real_fork)(void);
	int known = 0;
	pid_t pid;

	if (!real_fork)
		real_fork = (pid_t(*)(void))dlsym(RTLD_NEXT, "fork");
	for (int i = 0; svasim_active && i < MAX_SOCKS && !known; i++)
		known = __atomic_load_n(&g_socks[i], __ATOMIC_ACQUIRE) >= 0;
	pid = real_fork();
	/* A process the fabric knows forks there too, in order with what the parent does
	 * next (a child that speaks first makes the bridge fork it from the parent anyway). */
	if (pid > 0 && known) {
		struct svasim_req req = { .op = SVASIM_OP_FORK, .arg0 = (uint64_t)pid };
		struct svasim_rsp rsp;

		svasim_request_locked(&req, NULL, 0, &rsp);
	}
	return pid;
}

/* ---- the program's view of its dispositions ----------------------------------------- */

SVASIM_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	if (!is_trapped(sig))
		return svasim_real_sigaction(sig, act, oact);
	if (oact)
		*oact = g_prog_act[sig];
	if (act)
		g_prog_act[sig] = *act;
	return 0;
}

SVASIM_EXPORT int __sigaction(int sig, const struct sigaction *act, struct sigaction *oact)
{
	return sigaction(sig, act, oact);
}

SVASIM_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	struct sigaction act = { .sa_handler = handler }, old;

	/* glibc's signal() has BSD semantics: SA_RESTART, the signal blocked in its handler. */
	act.sa_flags = SA_RESTART;
	sigemptyset(&act.sa_mask);
	if (sig <= 0 || sig >= NSIG) {
		errno = EINVAL;
		return SIG_ERR;
	}
	if (sigaction(sig, &act, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}
