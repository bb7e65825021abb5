// SPDX-License-Identifier: Apache-2.0
/*
 * Paths and files: /sys/bus/dsa, /sys/module/idxd and /dev/dsa shown from the tree that
 * svasim's bridge generates (SVASIM_NATIVE_ROOT), attribute writes (and bind/unbind)
 * sent to the bridge, which applies the idxd driver's behaviour through the fabric, and
 * the WQ character device: open() binds through the bridge, mmap() gives the PROT_NONE
 * portal page that portal.c traps, and the last close or munmap is the release.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload.h"

int svasim_active;
static char g_root[PATH_MAX];
static size_t g_rootlen;

/* The paths the idxd driver and the kernel's sysfs show, mapped onto the tree. */
static const char *const prefixes[] = { "/sys/bus/dsa", "/sys/module/idxd", "/dev/dsa", NULL };

/* The next definition of a symbol we interpose, looked up once (calls may precede the
 * constructor: other libraries' constructors open files too). */
static void *resolve(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		/* glibc 2.33+ keeps __xstat and its kin only as compat symbols. */
		if (!f)
			f = dlvsym(RTLD_NEXT, name, "GLIBC_2.2.5");
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
	}
	return f;
}

#define REAL(name) ((__typeof__(real_##name))resolve((void **)&real_##name, #name))

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static FILE *(*real_fopen)(const char *, const char *);
static FILE *(*real_fopen64)(const char *, const char *);
static DIR *(*real_opendir)(const char *);
static int (*real_scandir)(const char *, struct dirent ***, int (*)(const struct dirent *),
			   int (*)(const struct dirent **, const struct dirent **));
static int (*real_scandir64)(const char *, struct dirent64 ***, int (*)(const struct dirent64 *),
			     int (*)(const struct dirent64 **, const struct dirent64 **));
static int (*real_stat)(const char *, struct stat *);
static int (*real_stat64)(const char *, struct stat64 *);
static int (*real_lstat)(const char *, struct stat *);
static int (*real_lstat64)(const char *, struct stat64 *);
static int (*real_fstatat)(int, const char *, struct stat *, int);
static int (*real_fstatat64)(int, const char *, struct stat64 *, int);
static int (*real___xstat)(int, const char *, struct stat *);
static int (*real___xstat64)(int, const char *, struct stat64 *);
static int (*real___lxstat)(int, const char *, struct stat *);
static int (*real___lxstat64)(int, const char *, struct stat64 *);
static int (*real___fxstatat)(int, int, const char *, struct stat *, int);
static int (*real___fxstatat64)(int, int, const char *, struct stat64 *, int);
static int (*real_statx)(int, const char *, int, unsigned int, struct statx *);
static int (*real_access)(const char *, int);
static int (*real_faccessat)(int, const char *, int, int);
static ssize_t (*real_readlink)(const char *, char *, size_t);
static ssize_t (*real_readlinkat)(int, const char *, char *, size_t);
static char *(*real_realpath)(const char *, char *);
static int (*real_chdir)(const char *);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_munmap)(void *, size_t);

/* ---- path mapping ----------------------------------------------------------------- */

static const char *map_path(const char *path, char *buf)
{
	if (!svasim_active || !path || path[0] != '/')
		return path;
	for (const char *const *p = prefixes; *p; p++) {
		size_t n = strlen(*p);

		if (!strncmp(path, *p, n) && (path[n] == '\0' || path[n] == '/')) {
			if (g_rootlen + strlen(path) >= PATH_MAX)
				return path;
			memcpy(buf, g_root, g_rootlen);
			strcpy(buf + g_rootlen, path);
			return buf;
		}
	}
	return path;
}

/* A path already inside the tree: realpath() of a mapped path resolves to one. */
static int in_tree_path(const char *path)
{
	return svasim_active && path && !strncmp(path, g_root, g_rootlen) && path[g_rootlen] == '/';
}

/* ---- files of the tree ---------------------------------------------------------------- */

enum fd_kind { FD_NONE, FD_TREE, FD_ATTR, FD_WQ };

#define MAX_FDS 4096
static struct {
	enum fd_kind kind;
	int wqfile;
	char *path;		/* FD_ATTR: the path inside the tree */
} g_fds[MAX_FDS];

/* An open WQ file: one reference for the fd and one per portal mapping, as the kernel's
 * struct file is held by both (the release runs after close and munmap). */
static struct {
	int refs;
	uint32_t handle;
} g_wqf[SVASIM_MAX_PORTALS];

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static int in_tree_fd(int fd)
{
	return fd >= 0 && fd < MAX_FDS && g_fds[fd].kind != FD_NONE;
}

/* The tree-relative path of an open fd, or NULL when it is not in the tree. */
static const char *tree_path_of_fd(int fd, char *buf)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = REAL(readlink)(link, buf, PATH_MAX - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	if ((size_t)n <= g_rootlen || strncmp(buf, g_root, g_rootlen) || buf[g_rootlen] != '/')
		return NULL;
	return buf + g_rootlen;
}

static int wq_open(int fd, const char *name)
{
	struct svasim_req req = { .op = SVASIM_OP_WQ_OPEN };
	struct svasim_rsp rsp;
	int rc, slot = -1;

	rc = svasim_request_locked(&req, name, strlen(name) + 1, &rsp);
	if (rc)
		return rc;
	if (rsp.status)
		return rsp.status;
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < SVASIM_MAX_PORTALS; i++) {
		if (g_wqf[i].refs == 0) {
			slot = i;
			g_wqf[i].refs = 1;
			g_wqf[i].handle = rsp.handle;
			break;
		}
	}
	if (slot >= 0) {
		g_fds[fd].kind = FD_WQ;
		g_fds[fd].wqfile = slot;
	}
	pthread_mutex_unlock(&g_lock);
	if (slot < 0) {
		struct svasim_req rel = { .op = SVASIM_OP_WQ_RELEASE, .handle = rsp.handle };

		svasim_request_locked(&rel, NULL, 0, &rsp);
		return -EMFILE;
	}
	return 0;
}

void svasim_wqfile_put(int wqfile)
{
	struct svasim_req req = { .op = SVASIM_OP_WQ_RELEASE };
	struct svasim_rsp rsp;
	int last;

	pthread_mutex_lock(&g_lock);
	last = --g_wqf[wqfile].refs == 0;
	req.handle = g_wqf[wqfile].handle;
	pthread_mutex_unlock(&g_lock);
	if (last)
		svasim_request_locked(&req, NULL, 0, &rsp);
}

/* After a real open inside the tree: what the fd is, and the driver's side of it. */
static int track(int fd, int flags)
{
	char buf[PATH_MAX];
	const char *rel;

	if (fd < 0 || fd >= MAX_FDS)
		return fd;
	rel = tree_path_of_fd(fd, buf);
	if (!rel)
		return fd;
	if (!strncmp(rel, "/dev/dsa/", 9) && !(flags & O_PATH)) {
		int rc = wq_open(fd, rel + 9);

		if (rc) {
			REAL(close)(fd);
			errno = -rc;
			return -1;
		}
		return fd;
	}
	if ((flags & O_ACCMODE) != O_RDONLY && !strncmp(rel, "/sys/", 5)) {
		g_fds[fd].kind = FD_ATTR;
		g_fds[fd].path = strdup(rel);
		return fd;
	}
	g_fds[fd].kind = FD_TREE;
	return fd;
}

static int mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
}

/* Writes into the tree go to the bridge; the tree's own file must not be truncated. */
static int tree_flags(int flags)
{
	return flags & ~(O_TRUNC | O_CREAT | O_EXCL | O_APPEND);
}

static int do_openat(int dirfd, const char *path, int flags, int mode, int large)
{
	char buf[PATH_MAX];
	const char *p = map_path(path, buf);
	int in_tree = p == buf || in_tree_path(p) || (path && path[0] != '/' && in_tree_fd(dirfd));
	int fd;

	if (in_tree)
		flags = tree_flags(flags);
	if (dirfd == AT_FDCWD)
		fd = large ? REAL(open64)(p, flags, mode) : REAL(open)(p, flags, mode);
	else
		fd = large ? REAL(openat64)(dirfd, p, flags, mode) : REAL(openat)(dirfd, p, flags, mode);
	return in_tree ? track(fd, flags) : fd;
}

SVASIM_EXPORT int open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags, mode, 0);
}

SVASIM_EXPORT int open64(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(AT_FDCWD, path, flags, mode, 1);
}

SVASIM_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags, mode, 0);
}

SVASIM_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_openat(dirfd, path, flags, mode, 1);
}

/* _FORTIFY_SOURCE builds call these. */
SVASIM_EXPORT int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0, 0);
}

SVASIM_EXPORT int __open64_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0, 1);
}

SVASIM_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0, 0);
}

SVASIM_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
	return do_openat(dirfd, path, flags, 0, 1);
}

SVASIM_EXPORT int close(int fd)
{
	if (fd >= 0 && fd < MAX_FDS && g_fds[fd].kind != FD_NONE) {
		enum fd_kind kind = g_fds[fd].kind;
		int wqfile = g_fds[fd].wqfile;

		free(g_fds[fd].path);
		g_fds[fd].path = NULL;
		g_fds[fd].kind = FD_NONE;
		if (kind == FD_WQ) {
			int rc = REAL(close)(fd);

			svasim_wqfile_put(wqfile);
			return rc;
		}
	}
	return REAL(close)(fd);
}

SVASIM_EXPORT ssize_t write(int fd, const void *data, size_t len)
{
	if (fd >= 0 && fd < MAX_FDS && g_fds[fd].kind == FD_ATTR) {
		char msg[SVASIM_MAX_DATA];
		size_t plen = strlen(g_fds[fd].path) + 1;
		struct svasim_req req = { .op = SVASIM_OP_ATTR_WRITE };
		struct svasim_rsp rsp;
		int rc;

		/* A sysfs store sees at most one page. */
		if (len > SVASIM_MAX_DATA - plen)
			len = SVASIM_MAX_DATA - plen;
		memcpy(msg, g_fds[fd].path, plen);
		memcpy(msg + plen, data, len);
		rc = svasim_request_locked(&req, msg, plen + len, &rsp);
		if (rc || rsp.status) {
			errno = rc ? EIO : -rsp.status;
			return -1;
		}
		return (ssize_t)rsp.result;
	}
	return REAL(write)(fd, data, len);
}

/* ---- stdio, directories ------------------------------------------------------------ */

static ssize_t cookie_read(void *c, char *buf, size_t n)
{
	return read((int)(intptr_t)c, buf, n);
}

static ssize_t cookie_write(void *c, const char *buf, size_t n)
{
	return write((int)(intptr_t)c, buf, n);
}

static int cookie_close(void *c)
{
	return close((int)(intptr_t)c);
}

static FILE *do_fopen(const char *path, const char *mode, int large)
{
	char buf[PATH_MAX];
	const char *p = map_path(path, buf);

	if ((p == buf || in_tree_path(p)) && strpbrk(mode, "wa+")) {
		/* stdio writes through glibc's internal write: a cookie keeps them ours. */
		cookie_io_functions_t io = { .read = cookie_read, .write = cookie_write, .close = cookie_close };
		int fd = do_openat(AT_FDCWD, path, strchr(mode, '+') ? O_RDWR : O_WRONLY, 0, large);

		if (fd < 0)
			return NULL;
		return fopencookie((void *)(intptr_t)fd, mode, io);
	}
	return large ? REAL(fopen64)(p, mode) : REAL(fopen)(p, mode);
}

SVASIM_EXPORT FILE *fopen(const char *path, const char *mode)
{
	return do_fopen(path, mode, 0);
}

SVASIM_EXPORT FILE *fopen64(const char *path, const char *mode)
{
	return do_fopen(path, mode, 1);
}

SVASIM_EXPORT DIR *opendir(const char *path)
{
	char buf[PATH_MAX];

	return REAL(opendir)(map_path(path, buf));
}

SVASIM_EXPORT int scandir(const char *path, struct dirent ***list, int (*sel)(const struct dirent *),
			  int (*cmp)(const struct dirent **, const struct dirent **))
{
	char buf[PATH_MAX];

	return REAL(scandir)(map_path(path, buf), list, sel, cmp);
}

SVASIM_EXPORT int scandir64(const char *path, struct dirent64 ***list, int (*sel)(const struct dirent64 *),
			    int (*cmp)(const struct dirent64 **, const struct dirent64 **))
{
	char buf[PATH_MAX];

	return REAL(scandir64)(map_path(path, buf), list, sel, cmp);
}

SVASIM_EXPORT int chdir(const char *path)
{
	char buf[PATH_MAX];

	return REAL(chdir)(map_path(path, buf));
}

/* ---- stat, access, links ----------------------------------------------------------- */

SVASIM_EXPORT int stat(const char *path, struct stat *st)
{
	char buf[PATH_MAX];

	return REAL(stat)(map_path(path, buf), st);
}

SVASIM_EXPORT int stat64(const char *path, struct stat64 *st)
{
	char buf[PATH_MAX];

	return REAL(stat64)(map_path(path, buf), st);
}

SVASIM_EXPORT int lstat(const char *path, struct stat *st)
{
	char buf[PATH_MAX];

	return REAL(lstat)(map_path(path, buf), st);
}

SVASIM_EXPORT int lstat64(const char *path, struct stat64 *st)
{
	char buf[PATH_MAX];

	return REAL(lstat64)(map_path(path, buf), st);
}

SVASIM_EXPORT int fstatat(int dirfd, const char *path, struct stat *st, int flags)
{
	char buf[PATH_MAX];

	return REAL(fstatat)(dirfd, map_path(path, buf), st, flags);
}

SVASIM_EXPORT int fstatat64(int dirfd, const char *path, struct stat64 *st, int flags)
{
	char buf[PATH_MAX];

	return REAL(fstatat64)(dirfd, map_path(path, buf), st, flags);
}

/* Programs built against glibc before 2.33 call the versioned stat entry points. */
SVASIM_EXPORT int __xstat(int ver, const char *path, struct stat *st)
{
	char buf[PATH_MAX];

	return REAL(__xstat)(ver, map_path(path, buf), st);
}

SVASIM_EXPORT int __xstat64(int ver, const char *path, struct stat64 *st)
{
	char buf[PATH_MAX];

	return REAL(__xstat64)(ver, map_path(path, buf), st);
}

SVASIM_EXPORT int __lxstat(int ver, const char *path, struct stat *st)
{
	char buf[PATH_MAX];

	return REAL(__lxstat)(ver, map_path(path, buf), st);
}

SVASIM_EXPORT int __lxstat64(int ver, const char *path, struct stat64 *st)
{
	char buf[PATH_MAX];

	return REAL(__lxstat64)(ver, map_path(path, buf), st);
}

SVASIM_EXPORT int __fxstatat(int ver, int dirfd, const char *path, struct stat *st, int flags)
{
	char buf[PATH_MAX];

	return REAL(__fxstatat)(ver, dirfd, map_path(path, buf), st, flags);
}

SVASIM_EXPORT int __fxstatat64(int ver, int dirfd, const char *path, struct stat64 *st, int flags)
{
	char buf[PATH_MAX];

	return REAL(__fxstatat64)(ver, dirfd, map_path(path, buf), st, flags);
}

SVASIM_EXPORT int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *st)
{
	char buf[PATH_MAX];

	return REAL(statx)(dirfd, map_path(path, buf), flags, mask, st);
}

SVASIM_EXPORT int access(const char *path, int how)
{
	char buf[PATH_MAX];

	return REAL(access)(map_path(path, buf), how);
}

SVASIM_EXPORT int faccessat(int dirfd, const char *path, int how, int flags)
{
	char buf[PATH_MAX];

	return REAL(faccessat)(dirfd, map_path(path, buf), how, flags);
}

SVASIM_EXPORT ssize_t readlink(const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];

	return REAL(readlink)(map_path(path, buf), out, len);
}

SVASIM_EXPORT ssize_t __readlink_chk(const char *path, char *out, size_t len, size_t outlen)
{
	(void)outlen;
	return readlink(path, out, len);
}

SVASIM_EXPORT ssize_t readlinkat(int dirfd, const char *path, char *out, size_t len)
{
	char buf[PATH_MAX];

	return REAL(readlinkat)(dirfd, map_path(path, buf), out, len);
}

SVASIM_EXPORT char *realpath(const char *path, char *resolved)
{
	char buf[PATH_MAX];

	return REAL(realpath)(map_path(path, buf), resolved);
}

SVASIM_EXPORT char *__realpath_chk(const char *path, char *resolved, size_t len)
{
	(void)len;
	return realpath(path, resolved);
}

SVASIM_EXPORT char *canonicalize_file_name(const char *path)
{
	return realpath(path, NULL);
}

/* ---- the portal mapping ------------------------------------------------------------- */

static void *do_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int slot = -1, wqfile;
	void *p;

	if (fd < 0 || fd >= MAX_FDS || g_fds[fd].kind != FD_WQ)
		return REAL(mmap)(addr, len, prot, flags, fd, off);
	/* idxd_cdev_mmap(): one page at most, never executable. */
	if (len > 4096 || (prot & PROT_EXEC)) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	wqfile = g_fds[fd].wqfile;
	p = REAL(mmap)(addr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)),
		       -1, 0);
	if (p == MAP_FAILED)
		return p;
	/* The kernel maps the portal VM_DONTCOPY: a fork child has no portal. */
	madvise(p, 4096, MADV_DONTFORK);
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < SVASIM_MAX_PORTALS; i++) {
		struct svasim_portal *pt = &svasim_portals[i];

		if (__atomic_load_n(&pt->start, __ATOMIC_ACQUIRE) == 0) {
			pt->end = (uintptr_t)p + 4096;
			pt->pgoff = 0;
			pt->handle = g_wqf[wqfile].handle;
			pt->wqfile = wqfile;
			g_wqf[wqfile].refs++;
			__atomic_store_n(&pt->start, (uintptr_t)p, __ATOMIC_RELEASE);
			slot = i;
			break;
		}
	}
	pthread_mutex_unlock(&g_lock);
	if (slot < 0) {
		REAL(munmap)(p, 4096);
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return p;
}

SVASIM_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

SVASIM_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(addr, len, prot, flags, fd, off);
}

SVASIM_EXPORT int munmap(void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr, e = a + len;
	int rc = REAL(munmap)(addr, len);

	if (rc || !svasim_active)
		return rc;
	for (int i = 0; i < SVASIM_MAX_PORTALS; i++) {
		struct svasim_portal *pt = &svasim_portals[i];
		uintptr_t start = __atomic_load_n(&pt->start, __ATOMIC_ACQUIRE);

		if (start && start >= a && pt->end <= e) {
			int wqfile = pt->wqfile;

			__atomic_store_n(&pt->start, 0, __ATOMIC_RELEASE);
			svasim_wqfile_put(wqfile);
		}
	}
	return rc;
}

/* ---- set-up --------------------------------------------------------------------------- */

static void atfork_child(void)
{
	/* The child's files of the WQ are the parent's; its own opens start afresh. */
	for (int i = 0; i < MAX_FDS; i++) {
		if (g_fds[i].kind == FD_WQ)
			g_fds[i].kind = FD_TREE;
	}
	memset(g_wqf, 0, sizeof(g_wqf));
	pthread_mutex_init(&g_lock, NULL);
	svasim_portal_atfork_child();
}

__attribute__((constructor)) static void svasim_preload_init(void)
{
	const char *root = getenv("SVASIM_NATIVE_ROOT");
	const char *sock = getenv("SVASIM_NATIVE_SOCK");

	if (!root || !*root || !sock || !*sock || strlen(root) >= PATH_MAX - 256)
		return;
	strcpy(g_root, root);
	g_rootlen = strlen(g_root);
	while (g_rootlen > 1 && g_root[g_rootlen - 1] == '/')
		g_root[--g_rootlen] = '\0';
	svasim_portal_init(sock);
	pthread_atfork(NULL, NULL, atfork_child);
	svasim_active = 1;
}
