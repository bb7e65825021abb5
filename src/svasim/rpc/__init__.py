"""The gRPC side of each service: its core (the model behind a lock), its servicers and
their message conversions, one module per service.

==================  =======================================================================
``common``          the core base, the request gate, the ``rpc`` decorator, client vs peer
``cpu``             CpuService (clients), HostMemoryService (peers)
``iommu``           IommuService (peers), IommuDebugService (clients, read-only)
``accel``           AccelService (clients; peers call Advance), AccelDeviceService (peers)
``trace``           TraceService (clients, read-only), TraceAdminService (peer listener)
``idxd_convert``    descriptor and completion-record messages <-> the uapi layouts
``rpc_errors``      model refusals <-> rich gRPC statuses
``metrics``         Prometheus metrics of a process (per method, pools, recorder, WQs)
``health``          health that turns NOT_SERVING when a service cannot do its work
==================  =======================================================================
"""
