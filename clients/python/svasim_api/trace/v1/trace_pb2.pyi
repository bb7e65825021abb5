from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Run(_message.Message):
    __slots__ = ("id", "name", "create_time", "policy", "seed", "version", "config_json", "event_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    create_time: str
    policy: str
    seed: int
    version: str
    config_json: str
    event_count: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., create_time: _Optional[str] = ..., policy: _Optional[str] = ..., seed: _Optional[int] = ..., version: _Optional[str] = ..., config_json: _Optional[str] = ..., event_count: _Optional[int] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: str
    def __init__(self, run: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "service", "entity", "kind", "before_json", "after_json", "cause", "cycles", "detail_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BEFORE_JSON_FIELD_NUMBER: _ClassVar[int]
    AFTER_JSON_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    service: str
    entity: str
    kind: str
    before_json: str
    after_json: str
    cause: int
    cycles: int
    detail_json: str
    def __init__(self, seq: _Optional[int] = ..., service: _Optional[str] = ..., entity: _Optional[str] = ..., kind: _Optional[str] = ..., before_json: _Optional[str] = ..., after_json: _Optional[str] = ..., cause: _Optional[int] = ..., cycles: _Optional[int] = ..., detail_json: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("run", "entity_prefix", "kind_prefix", "service", "from_seq", "to_seq", "page_size", "page_token")
    RUN_FIELD_NUMBER: _ClassVar[int]
    ENTITY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    KIND_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run: str
    entity_prefix: str
    kind_prefix: str
    service: str
    from_seq: int
    to_seq: int
    page_size: int
    page_token: str
    def __init__(self, run: _Optional[str] = ..., entity_prefix: _Optional[str] = ..., kind_prefix: _Optional[str] = ..., service: _Optional[str] = ..., from_seq: _Optional[int] = ..., to_seq: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetStateRequest(_message.Message):
    __slots__ = ("run", "at_seq", "entity_prefix")
    RUN_FIELD_NUMBER: _ClassVar[int]
    AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTITY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    run: str
    at_seq: int
    entity_prefix: str
    def __init__(self, run: _Optional[str] = ..., at_seq: _Optional[int] = ..., entity_prefix: _Optional[str] = ...) -> None: ...

class EntityState(_message.Message):
    __slots__ = ("entity", "fields_json")
    ENTITY_FIELD_NUMBER: _ClassVar[int]
    FIELDS_JSON_FIELD_NUMBER: _ClassVar[int]
    entity: str
    fields_json: str
    def __init__(self, entity: _Optional[str] = ..., fields_json: _Optional[str] = ...) -> None: ...

class GetStateResponse(_message.Message):
    __slots__ = ("entities", "at_seq")
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    entities: _containers.RepeatedCompositeFieldContainer[EntityState]
    at_seq: int
    def __init__(self, entities: _Optional[_Iterable[_Union[EntityState, _Mapping]]] = ..., at_seq: _Optional[int] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("committed",)
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    committed: int
    def __init__(self, committed: _Optional[int] = ...) -> None: ...

class FollowEventsRequest(_message.Message):
    __slots__ = ("run", "from_seq", "kind_prefix", "entity_prefix")
    RUN_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ENTITY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    run: str
    from_seq: int
    kind_prefix: str
    entity_prefix: str
    def __init__(self, run: _Optional[str] = ..., from_seq: _Optional[int] = ..., kind_prefix: _Optional[str] = ..., entity_prefix: _Optional[str] = ...) -> None: ...

class FollowEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: str
    def __init__(self, run: _Optional[str] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ("events_deleted",)
    EVENTS_DELETED_FIELD_NUMBER: _ClassVar[int]
    events_deleted: int
    def __init__(self, events_deleted: _Optional[int] = ...) -> None: ...
