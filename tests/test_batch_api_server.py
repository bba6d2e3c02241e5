"""The local server's Files and Batches endpoints, through the official SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest

from embed2prompt.testing import OpenAITestServer

from .conftest import TEST_KEY

CHAT = "/v1/chat/completions"


def client(server: OpenAITestServer) -> openai.OpenAI:
    return openai.OpenAI(api_key=TEST_KEY, base_url=server.url, max_retries=0)


def lines(count: int, *, url: str = CHAT, first: int = 0) -> bytes:
    requests = [
        {
            "custom_id": f"request-{i}",
            "method": "POST",
            "url": url,
            "body": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": f"say {i}"}],
                "max_tokens": 16,
            },
        }
        for i in range(first, first + count)
    ]
    return b"".join(json.dumps(request).encode() + b"\n" for request in requests)


def create(sdk: openai.OpenAI, file_id: str) -> str:
    return sdk.batches.create(input_file_id=file_id, endpoint=CHAT, completion_window="24h").id


def finished(sdk: openai.OpenAI, batch_id: str) -> tuple[list[str], openai.types.Batch]:
    """Every status the batch showed, polled until it ended, and the batch."""
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        batch = sdk.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return seen, batch
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)  # polling another process, as a client of the Batch API does


def test_a_batch_goes_through_its_statuses_and_answers_every_request(
    server: OpenAITestServer,
) -> None:
    server.configure(batch_delay_s=1.0)
    sdk = client(server)
    uploaded = sdk.files.create(file=("in.jsonl", lines(3)), purpose="batch")
    assert (uploaded.purpose, uploaded.filename, uploaded.bytes) == (
        "batch",
        "in.jsonl",
        len(lines(3)),
    )
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h", metadata={"k": "v"}
    )
    assert batch.status == "validating"
    assert batch.metadata == {"k": "v"}
    seen, batch = finished(sdk, batch.id)
    assert seen[0] == "validating"
    assert "in_progress" in seen
    assert seen[-1] == "completed"
    assert batch.request_counts is not None
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 3, "failed": 0}
    assert batch.error_file_id is None
    assert batch.output_file_id is not None
    output = [
        json.loads(line) for line in sdk.files.content(batch.output_file_id).text.splitlines()
    ]
    assert sorted(line["custom_id"] for line in output) == ["request-0", "request-1", "request-2"]
    answer = output[0]["response"]
    assert answer["status_code"] == 200
    assert answer["body"]["object"] == "chat.completion"
    assert [f.id for f in sdk.files.list(purpose="batch")] == [uploaded.id]
    assert [b.id for b in sdk.batches.list()] == [batch.id]
    stats = server.stats(arrivals=False)["batch"]
    assert (stats["files_uploaded"], stats["batches_created"], stats["requests_submitted"]) == (
        1,
        1,
        3,
    )


def test_injected_errors_expiry_and_failures(server: OpenAITestServer) -> None:
    server.configure(batch_error_match="say 1", batch_expire_next=1, batch_fail_next=1)
    sdk = client(server)
    failed_file = sdk.files.create(file=("a.jsonl", lines(2)), purpose="batch")
    _, failed = finished(sdk, create(sdk, failed_file.id))
    assert failed.status == "failed"
    assert failed.errors
    assert failed.errors.data
    assert failed.errors.data[0].code == "injected_failure"
    expiring = sdk.files.create(file=("b.jsonl", lines(4)), purpose="batch")
    _, expired = finished(sdk, create(sdk, expiring.id))
    assert expired.status == "expired"
    assert expired.request_counts is not None
    assert expired.request_counts.completed == 1
    assert expired.error_file_id is not None
    errors = {
        line["custom_id"]: line
        for line in map(json.loads, sdk.files.content(expired.error_file_id).text.splitlines())
    }
    assert errors["request-1"]["response"]["status_code"] == 500  # the injected error
    assert errors["request-2"]["error"]["code"] == "batch_expired"  # never ran
    assert errors["request-2"]["response"] is None
    stats = server.stats(arrivals=False)["batch"]
    assert stats["requests_submitted"] == 2  # the failed batch ran none, the expired half


def test_the_queue_limit_fails_a_batch_that_would_pass_it(server: OpenAITestServer) -> None:
    server.configure(batch_queue_tokens=25, batch_delay_s=2.0)
    sdk = client(server)
    first = sdk.files.create(file=("a.jsonl", lines(2)), purpose="batch")  # 2 x 10 tokens
    second = sdk.files.create(file=("b.jsonl", lines(1, first=5)), purpose="batch")
    running = sdk.batches.create(input_file_id=first.id, endpoint=CHAT, completion_window="24h")
    refused = sdk.batches.create(input_file_id=second.id, endpoint=CHAT, completion_window="24h")
    _, refused = finished(sdk, refused.id)
    assert refused.status == "failed"
    assert refused.errors
    assert refused.errors.data
    assert refused.errors.data[0].code == "token_limit_exceeded"
    _, running = finished(sdk, running.id)
    assert running.status == "completed"
    assert server.stats(arrivals=False)["batch"]["peak_enqueued_tokens"] == {"gpt-4o-mini": 20}


def test_bad_input_files_fail_validation_with_the_line(server: OpenAITestServer) -> None:
    sdk = client(server)
    mismatched = sdk.files.create(file=("a.jsonl", lines(2, url="/v1/embeddings")), purpose="batch")
    _, batch = finished(sdk, create(sdk, mismatched.id))
    assert batch.status == "failed"
    assert batch.errors
    assert batch.errors.data
    assert (batch.errors.data[0].code, batch.errors.data[0].line) == ("mismatched_url", 1)
    with pytest.raises(openai.NotFoundError):
        sdk.batches.create(input_file_id="file-missing", endpoint=CHAT, completion_window="24h")


def test_a_cancelled_batch_runs_nothing(server: OpenAITestServer) -> None:
    server.configure(batch_delay_s=1.0)
    sdk = client(server)
    uploaded = sdk.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    _, batch = finished(sdk, batch.id)
    assert batch.status == "cancelled"
    assert server.stats(arrivals=False)["batch"]["requests_submitted"] == 0


def test_a_batch_cancelled_in_progress_keeps_the_half_it_ran_and_files_can_be_deleted(
    server: OpenAITestServer,
) -> None:
    server.configure(batch_delay_s=30.0)  # in progress until cancelled
    sdk = client(server)
    uploaded = sdk.files.create(file=("in.jsonl", lines(4)), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    deadline = time.monotonic() + 30
    while sdk.batches.retrieve(batch.id).status != "in_progress":
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling another process
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    seen, batch = finished(sdk, batch.id)
    assert seen[-1] == "cancelled"
    assert batch.output_file_id is not None
    output = sdk.files.content(batch.output_file_id).text.splitlines()
    assert [json.loads(line)["custom_id"] for line in output] == ["request-0", "request-1"]
    stats = server.stats(arrivals=False)["batch"]
    assert (stats["batches_cancelled"], stats["requests_submitted"]) == (1, 2)
    assert stats["files_held"] == {"batch": 1, "batch_output": 1}
    assert sdk.files.delete(uploaded.id).deleted
    assert sdk.files.delete(batch.output_file_id).deleted
    with pytest.raises(openai.NotFoundError):
        sdk.files.delete(uploaded.id)
    stats = server.stats(arrivals=False)["batch"]
    assert (stats["files_deleted"], stats["files_held"]) == (2, {})


def test_a_cancelled_batch_stays_cancelling_for_the_configured_delay(
    server: OpenAITestServer,
) -> None:
    # Held cancelling (as OpenAI may hold a batch for minutes), then let go by a new
    # configuration: no test waits out the delay itself.
    server.configure(batch_delay_s=1.0, batch_cancel_delay_s=3600.0)
    sdk = client(server)
    uploaded = sdk.files.create(file=("in.jsonl", lines(2)), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    assert sdk.batches.cancel(batch.id).status == "cancelling"
    time.sleep(0.3)  # past the validation (0.1 s of batch_delay_s): it would have ended
    assert sdk.batches.retrieve(batch.id).status == "cancelling"
    server.configure(batch_cancel_delay_s=0.0)
    seen, batch = finished(sdk, batch.id)
    assert seen[-1] == "cancelled"
    assert batch.cancelling_at is not None
    assert batch.cancelled_at is not None
