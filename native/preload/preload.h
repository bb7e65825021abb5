/* SPDX-License-Identifier: Apache-2.0 */
/* Shared state of the svasim preload library (paths.c, portal.c). */
#ifndef SVASIM_PRELOAD_H
#define SVASIM_PRELOAD_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bridge_proto.h"

#define SVASIM_EXPORT __attribute__((visibility("default")))
#define SVASIM_MAX_PORTALS 64

/* A portal mapping: [start, end) of the program's address space, PROT_NONE. */
struct svasim_portal {
	uintptr_t start;	/* 0 when the slot is free; published last */
	uintptr_t end;
	uint64_t pgoff;		/* the mmap offset into the WQ file */
	uint32_t handle;	/* the bridge's WQ handle */
	int wqfile;		/* index into the WQ file table (paths.c) */
};

extern struct svasim_portal svasim_portals[SVASIM_MAX_PORTALS];

/* Non-zero once the environment named a tree and a bridge socket. */
extern int svasim_active;

/* One request and its answer over this thread's connection; async-signal-safe.
 * Returns 0, or a negative errno when the bridge cannot be reached. */
int svasim_request(struct svasim_req *req, const void *data, size_t len, struct svasim_rsp *rsp);

/* The same from ordinary code: signals blocked around it, the thread's socket closed
 * when the thread exits. */
int svasim_request_locked(struct svasim_req *req, const void *data, size_t len, struct svasim_rsp *rsp);

/* The real sigaction, behind the interposed one. */
int svasim_real_sigaction(int sig, const struct sigaction *act, struct sigaction *oact);

/* Set up the connection state and the trap handlers (portal.c), from the constructor. */
void svasim_portal_init(const char *sock_path);

/* In a fork child: forget connections (paths.c calls this from its atfork handler). */
void svasim_portal_atfork_child(void);

/* A mapping of a WQ file went away (paths.c). */
void svasim_wqfile_put(int wqfile);

#endif
