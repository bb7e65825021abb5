/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket protocol between the preload library and svasim's native bridge
 * (src/svasim/native/protocol.py is its Python twin; tests check that both agree).
 *
 * One AF_UNIX SOCK_SEQPACKET connection per thread of the program: every request is
 * one packet (a struct svasim_req followed by len bytes of data) and gets one packet
 * back (a struct svasim_rsp). All fields are little endian, as on the host.
 */
#ifndef SVASIM_BRIDGE_PROTO_H
#define SVASIM_BRIDGE_PROTO_H

#include <stdint.h>

#define SVASIM_PROTO_VERSION 1

enum svasim_op {
	/* First packet of a connection: pid, tid, ppid and the image's token. */
	SVASIM_OP_HELLO = 1,
	/* open() of /dev/dsa/wqD.Q: data is the file name ("wq0.0"). */
	SVASIM_OP_WQ_OPEN = 2,
	/* Last reference (fd and mappings) of an opened WQ file dropped: the release. */
	SVASIM_OP_WQ_RELEASE = 3,
	/* A 64-byte store trapped at a portal: handle, kind, offset, data = the source. */
	SVASIM_OP_SUBMIT = 4,
	/* write() to a sysfs attribute: data is "path\0bytes", path relative to the tree. */
	SVASIM_OP_ATTR_WRITE = 5,
	/* fork() returned in the parent: arg0 is the child's pid. */
	SVASIM_OP_FORK = 6,
};

/* Kinds of SVASIM_OP_SUBMIT: the numbering of svasim.cpu.v1 StoreKind. */
enum svasim_store_kind {
	SVASIM_STORE_ENQCMD = 1,
	SVASIM_STORE_MOVDIR64B = 3,
};

/* Results of SVASIM_OP_SUBMIT. */
enum svasim_submit_result {
	SVASIM_SUBMIT_ACCEPTED = 0,	/* ENQCMD ZF=0, or MOVDIR64B posted */
	SVASIM_SUBMIT_RETRY = 1,	/* ENQCMD ZF=1 */
	SVASIM_SUBMIT_GP = 2,		/* #GP the kernel did not fix up: SIGSEGV (SI_KERNEL) */
	SVASIM_SUBMIT_PAGE_FAULT = 3,	/* unresolved fault on the destination: SIGSEGV */
};

#define SVASIM_MAX_DATA 4096

struct svasim_req {
	uint32_t op;
	uint32_t handle;	/* WQ handle from SVASIM_OP_WQ_OPEN */
	uint32_t kind;		/* svasim_store_kind; HELLO: protocol version */
	uint32_t len;		/* bytes of data following this header */
	uint64_t arg0;		/* HELLO: pid; SUBMIT: offset in the portal; WQ_OPEN: open flags */
	uint64_t arg1;		/* HELLO: tid */
	uint64_t arg2;		/* HELLO: ppid */
	uint64_t arg3;		/* HELLO: token of the program image (one per exec) */
} __attribute__((packed));

struct svasim_rsp {
	int32_t status;		/* 0, or a negative errno (the system call's) */
	uint32_t result;	/* SUBMIT: svasim_submit_result; ATTR_WRITE: bytes taken */
	uint32_t handle;	/* WQ_OPEN: the handle */
	uint32_t flags;		/* WQ_OPEN: 1 if the WQ is shared (ENQCMD), 0 if dedicated */
} __attribute__((packed));

#endif
