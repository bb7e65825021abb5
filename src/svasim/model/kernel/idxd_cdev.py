"""A WQ's character device from the process side: drivers/dma/idxd/cdev.c.

- ``idxd_cdev_open()`` binds the process's mm to the device (``iommu_sva_bind_device``,
  which allocates the mm's PASID on first use; the PASID policy hears of it), and
  ``idxd_cdev_mmap()`` maps the WQ's portal page into the process. The mapping holds a
  reference on the file (``vma->vm_file = get_file(file)`` in ``mmap_region()``,
  mm/mmap.c), as the file descriptor does.
- ``close()`` drops the descriptor's reference and ``munmap()`` of the portal the
  mapping's (``remove_vma()``: ``fput(vma->vm_file)``); ``fput()`` of the last one runs
  ``idxd_cdev_release()``, which unbinds (``iommu_sva_unbind_device``) when no other file
  of the process holds the device. Until then the portal stays usable and the binding
  stays. The PASID stays with the mm (freed in ``__mmdrop``) unless early free is on, as
  5.10 had it, and this was the mm's last binding.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition
from svasim.model.journal import Journal
from svasim.model.kernel.core import file_fields
from svasim.model.kernel.fpu import Fpu
from svasim.model.kernel_state import CpuState, Process, WqFile
from svasim.model.memory import PAGE_SIZE, Vma, check_mmap

#: The first descriptor a process gets for a file it opens (0-2 are stdio).
FIRST_FD = 3


@mypyc_attr(native_class=False)
class IdxdCdev(Fpu):
    """open/mmap, close and release of /dev/dsa/wqD.Q."""

    def open_wq(self, journal: Journal, pid: int, device: str, wq_id: int) -> tuple[int, int, bool, bool]:
        """open() + mmap() of /dev/dsa/wqD.Q: bind, then map the portal page.

        Returns (portal address, PASID, whether the PASID was allocated, shared).
        """
        proc = self.live_process(pid)
        # The portal's mmap is checked before the open binds anything: no room left above
        # mmap_min_addr, or too many mappings, is ENOMEM with nothing changed.
        check_mmap(proc.aspace, self.memory, PAGE_SIZE, False, False)
        res = self.accel.open_wq(journal, device, wq_id, pid, proc.aspace.pgd)
        if proc.pasid != res.pasid:
            before = {"pasid": proc.pasid}
            proc.pasid = res.pasid
            journal.emit(proc.entity, "mm.pasid.set", before, {"pasid": res.pasid})
            self.policy.on_pasid_alloc(self, self._acting_cpu(proc), proc, journal)
        # get_unused_fd_flags: the lowest free descriptor.
        used = {f.fd for f in proc.files if f.fd_open}
        fd = next(n for n in range(FIRST_FD, FIRST_FD + len(used) + 1) if n not in used)
        aspace = proc.aspace
        start = aspace.mmap_top - PAGE_SIZE
        file = WqFile(fd, device, wq_id, start)
        proc.files.append(file)
        vma = Vma(start, start + PAGE_SIZE, True, "portal", device, res.portal_offset)
        aspace.insert_vma(vma)
        aspace.mmap_top = start - PAGE_SIZE
        file.f_count += 1  # vma->vm_file = get_file(file)
        proc.vm_files[start] = file
        journal.emit(
            f"vma/{pid}/{start:#x}",
            "vma.map",
            None,
            {
                "start": start,
                "end": start + PAGE_SIZE,
                "writable": True,
                "kind": "portal",
                "device": device,
                "portal_offset": res.portal_offset,
                "fd": fd,
            },
        )
        journal.emit(proc.entity, "mm.mmap_top", None, {"mmap_top": aspace.mmap_top})
        journal.emit(file.entity(pid), "file.open", None, file_fields(file))
        return start, res.pasid, res.pasid_allocated, res.shared

    def close_wq(self, journal: Journal, pid: int, device: str, wq_id: int) -> tuple[int, bool]:
        """close() of the process's descriptor for a WQ's file.

        The file is released only when its portal is unmapped too; then the binding
        goes, and with early free on and no other binding left, the PASID is freed, may
        be reused by another process, and the policy is told. Returns (the mm's PASID,
        whether it was freed now).
        """
        proc = self.live_process(pid)
        file = next((f for f in proc.files if f.fd_open and (f.device, f.wq_id) == (device, wq_id)), None)
        if file is None:
            raise FailedPrecondition(
                "WQ_NOT_OPEN", f"process {pid} has not opened {device} WQ {wq_id}", device=device, wq=wq_id
            )
        return self._close_fd(journal, proc, file, early_free=self.early_free)

    def _close_fd(self, journal: Journal, proc: Process, file: WqFile, *, early_free: bool) -> tuple[int, bool]:
        """close(fd): the descriptor's reference goes."""
        file.fd_open = False
        journal.emit(
            file.entity(proc.pid),
            "file.close",
            {"fd_open": True},
            {"fd_open": False, "f_count": file.f_count - 1},
            detail={"device": file.device, "wq": file.wq_id},
        )
        return self._fput(journal, proc, file, early_free=early_free)

    def _put_vm_file(self, journal: Journal, proc: Process, vma: Vma, *, early_free: bool) -> None:
        """remove_vma: a portal mapping that went drops its reference on the file."""
        file = proc.vm_files.pop(vma.start, None)
        if file is not None:
            self._fput(journal, proc, file, early_free=early_free)

    def _fput(self, journal: Journal, proc: Process, file: WqFile, *, early_free: bool) -> tuple[int, bool]:
        """Drop one reference; the last runs idxd_cdev_release. Returns (PASID, freed)."""
        file.f_count -= 1
        if file.f_count:
            journal.emit(file.entity(proc.pid), "file.put", None, {"f_count": file.f_count})
            return proc.pasid, False
        return self._idxd_cdev_release(journal, proc, file, early_free=early_free)

    def _idxd_cdev_release(
        self, journal: Journal, proc: Process, file: WqFile, *, early_free: bool
    ) -> tuple[int, bool]:
        """The file's release: the device drains and, for the process's last file of the
        device, unbinds; with ``early_free`` the mm's last unbind frees the PASID."""
        proc.files.remove(file)
        journal.emit(
            file.entity(proc.pid),
            "file.release",
            {"fd_open": file.fd_open, "f_count": 0},
            None,
            detail={"device": file.device, "wq": file.wq_id},
        )
        # Another file of the same device keeps the binding.
        unbind = not any(f.device == file.device for f in proc.files)
        last = not proc.files
        pasid, freed = self.accel.close_wq(journal, file.device, file.wq_id, proc.pid, unbind, early_free and last)
        if not unbind:
            return proc.pasid, False
        if freed:
            proc.pasid = 0
            journal.emit(proc.entity, "mm.pasid.set", {"pasid": pasid}, {"pasid": 0})
            self.policy.on_pasid_free(self, self._acting_cpu(proc), proc, journal)
        return pasid, freed

    def _acting_cpu(self, proc: Process) -> CpuState:
        """The CPU the syscall runs on: one running a thread of the process, else CPU 0."""
        for c in self.cpus:
            t = self.current(c)
            if t is not None and t.pid == proc.pid:
                return c
        return self.cpus[0]
