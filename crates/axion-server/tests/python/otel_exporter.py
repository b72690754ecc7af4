"""A plain OpenTelemetry app with GenAI semantic-convention attributes, exported over OTLP/HTTP."""
import base64
import json
import os
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

run = sys.argv[1]
host = os.environ["LANGFUSE_HOST"]
token = base64.b64encode(f"{os.environ['LANGFUSE_PUBLIC_KEY']}:{os.environ['LANGFUSE_SECRET_KEY']}".encode()).decode()
exporter = OTLPSpanExporter(endpoint=f"{host}/api/public/otel/v1/traces", headers={"Authorization": f"Basic {token}"})
provider = TracerProvider(resource=Resource.create({"service.name": "otel-bot", "deployment.environment": "staging"}))
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("otel-bot")

with tracer.start_as_current_span(f"otel-chat-{run}") as root:
    root.set_attribute("user.id", "carol")
    root.set_attribute("session.id", f"otel-sess-{run}")
    root.set_attribute("input.value", json.dumps({"question": "weather?"}))
    trace_id = format(root.get_span_context().trace_id, "032x")
    with tracer.start_as_current_span("chat gpt-4o") as llm:
        llm.set_attribute("gen_ai.operation.name", "chat")
        llm.set_attribute("gen_ai.request.model", "gpt-4o")
        llm.set_attribute("gen_ai.request.temperature", 0.3)
        llm.set_attribute("gen_ai.usage.input_tokens", 200)
        llm.set_attribute("gen_ai.usage.output_tokens", 50)
        llm.add_event("gen_ai.user.message", {"content": "weather?"})
        llm.add_event("gen_ai.choice", {"content": "Sunny."})
    with tracer.start_as_current_span("execute_tool get_weather") as tool:
        tool.set_attribute("gen_ai.tool.name", "get_weather")
        tool.set_status(Status(StatusCode.ERROR, "upstream 503"))
    root.set_attribute("output.value", "Sunny.")

provider.force_flush()
provider.shutdown()
print(json.dumps({"trace": trace_id}))
