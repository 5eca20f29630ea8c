"""Rendering results as v4 response bodies (plain dicts, serialised with orjson).

Every key of the v4 schemas is present, with ``null`` where there is nothing to report, as the
v4 examples show.
"""

from __future__ import annotations

from typing import Any

from chatgate.domain import LogRecord
from chatgate.domain.logs import FeedbackRow, FeedbackType, LogView, SessionSummary
from chatgate.moments import iso
from chatgate.services.chat import ChatInput, ChatOutcome


def chat_response(request: ChatInput, outcome: ChatOutcome) -> dict[str, Any]:
    inputs = request.inputs if request.return_inputs else {}
    data = []
    for log_id, sample in zip(outcome.log_ids, outcome.samples, strict=True):
        output_message = sample.output_message.to_v4()
        data.append(
            {
                "id": log_id,
                "index": sample.index,
                "output": sample.output,
                "raw_output": sample.raw_output,
                "inputs": inputs,
                "finish_reason": sample.finish_reason,
                "model_config_id": outcome.config_id,
                "tool_results": [],
                "messages": outcome.messages,
                "tool_call": output_message["tool_call"],
                "tool_calls": output_message["tool_calls"],
                "output_message": output_message,
            }
        )
    return {
        "project_id": outcome.project_id,
        "num_samples": request.num_samples,
        "logprobs": None,
        "suffix": None,
        "user": request.user,
        "data": data,
        "usage": outcome.usage.to_v4() if outcome.usage else None,
        "metadata": request.metadata,
        "provider_responses": outcome.provider_responses,
        "provider_request": outcome.provider_request,
        "session_id": outcome.session_id,
        "tool_choice": request.tool_choice,
    }


def model_config_response(
    config_id: str, body: dict[str, Any], name: str | None, description: str | None
) -> dict[str, Any]:
    """A stored config (its identity body) as the v4 ``ModelConfigResponse``.

    v4's ``ToolResponse`` requires an ``id`` (clients such as SDK 0.7.x refuse a config without
    one); inline tools have none of their own, so each gets ``<config id>_tool_<index>``, stable
    for the config, and ``source: "inline"``.
    """
    return {
        **body,
        "tools": [
            {**tool, "id": f"{config_id}_tool_{i}", "source": "inline"}
            for i, tool in enumerate(body.get("tools") or [])
        ],
        "id": config_id,
        "type": "model",
        "name": name,
        "description": description,
        # Only configs logged through POST /v4/logs can carry a completion prompt template.
        "prompt_template": body.get("prompt_template"),
        "tool_configs": [],
    }


def feedback_response(row: FeedbackRow) -> dict[str, Any]:
    """A feedback item as the v4 ``FeedbackResponse``."""
    return {
        "id": row.id,
        "type": row.type,
        "value": row.value,
        "data_id": row.log_id,
        "user": row.user,
        "created_at": iso(row.created_at),
    }


def feedback_type_response(row: FeedbackType) -> dict[str, Any]:
    """A project feedback type as the v4 ``FeedbackTypeModel`` (plus its ``class``)."""
    return {"type": row.type, "class": row.class_, "values": row.values}


def paginated(records: list[dict[str, Any]], page: int, size: int, total: int) -> dict[str, Any]:
    """The v4 ``PaginatedData_*`` envelope (``page`` is 1-based)."""
    return {"records": records, "page": page, "size": size, "total": total}


def created_log_response(record: LogRecord) -> dict[str, Any]:
    """A log just recorded (``POST /logs``) as the v4 ``CreateLogResponse``."""
    return {"id": record.id, "project_id": record.project_id, "session_id": record.session_id}


def log_response(view: LogView) -> dict[str, Any]:
    """A stored log, its config and its feedback as the v4 ``LogResponse``."""
    row, config = view.log, view.config
    prompt, output = row.prompt_tokens, row.output_tokens
    return {
        "id": row.id,
        "project": row.project_name,
        "project_id": row.project_id,
        "session_id": row.session_id,
        "session_reference_id": row.session_reference_id,
        "parent_id": row.parent_id,
        "parent_reference_id": row.parent_reference_id,
        "reference_id": row.reference_id,
        "inputs": row.inputs,
        "source": row.source,
        "metadata": row.metadata,
        "save": row.save,
        "source_datapoint_id": row.source_datapoint_id,
        "messages": row.messages,
        "output": row.output,
        "raw_output": row.raw_output,
        "output_message": row.output_message,
        "finish_reason": row.finish_reason,
        "judgment": row.judgment,
        "config_id": row.config_id,
        "config": model_config_response(config.id, config.body, config.name, config.description)
        if config
        else None,
        "environment": row.environment,
        "feedback": [feedback_response(f) for f in view.feedback],
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at or row.created_at),
        "error": row.error,
        "stdout": row.stdout,
        "duration": row.duration,
        "provider_latency": row.provider_latency,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "reasoning_tokens": row.reasoning_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "tokens": prompt + output if prompt is not None and output is not None else None,
        "prompt_cost": row.prompt_cost,
        "output_cost": row.output_cost,
        "provider_request": row.provider_request,
        "provider_response": row.provider_response,
        "user": row.user,
        "tools": row.tools or [],
        "tool_choice": row.tool_choice,
        "evaluation_results": [],
        "observability_status": "completed",
        "batch_ids": [],
    }


def session_response(summary: SessionSummary) -> dict[str, Any]:
    """A session summary as the v4 ``SessionResponse``."""
    return {
        "id": summary.id,
        "reference_id": summary.reference_id,
        "projects": [{"id": p.id, "name": p.name, "type": "prompt"} for p in summary.projects],
        "datapoints_count": summary.datapoints_count,
        "first_inputs": summary.first_inputs,
        "last_output": summary.last_output,
        "created_at": iso(summary.created_at),
        "updated_at": iso(max(summary.updated_at, summary.created_at)),
    }
