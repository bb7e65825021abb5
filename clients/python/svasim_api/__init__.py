"""svasim's API: what the simulator and every client agree on.

- ``svasim_api.<service>.v1``: the generated protobuf and gRPC modules of the protos in
  ``proto/svasim/<service>/v1/`` (``svasim_api.cpu.v1.cpu_pb2``, ...).
- :mod:`svasim_api.idxd`: the byte layouts of ``include/uapi/linux/idxd.h`` (descriptors and
  completion records), pure Python.
- :mod:`svasim_api.errors`: rich gRPC errors (``google.rpc.Status`` with ``ErrorInfo``), built
  and unpacked in one place.

Importing this package imports nothing else (no grpc), so pure code such as the
simulator's model can use :mod:`svasim_api.idxd`.
"""
