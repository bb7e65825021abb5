// svasim_enqcmd: the ENQCMD path of a user program, against a running svasim fabric.
//
// The descriptor is a struct dsa_hw_desc and the completion record a struct
// dsa_completion_record, both from the kernel's own <linux/idxd.h>: their 64 and 32 bytes
// travel as they are, exactly as a program on real hardware would store them with ENQCMD
// and read them back from memory.
//
// Exit status: 0 when the device completed the MEMMOVE with DSA_COMP_SUCCESS and the
// destination matches the source byte for byte; 1 when the instruction or the operation did
// not succeed; 2 for bad command-line arguments; 3 for an RPC error.

#include <linux/idxd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "svasim/cpu/v1/cpu.grpc.pb.h"

namespace cpu = svasim::cpu::v1;

// The raw forms are copied byte for byte, which is only the uapi layout on a little-endian host.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the idxd uapi layouts are little-endian");
static_assert(sizeof(struct dsa_hw_desc) == 64, "struct dsa_hw_desc is 64 bytes");
static_assert(sizeof(struct dsa_completion_record) == 32, "struct dsa_completion_record is 32 bytes");

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRpc = 3;
constexpr uint64_t kPageSize = 4096;

// DSA requires the completion record to be 32-byte aligned (DSA_COMP_CRA_ALIGN otherwise).
constexpr uint64_t kCompletionAlign = 32;

struct Options {
  std::string address;
  std::string device = "dsa0";
  uint32_t wq_id = 0;
  uint32_t cpu = 0;
  uint32_t size = 4096;
  bool unmapped_source = false;
  bool unmapped_completion = false;
  double timeout = 30.0;
};

// An RPC that failed: the method, and the status the server sent.
struct RpcError {
  std::string method;
  grpc::Status status;
};

const char *StatusCodeName(grpc::StatusCode code) {
  switch (code) {
#define SVASIM_CODE(c) \
  case grpc::StatusCode::c: \
    return #c;
    SVASIM_CODE(OK)
    SVASIM_CODE(CANCELLED)
    SVASIM_CODE(UNKNOWN)
    SVASIM_CODE(INVALID_ARGUMENT)
    SVASIM_CODE(DEADLINE_EXCEEDED)
    SVASIM_CODE(NOT_FOUND)
    SVASIM_CODE(ALREADY_EXISTS)
    SVASIM_CODE(PERMISSION_DENIED)
    SVASIM_CODE(RESOURCE_EXHAUSTED)
    SVASIM_CODE(FAILED_PRECONDITION)
    SVASIM_CODE(ABORTED)
    SVASIM_CODE(OUT_OF_RANGE)
    SVASIM_CODE(UNIMPLEMENTED)
    SVASIM_CODE(INTERNAL)
    SVASIM_CODE(UNAVAILABLE)
    SVASIM_CODE(DATA_LOSS)
    SVASIM_CODE(UNAUTHENTICATED)
#undef SVASIM_CODE
    default:
      return "UNKNOWN_CODE";
  }
}

// The identifier <linux/idxd.h> gives a completion status, so a reader can grep for it.
const char *CompletionStatusName(uint8_t status) {
  switch (status) {
#define SVASIM_COMP(s) \
  case s: \
    return #s;
    SVASIM_COMP(DSA_COMP_NONE)
    SVASIM_COMP(DSA_COMP_SUCCESS)
    SVASIM_COMP(DSA_COMP_SUCCESS_PRED)
    SVASIM_COMP(DSA_COMP_PAGE_FAULT_NOBOF)
    SVASIM_COMP(DSA_COMP_PAGE_FAULT_IR)
    SVASIM_COMP(DSA_COMP_BATCH_FAIL)
    SVASIM_COMP(DSA_COMP_BATCH_PAGE_FAULT)
    SVASIM_COMP(DSA_COMP_DR_OFFSET_NOINC)
    SVASIM_COMP(DSA_COMP_DR_OFFSET_ERANGE)
    SVASIM_COMP(DSA_COMP_DIF_ERR)
    SVASIM_COMP(DSA_COMP_BAD_OPCODE)
    SVASIM_COMP(DSA_COMP_INVALID_FLAGS)
    SVASIM_COMP(DSA_COMP_NOZERO_RESERVE)
    SVASIM_COMP(DSA_COMP_XFER_ERANGE)
    SVASIM_COMP(DSA_COMP_DESC_CNT_ERANGE)
    SVASIM_COMP(DSA_COMP_DR_ERANGE)
    SVASIM_COMP(DSA_COMP_OVERLAP_BUFFERS)
    SVASIM_COMP(DSA_COMP_DCAST_ERR)
    SVASIM_COMP(DSA_COMP_DESCLIST_ALIGN)
    SVASIM_COMP(DSA_COMP_INT_HANDLE_INVAL)
    SVASIM_COMP(DSA_COMP_CRA_XLAT)
    SVASIM_COMP(DSA_COMP_CRA_ALIGN)
    SVASIM_COMP(DSA_COMP_ADDR_ALIGN)
    SVASIM_COMP(DSA_COMP_PRIV_BAD)
    SVASIM_COMP(DSA_COMP_TRAFFIC_CLASS_CONF)
    SVASIM_COMP(DSA_COMP_PFAULT_RDBA)
    SVASIM_COMP(DSA_COMP_HW_ERR1)
    SVASIM_COMP(DSA_COMP_HW_ERR_DRB)
    SVASIM_COMP(DSA_COMP_TRANSLATION_FAIL)
#undef SVASIM_COMP
    default:
      return "unknown status";
  }
}

// Prints the gRPC status code and, from the google.rpc.Status carried in the
// grpc-status-details-bin trailer, the ErrorInfo reason, domain and metadata.
void PrintRpcError(const RpcError &e) {
  const grpc::Status &s = e.status;
  std::fprintf(stderr, "svasim_enqcmd: %s failed: %s (%d): %s\n", e.method.c_str(), StatusCodeName(s.error_code()),
               static_cast<int>(s.error_code()), s.error_message().c_str());
  if (s.error_details().empty()) return;
  google::rpc::Status details;
  if (!details.ParseFromString(s.error_details())) {
    std::fprintf(stderr, "  (grpc-status-details-bin is not a google.rpc.Status)\n");
    return;
  }
  for (const google::protobuf::Any &any : details.details()) {
    google::rpc::ErrorInfo info;
    if (!any.UnpackTo(&info)) continue;
    std::fprintf(stderr, "  reason %s, domain %s\n", info.reason().c_str(), info.domain().c_str());
    // A protobuf map has no order: sort it so the output is the same every time.
    const std::map<std::string, std::string> metadata(info.metadata().begin(), info.metadata().end());
    for (const auto &[key, value] : metadata) std::fprintf(stderr, "  %s=%s\n", key.c_str(), value.c_str());
  }
}

// Blocking calls to the cpu service; each one throws RpcError when the call fails.
class Fabric {
 public:
  Fabric(const std::string &address, double timeout)
      : stub_(cpu::CpuService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        timeout_(timeout) {}

  cpu::Process CreateProcess(const std::string &name) {
    cpu::CreateProcessRequest req;
    req.set_name(name);
    return Call("CreateProcess", &cpu::CpuService::Stub::CreateProcess, req).process();
  }

  uint64_t Mmap(uint64_t pid, uint64_t length) {
    cpu::MmapRequest req;
    req.set_pid(pid);
    req.set_length(length);
    req.set_writable(true);
    req.set_populate(true);
    return Call("Mmap", &cpu::CpuService::Stub::Mmap, req).address();
  }

  void Munmap(uint64_t pid, uint64_t address, uint64_t length) {
    cpu::MunmapRequest req;
    req.set_pid(pid);
    req.set_address(address);
    req.set_length(length);
    Call("Munmap", &cpu::CpuService::Stub::Munmap, req);
  }

  void WriteMemory(uint64_t pid, uint64_t address, const std::string &data) {
    cpu::WriteMemoryRequest req;
    req.set_pid(pid);
    req.set_address(address);
    req.set_data(data);
    Call("WriteMemory", &cpu::CpuService::Stub::WriteMemory, req);
  }

  std::string ReadMemory(uint64_t pid, uint64_t address, uint64_t length) {
    cpu::ReadMemoryRequest req;
    req.set_pid(pid);
    req.set_address(address);
    req.set_length(length);
    return Call("ReadMemory", &cpu::CpuService::Stub::ReadMemory, req).data();
  }

  cpu::OpenWorkQueueResponse OpenWorkQueue(uint64_t pid, const std::string &device, uint32_t wq_id) {
    cpu::OpenWorkQueueRequest req;
    req.set_pid(pid);
    req.set_device(device);
    req.set_wq_id(wq_id);
    return Call("OpenWorkQueue", &cpu::CpuService::Stub::OpenWorkQueue, req);
  }

  cpu::Thread CreateThread(uint64_t pid) {
    cpu::CreateThreadRequest req;
    req.set_pid(pid);
    return Call("CreateThread", &cpu::CpuService::Stub::CreateThread, req).thread();
  }

  void Schedule(uint64_t tid, uint32_t cpu_nr) {
    cpu::ScheduleRequest req;
    req.set_tid(tid);
    req.set_cpu(cpu_nr);
    Call("Schedule", &cpu::CpuService::Stub::Schedule, req);
  }

  cpu::EnqcmdResponse Enqcmd(uint64_t tid, uint64_t portal, const struct dsa_hw_desc &desc) {
    cpu::EnqcmdRequest req;
    req.set_tid(tid);
    req.set_portal_address(portal);
    // The raw form: the 64 bytes of the source operand, as ENQCMD reads them.
    req.set_raw(reinterpret_cast<const char *>(&desc), sizeof(desc));
    return Call("Enqcmd", &cpu::CpuService::Stub::Enqcmd, req);
  }

  cpu::WaitCompletionResponse WaitCompletion(uint64_t tid, uint64_t completion_addr) {
    cpu::WaitCompletionRequest req;
    req.set_tid(tid);
    req.set_completion_addr(completion_addr);
    return Call("WaitCompletion", &cpu::CpuService::Stub::WaitCompletion, req);
  }

 private:
  template <typename Request, typename Response>
  using Method = grpc::Status (cpu::CpuService::Stub::*)(grpc::ClientContext *, const Request &, Response *);

  template <typename Request, typename Response>
  Response Call(const char *name, Method<Request, Response> method, const Request &req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         std::chrono::duration<double>(timeout_)));
    Response resp;
    grpc::Status status = (stub_.get()->*method)(&ctx, req, &resp);
    if (!status.ok()) throw RpcError{name, status};
    return resp;
  }

  std::unique_ptr<cpu::CpuService::Stub> stub_;
  double timeout_;
};

void Usage(FILE *out) {
  std::fprintf(out,
               "usage: svasim_enqcmd [options] HOST:PORT\n"
               "Runs one ENQCMD MEMMOVE against a svasim fabric and checks the bytes moved.\n"
               "  --device NAME          accelerator device (default dsa0)\n"
               "  --wq ID                shared work queue id (default 0)\n"
               "  --cpu N                logical CPU to run the thread on (default 0)\n"
               "  --size BYTES           transfer size, 1 to 1048576 (default 4096)\n"
               "  --timeout SECONDS      deadline of each RPC (default 30)\n"
               "  --unmapped-source      unmap the source before ENQCMD: the device reports a page fault\n"
               "  --unmapped-completion  point the completion record at an unmapped page\n");
}

bool ParseUnsigned(const char *text, uint64_t max, uint64_t *out) {
  if (*text == '\0' || *text == '-') return false;
  char *end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 0);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

// Returns kExitUsage on a bad command line, 0 otherwise.
int ParseOptions(int argc, char **argv, Options *opt) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&](const char *what) -> const char * {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "svasim_enqcmd: %s needs %s\n", arg.c_str(), what);
        return nullptr;
      }
      return argv[++i];
    };
    uint64_t n = 0;
    if (arg == "-h" || arg == "--help") {
      Usage(stdout);
      std::exit(0);
    } else if (arg == "--device") {
      const char *v = value("a device name");
      if (v == nullptr) return kExitUsage;
      opt->device = v;
    } else if (arg == "--wq" || arg == "--cpu" || arg == "--size") {
      const char *v = value("a number");
      uint64_t max = arg == "--size" ? 1u << 20 : UINT32_MAX;
      if (v == nullptr || !ParseUnsigned(v, max, &n) || (arg == "--size" && n == 0)) {
        std::fprintf(stderr, "svasim_enqcmd: bad value for %s: %s\n", arg.c_str(), v ? v : "(none)");
        return kExitUsage;
      }
      uint32_t *field = arg == "--wq" ? &opt->wq_id : arg == "--cpu" ? &opt->cpu : &opt->size;
      *field = static_cast<uint32_t>(n);
    } else if (arg == "--timeout") {
      const char *v = value("a number of seconds");
      char *end = nullptr;
      double t = v ? std::strtod(v, &end) : 0.0;
      if (v == nullptr || *end != '\0' || !(t > 0.0)) {
        std::fprintf(stderr, "svasim_enqcmd: bad value for --timeout: %s\n", v ? v : "(none)");
        return kExitUsage;
      }
      opt->timeout = t;
    } else if (arg == "--unmapped-source") {
      opt->unmapped_source = true;
    } else if (arg == "--unmapped-completion") {
      opt->unmapped_completion = true;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "svasim_enqcmd: unknown option %s\n", arg.c_str());
      return kExitUsage;
    } else if (opt->address.empty()) {
      opt->address = arg;
    } else {
      std::fprintf(stderr, "svasim_enqcmd: one server address only, got %s and %s\n", opt->address.c_str(),
                   arg.c_str());
      return kExitUsage;
    }
  }
  if (opt->address.empty()) {
    Usage(stderr);
    return kExitUsage;
  }
  return 0;
}

std::string Hex(const void *data, size_t len) {
  static const char digits[] = "0123456789abcdef";
  const auto *p = static_cast<const uint8_t *>(data);
  std::string out;
  out.reserve(2 * len);
  for (size_t i = 0; i < len; i++) {
    out.push_back(digits[p[i] >> 4]);
    out.push_back(digits[p[i] & 0xf]);
  }
  return out;
}

uint64_t PageAlign(uint64_t n) { return (n + kPageSize - 1) / kPageSize * kPageSize; }

int Run(const Options &opt) {
  Fabric fab(opt.address, opt.timeout);

  cpu::Process proc = fab.CreateProcess("svasim_enqcmd");
  const uint64_t pid = proc.pid();
  const uint64_t len = PageAlign(opt.size);
  const uint64_t src = fab.Mmap(pid, len);
  const uint64_t dst = fab.Mmap(pid, len);
  const uint64_t comp = fab.Mmap(pid, kPageSize);
  static_assert(kPageSize % kCompletionAlign == 0, "a page-aligned record is 32-byte aligned");

  // A pattern that differs at every offset of a page, so a shifted or partial copy shows.
  std::string pattern(opt.size, '\0');
  for (uint32_t i = 0; i < opt.size; i++) pattern[i] = static_cast<char>((i * 7 + (i >> 8)) & 0xff);
  fab.WriteMemory(pid, src, pattern);

  cpu::OpenWorkQueueResponse wq = fab.OpenWorkQueue(pid, opt.device, opt.wq_id);
  if (!wq.shared()) {
    std::fprintf(stderr, "svasim_enqcmd: %s wq %u is dedicated: it takes MOVDIR64B, not ENQCMD\n", opt.device.c_str(),
                 opt.wq_id);
    return kExitFailed;
  }
  cpu::Thread thread = fab.CreateThread(pid);
  fab.Schedule(thread.tid(), opt.cpu);
  std::printf("process %" PRIu64 " thread %" PRIu64 " on cpu %u, pasid %u, portal 0x%" PRIx64 "\n", pid, thread.tid(),
              opt.cpu, wq.pasid(), wq.portal_address());

  if (opt.unmapped_completion) fab.Munmap(pid, comp, kPageSize);
  if (opt.unmapped_source) fab.Munmap(pid, src, len);

  // The PASID field stays zero: ENQCMD replaces it with IA32_PASID, and priv with 0.
  struct dsa_hw_desc desc;
  std::memset(&desc, 0, sizeof(desc));
  desc.opcode = DSA_OPCODE_MEMMOVE;
  desc.flags = IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR;
  desc.completion_addr = comp;
  desc.src_addr = src;
  desc.dst_addr = dst;
  desc.xfer_size = opt.size;
  std::printf("descriptor %s\n", Hex(&desc, sizeof(desc)).c_str());
  std::printf("memmove 0x%" PRIx64 " -> 0x%" PRIx64 ", %u bytes, completion record 0x%" PRIx64 "\n", src, dst,
              opt.size, comp);

  cpu::EnqcmdResponse r = fab.Enqcmd(thread.tid(), wq.portal_address(), desc);
  std::printf("enqcmd %s, zf %d, %u #GP%s, pasid sent %u, %" PRIu64 " cycles\n",
              cpu::EnqcmdOutcome_Name(r.outcome()).c_str(), r.zf() ? 1 : 0, r.gp_faults(),
              r.fixup_loaded_msr() ? " (fixup loaded IA32_PASID)" : "", r.pasid_sent(), r.cycles());
  if (r.outcome() != cpu::ENQCMD_OUTCOME_ACCEPTED) {
    if (!r.retry_reason().empty()) std::printf("retry: %s\n", r.retry_reason().c_str());
    std::printf("FAIL: the work queue did not accept the descriptor\n");
    return kExitFailed;
  }

  cpu::WaitCompletionResponse w = fab.WaitCompletion(thread.tid(), comp);
  if (w.raw().size() != sizeof(struct dsa_completion_record)) {
    std::printf("FAIL: completion record is %zu bytes, not %zu\n", w.raw().size(),
                sizeof(struct dsa_completion_record));
    return kExitFailed;
  }
  struct dsa_completion_record rec;
  std::memcpy(static_cast<void *>(&rec), w.raw().data(), sizeof(rec));
  const uint8_t status = rec.status & DSA_COMP_STATUS_MASK;
  std::printf("completion %s, status 0x%02x %s%s, result %u, bytes_completed %u, fault_addr 0x%" PRIx64 "\n",
              w.completed() ? "written" : "not written", status, CompletionStatusName(status),
              (rec.status & DSA_COMP_STATUS_WRITE) ? " (write)" : "", rec.result, rec.bytes_completed,
              static_cast<uint64_t>(rec.fault_addr));
  if (!w.completed() || status != DSA_COMP_SUCCESS) {
    std::printf("FAIL: the device did not complete the memmove\n");
    return kExitFailed;
  }

  const std::string got = fab.ReadMemory(pid, dst, opt.size);
  if (got.size() != pattern.size()) {
    std::printf("FAIL: read %zu bytes of the destination, not %zu\n", got.size(), pattern.size());
    return kExitFailed;
  }
  const auto at = std::mismatch(pattern.begin(), pattern.end(), got.begin()).first;
  if (at != pattern.end()) {
    std::printf("FAIL: destination differs from the source at byte %td\n", at - pattern.begin());
    return kExitFailed;
  }
  std::printf("OK: %u bytes moved, destination matches source\n", opt.size);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  Options opt;
  if (int rc = ParseOptions(argc, argv, &opt); rc != 0) return rc;
  try {
    return Run(opt);
  } catch (const RpcError &e) {
    PrintRpcError(e);
    return kExitRpc;
  }
}
