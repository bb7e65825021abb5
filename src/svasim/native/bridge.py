"""The native-process bridge: real programs as processes of the fabric.

Each program that the preload library runs in (``svasim run-native``) talks to the
bridge over a Unix socket, one connection per thread. The bridge makes the program a
process of the fabric (CreateProcess, or Fork of its parent's fabric process, then Exec
when the image changed), its threads threads of it (CreateThread), opens and releases
its WQ files (OpenWorkQueue, CloseWorkQueue), and turns each store the library trapped
at a portal into the fabric's ENQCMD or MOVDIR64B from that thread, at the fabric's own
portal of the WQ: the PASID, the #GP fixup and the device's answer are the fabric's.
Its sysfs writes go to :class:`~svasim.native.sysfs.IdxdSysfs`.

Memory: each program's fabric process is a native process (CreateProcess and Fork with
its real pid): the device's page walks read the program's real page table and its DMA
reaches the program's real pages (svasim.model.kernel.native, svasim.native.host), so
the program sees its completion records and its data as it would on hardware. The
fabric's cpu service must therefore run on this host, with --native.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from svasim.native import protocol
from svasim.native.protocol import Op, Request, StoreKind, SubmitResult, pack_response
from svasim.native.sysfs import IdxdSysfs, StoreError, errno_of
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import SvasimError

log = logging.getLogger("svasim.native")

T = TypeVar("T")

_OUTCOME = {
    cpu_pb2.ENQCMD_OUTCOME_ACCEPTED: SubmitResult.ACCEPTED,
    cpu_pb2.ENQCMD_OUTCOME_POSTED: SubmitResult.ACCEPTED,
    cpu_pb2.ENQCMD_OUTCOME_STORED: SubmitResult.ACCEPTED,
    cpu_pb2.ENQCMD_OUTCOME_RETRY: SubmitResult.RETRY,
    cpu_pb2.ENQCMD_OUTCOME_PAGE_FAULT_SIGSEGV: SubmitResult.PAGE_FAULT,
}


@dataclass
class WqFile:
    """An open file of /dev/dsa/wqD.Q in a program, and the fabric's portal of it."""

    handle: int
    device: str
    wq_id: int
    portal: int
    shared: bool


@dataclass
class Image:
    """One program image (a pid between execs) and its fabric process."""

    pid: int
    token: int
    fabric_pid: int
    name: str
    threads: dict[int, int] = field(default_factory=dict)
    spare_tids: list[int] = field(default_factory=list)
    files: dict[int, WqFile] = field(default_factory=dict)
    pidfd: int = -1
    ended: bool = False


@dataclass
class Counters:
    """What the bridge did, for its report."""

    processes: int = 0
    threads: int = 0
    opens: int = 0
    releases: int = 0
    enqcmds: int = 0
    movdir64bs: int = 0
    retries: int = 0
    attr_writes: int = 0


class Bridge:
    """The bridge daemon for one fabric (``client`` is a :class:`svasim_client.Client`)."""

    def __init__(self, client: Any, root: Path, sock_path: Path) -> None:
        self.client = client
        self.root = root
        self.sock_path = sock_path
        self.sysfs = IdxdSysfs(root, client)
        self.counters = Counters()
        self._lock = threading.RLock()
        self._images: dict[int, Image] = {}
        self._handles = itertools.count(1)
        self._cpus: list[int] = []
        self._running: dict[int, int] = {}
        self._cpu_of: dict[int, int] = {}
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe()

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Generate the tree and start serving on the socket."""
        if len(os.fsencode(self.sock_path)) >= 108:
            raise ValueError(f"socket path {self.sock_path} is longer than a Unix socket's 107 bytes")
        self.root.mkdir(parents=True, exist_ok=True)
        self.sysfs.refresh()
        self._cpus = [c.cpu for c in self.client.fabric().cpus]
        if not self._cpus:
            raise RuntimeError("the fabric has no CPUs to run native threads on")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        lsock.bind(str(self.sock_path))
        lsock.listen(64)
        self._listener = lsock
        for target in (self._accept_loop, self._reap_loop):
            t = threading.Thread(target=target, name=f"svasim-bridge-{target.__name__}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop serving; every program image still known is ended as if it exited."""
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            for conn in list(self._conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        os.write(self._wake_w, b"x")
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(timeout=10)
        with self._lock:
            for img in list(self._images.values()):
                self._end_image(img)
        try:
            self.sock_path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._wake_r)
        os.close(self._wake_w)

    def env(self) -> dict[str, str]:
        """The environment a program needs besides LD_PRELOAD."""
        return {"SVASIM_NATIVE_ROOT": str(self.root), "SVASIM_NATIVE_SOCK": str(self.sock_path)}

    # -- connections ----------------------------------------------------------------------
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            t = threading.Thread(target=self._serve, args=(conn,), name="svasim-bridge-conn", daemon=True)
            t.start()
            with self._lock:
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        img: Image | None = None
        tid = 0
        try:
            hello = Request.unpack(conn.recv(protocol.REQ_SIZE + protocol.MAX_DATA))
            if hello.op != Op.HELLO or hello.kind != protocol.VERSION:
                conn.send(pack_response(-errno.EPROTO))
                return
            tid = hello.arg1
            img = self._hello(hello.arg0, tid, hello.arg2, hello.arg3)
            conn.send(pack_response(0))
            while True:
                packet = conn.recv(protocol.REQ_SIZE + protocol.MAX_DATA)
                if not packet:
                    return
                conn.send(self._dispatch(img, tid, Request.unpack(packet)))
        except (OSError, ValueError) as e:
            if not self._stopping.is_set():
                log.warning("native connection of pid %s tid %s: %s", img.pid if img else "?", tid, e)
        except SvasimError as e:
            log.error("fabric refused a native program's hello: %s", e)
        finally:
            with self._lock:
                self._conns.discard(conn)
                if img is not None:
                    self._thread_gone(img, tid)
            conn.close()

    def _dispatch(self, img: Image, tid: int, req: Request) -> bytes:
        try:
            with self._lock:
                if img.ended:
                    return pack_response(-errno.ESRCH)
                if req.op == Op.SUBMIT:
                    return self._submit(img, tid, req)
                if req.op == Op.WQ_OPEN:
                    return self._wq_open(img, req.data.rstrip(b"\0").decode(errors="replace"))
                if req.op == Op.WQ_RELEASE:
                    return self._wq_release(img, req.handle)
                if req.op == Op.FORK:
                    if req.arg0 not in self._images:
                        self._new_image(req.arg0, img.pid, img.token, forker=img.threads.get(tid))
                    return pack_response(0)
                if req.op == Op.ATTR_WRITE:
                    path, _, value = req.data.partition(b"\0")
                    self.counters.attr_writes += 1
                    taken = self.sysfs.store(path.decode(errors="replace"), value)
                    return pack_response(0, result=taken)
                return pack_response(-errno.EINVAL)
        except StoreError as e:
            return pack_response(-(e.errno or errno.EIO))
        except SvasimError as e:
            log.warning("fabric refused %s of pid %d: %s", Op(req.op).name, img.pid, e)
            return pack_response(-errno_of(e))

    # -- processes and threads ------------------------------------------------------------
    def _hello(self, pid: int, tid: int, ppid: int, token: int) -> Image:
        with self._lock:
            img = self._images.get(pid)
            if img is not None and img.token != token:
                # The same pid with a new image: it called execve().
                img = self._exec_image(img, token)
            if img is None:
                img = self._new_image(pid, ppid, token)
            if tid not in img.threads:
                ftid = img.spare_tids.pop(0) if img.spare_tids else self.client.create_thread(img.fabric_pid).tid
                img.threads[tid] = ftid
                self._cpu_of[ftid] = self._cpus[self.counters.threads % len(self._cpus)]
                self.counters.threads += 1
            return img

    def _new_image(self, pid: int, ppid: int, token: int, *, forker: int | None = None) -> Image:
        name = _comm(pid)
        parent = self._images.get(ppid)
        if parent is not None and not parent.ended and parent.threads:
            # fork(): the child is a copy of the parent's mm, with no PASID. The forking
            # thread when the parent said which; else its first.
            ptid = forker if forker is not None else next(iter(parent.threads.values()))
            child = self._on_cpu(ptid, lambda: self.client.fork(ptid, pid))
            proc = child
            if token != parent.token:
                proc = self._on_cpu(child.tids[0], lambda: self.client.exec(child.tids[0]))
        else:
            proc = self.client.create_process(name, pid)
        img = Image(pid=pid, token=token, fabric_pid=proc.pid, name=name, spare_tids=list(proc.tids))
        try:
            img.pidfd = os.pidfd_open(pid)
        except OSError:
            img.pidfd = -1
        self._images[pid] = img
        self.counters.processes += 1
        os.write(self._wake_w, b"x")
        log.info("native pid %d (%s) is fabric process %d", pid, name, proc.pid)
        return img

    def _thread_gone(self, img: Image, tid: int) -> None:
        """A thread's connection closed: the thread exited (its process may live on)."""
        ftid = img.threads.get(tid)
        if ftid is None or img.ended or len(img.threads) <= 1:
            return
        del img.threads[tid]
        self._exit_thread(ftid)

    def _end_image(self, img: Image) -> None:
        """The program exited: its files are released, its threads exit (the last one
        takes the fabric process with it)."""
        if img.ended:
            return
        img.ended = True
        for f in list(img.files.values()):
            self._release(img, f)
        for ftid in [*img.threads.values(), *img.spare_tids]:
            self._exit_thread(ftid)
        if img.pidfd >= 0:
            os.close(img.pidfd)
            img.pidfd = -1
        if self._images.get(img.pid) is img:
            del self._images[img.pid]
        os.write(self._wake_w, b"x")

    def _exec_image(self, img: Image, token: int) -> Image:
        """execve(): the files go (the portal mappings do), the other threads exit, and
        the calling thread's process gets a fresh mm."""
        img.ended = True
        for f in list(img.files.values()):
            self._release(img, f)
        tids = [*img.threads.values(), *img.spare_tids]
        keep = tids.pop(0)
        for ftid in tids:
            self._exit_thread(ftid)
        proc = self._on_cpu(keep, lambda: self.client.exec(keep))
        new = Image(pid=img.pid, token=token, fabric_pid=proc.pid, name=_comm(img.pid), spare_tids=list(proc.tids))
        new.pidfd, img.pidfd = img.pidfd, -1
        self._images[img.pid] = new
        return new

    def _exit_thread(self, ftid: int) -> None:
        for cpu, running in list(self._running.items()):
            if running == ftid:
                del self._running[cpu]
        try:
            self.client.exit_thread(ftid)
        except SvasimError as e:
            log.warning("fabric thread %d did not exit: %s", ftid, e)

    def _reap_loop(self) -> None:
        """Watches each program's pidfd: an exit ends its image."""
        while not self._stopping.is_set():
            with self._lock:
                fds = {img.pidfd: img for img in self._images.values() if img.pidfd >= 0}
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for fd in fds:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                    continue
                with self._lock:
                    img = fds[fd]
                    if not img.ended:
                        log.info("native pid %d exited", img.pid)
                        self._end_image(img)

    def _on_cpu(self, ftid: int, call: Callable[[], T]) -> T:
        """Run ``call`` with the fabric thread on its CPU (scheduling it there first)."""
        cpu = self._cpu_of.setdefault(ftid, self._cpus[0])
        if self._running.get(cpu) != ftid:
            self.client.schedule(ftid, cpu)
            self._running[cpu] = ftid
        try:
            return call()
        except SvasimError as e:
            if e.reason != "THREAD_NOT_RUNNING":
                raise
        # Another client of the fabric ran something else on that CPU meanwhile.
        self.client.schedule(ftid, cpu)
        self._running[cpu] = ftid
        return call()

    # -- WQ files and stores --------------------------------------------------------------
    def _wq_open(self, img: Image, name: str) -> bytes:
        dev, wq_id = _wq_name(name)
        if dev is None or not self.sysfs.wq_openable(dev, wq_id):
            return pack_response(-errno.ENXIO)
        r = self.client.open_wq(img.fabric_pid, dev, wq_id)
        handle = next(self._handles)
        img.files[handle] = WqFile(handle, dev, wq_id, r.portal_address, r.shared)
        self.counters.opens += 1
        self.sysfs.refresh()
        return pack_response(0, handle=handle, flags=int(r.shared))

    def _wq_release(self, img: Image, handle: int) -> bytes:
        f = img.files.get(handle)
        if f is None:
            return pack_response(-errno.EBADF)
        self._release(img, f)
        return pack_response(0)

    def _release(self, img: Image, f: WqFile) -> None:
        del img.files[f.handle]
        try:
            self.client.close_wq(img.fabric_pid, f.device, f.wq_id)
        except SvasimError as e:
            log.warning("release of %s wq %d by pid %d: %s", f.device, f.wq_id, img.pid, e)
        self.counters.releases += 1
        self.sysfs.refresh()

    def _submit(self, img: Image, tid: int, req: Request) -> bytes:
        f = img.files.get(req.handle)
        ftid = img.threads.get(tid)
        if f is None or ftid is None or len(req.data) != 64 or req.arg0 >= 4096:
            return pack_response(-errno.EINVAL)
        dst = f.portal + req.arg0
        if req.kind == StoreKind.ENQCMD:
            self.counters.enqcmds += 1
            r = self._on_cpu(ftid, lambda: self.client.enqcmd(ftid, dst, req.data))
        elif req.kind == StoreKind.MOVDIR64B:
            self.counters.movdir64bs += 1
            r = self._on_cpu(ftid, lambda: self.client.movdir64b(ftid, dst, req.data))
        else:
            return pack_response(-errno.EINVAL)
        result = _OUTCOME.get(r.outcome, SubmitResult.GP)
        if result == SubmitResult.RETRY:
            self.counters.retries += 1
        if result == SubmitResult.ACCEPTED:
            # The engines run on their own on hardware: let the device catch up.
            self.client.advance(f.device)
        return pack_response(0, result=int(result))


def _wq_name(name: str) -> tuple[str | None, int]:
    """("dsaD", Q) of "wqD.Q"."""
    if not name.startswith("wq") or name.count(".") != 1:
        return None, 0
    d, _, q = name[2:].partition(".")
    if not (d.isdigit() and q.isdigit()):
        return None, 0
    return f"dsa{int(d)}", int(q)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return f"native-{pid}"
