"""Sync pipelines: records from a source connector into a destination connector, per tenant.

Every batch runs through governed sessions on both sides; the source's state is committed as a
checkpoint only after the destination accepted the batch, under a lease with a fencing token.

The unit of work is `run_pipeline` (spec, pipeline, tenant, store, holder → `RunReport`);
`InProcessExecutor` runs a spec's pipelines on a bounded thread pool; `pipeline_status` reads
where each pipeline and tenant stands. The command line is ``integrations jobs``.
"""

from ._exceptions import InvalidStoreValue, JobsError, LeaseHeld, LeaseLost, SpecError, StoreError
from ._executor import InProcessExecutor, default_holder
from ._records import Checkpoint, DeadLetter, Lease, PipelineStatus, RunRecord
from ._report import Delivery, Outcome, RunReport, StatusRow
from ._runner import ConnectorLimits, ProgressListener, idempotency_key, run_pipeline
from ._spec import (
    ConcurrencySpec,
    DestinationSpec,
    JobsSpec,
    PipelineSpec,
    ScheduleSpec,
    SourceSpec,
    TenantSpec,
    TransformSpec,
    jobs_json_schema,
    load_spec,
    parse_duration,
)
from ._status import pipeline_status
from ._store import JobStore, open_store

__all__ = [
    "Checkpoint",
    "ConcurrencySpec",
    "ConnectorLimits",
    "DeadLetter",
    "Delivery",
    "DestinationSpec",
    "InProcessExecutor",
    "InvalidStoreValue",
    "JobStore",
    "JobsError",
    "JobsSpec",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "Outcome",
    "PipelineSpec",
    "PipelineStatus",
    "ProgressListener",
    "RunRecord",
    "RunReport",
    "ScheduleSpec",
    "SourceSpec",
    "SpecError",
    "StatusRow",
    "StoreError",
    "TenantSpec",
    "TransformSpec",
    "default_holder",
    "idempotency_key",
    "jobs_json_schema",
    "load_spec",
    "open_store",
    "parse_duration",
    "pipeline_status",
    "run_pipeline",
]
