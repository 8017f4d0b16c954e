"""Each reconcile is a span carrying the controller, object and result, and every log line written
inside it carries the controller, the object key and the trace id."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import orjson
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from internal import logging as oplog
from internal.client import Conflict, Resource
from internal.controller import Controller, ControllerOptions, Request, Result
from internal.informer import Cache

DEMOS = Resource("example.io", "v1", "demos", "Demo")


class Logs:
    async def reconcile(self, req: Request) -> Result:
        logging.getLogger("kuberay.test").info("reconciling %s", req.name)
        return Result(requeue_after=30)


async def test_reconcile_span_and_log_fields() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stream = io.StringIO()
    oplog.configure("json", "info", stream=stream)
    try:
        c = Controller("demo", Logs(), Cache(client=None), ControllerOptions(), tracer=provider.get_tracer("t"))  # type: ignore[arg-type]
        c.for_resource = DEMOS  # as c.watch(DEMOS) sets it: the kind it is "For"
        task = asyncio.create_task(c.run())
        c.queue.add(Request("ns1", "obj1"))

        async def logged() -> None:
            while "reconciling obj1" not in stream.getvalue():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(logged(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        logging.getLogger().handlers.clear()

    line: dict[str, Any] = next(
        orjson.loads(raw) for raw in stream.getvalue().splitlines() if "reconciling obj1" in raw
    )
    started = next(orjson.loads(raw) for raw in stream.getvalue().splitlines() if "Starting workers" in raw)
    assert started["worker count"] == 1 and started["controllerKind"] == "Demo" and started["controller"] == "demo"
    # controller-runtime's keys, so log queries written for upstream's operator find these lines.
    assert line["controller"] == "demo" and line["namespace"] == "ns1" and line["name"] == "obj1"
    assert line["controllerGroup"] == "example.io" and line["controllerKind"] == "Demo"
    assert line["Demo"] == {"name": "obj1", "namespace": "ns1"}
    assert line["level"] == "info" and len(line["reconcileID"]) == 36
    [span] = [s for s in exporter.get_finished_spans() if s.name == "reconcile demo"]
    assert line["trace_id"] == format(span.context.trace_id, "032x")
    attrs = dict(span.attributes or {})
    assert attrs["controller"] == "demo" and attrs["namespace"] == "ns1" and attrs["name"] == "obj1"
    assert attrs["result"] == "requeue_after" and attrs["requeue_after"] == 30


def test_text_format_carries_the_same_fields() -> None:
    stream = io.StringIO()
    oplog.configure("text", "info", stream=stream)
    try:
        with oplog.log_context(controller="raycluster", namespace="a", name="b"):
            logging.getLogger("kuberay.test").info("hello")
    finally:
        logging.getLogger().handlers.clear()
    out = stream.getvalue()
    assert "hello" in out and "controller=raycluster" in out and "namespace=a" in out and "name=b" in out


class Fails:
    async def reconcile(self, req: Request) -> Result:
        raise RuntimeError(f"cannot reconcile {req.name}")


class Conflicts:
    async def reconcile(self, req: Request) -> Result:
        raise Conflict(f'Operation cannot be fulfilled on demos "{req.name}": the object has been modified')


async def reconciler_error_line(reconciler: Any, name: str) -> dict[str, Any]:
    """The JSON "Reconciler error" line a controller logs when ``reconciler`` fails for ns1/``name``."""
    stream = io.StringIO()
    oplog.configure("json", "info", stream=stream)
    try:
        c = Controller("demo", reconciler, Cache(client=None), ControllerOptions())  # type: ignore[arg-type]
        c.for_resource = DEMOS
        task = asyncio.create_task(c.run())
        c.queue.add(Request("ns1", name))

        async def logged() -> None:
            while "Reconciler error" not in stream.getvalue():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(logged(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        logging.getLogger().handlers.clear()
    line: dict[str, Any] = next(
        orjson.loads(raw) for raw in stream.getvalue().splitlines() if "Reconciler error" in raw
    )
    return line


async def test_a_failed_reconcile_logs_reconciler_error_with_the_error_key() -> None:
    line = await reconciler_error_line(Fails(), "bad")
    assert line["level"] == "error" and line["error"].startswith("cannot reconcile bad")
    assert line["Demo"] == {"name": "bad", "namespace": "ns1"} and line["reconcileID"]


async def test_a_write_conflict_is_requeued_and_logged_at_info_not_error() -> None:
    """409s are optimistic concurrency at work: still a "Reconciler error" (and counted as one, as
    upstream does), but not at error level, where they would page someone."""
    line = await reconciler_error_line(Conflicts(), "busy")
    assert line["level"] == "info" and "the object has been modified" in line["error"]


def test_console_prints_an_object_reference_as_namespace_slash_name() -> None:
    stream = io.StringIO()
    oplog.configure("text", "info", stream=stream)
    try:
        with oplog.log_context(RayJob={"name": "j", "namespace": "ns"}):
            logging.getLogger("kuberay.test").info("hello")
    finally:
        logging.getLogger().handlers.clear()
    assert "RayJob=ns/j" in stream.getvalue()
