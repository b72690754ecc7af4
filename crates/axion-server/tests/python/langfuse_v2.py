"""Support-bot scenario with langfuse 2.x (ingestion batches)."""
import asyncio
import json
import sys

from langfuse import Langfuse
from langfuse.decorators import langfuse_context, observe

run = sys.argv[1]
lf = Langfuse()

trace = lf.trace(
    name=f"support-{run}", user_id="alice", session_id=f"sess-{run}", tags=["support", "v2"],
    metadata={"ticket": {"id": 42}, "priority": "high"}, input={"question": "How do I reset my password?"},
    release="r-7", version="2.0",
)
classify = trace.span(name="classify", input={"text": "reset password"})
classify.end(output={"intent": "account"})
search = trace.span(name="search-kb", input={"query": "reset password"})
search.event(name="kb-miss", level="WARNING", metadata={"index": "faq"})
search.end(output={"docs": ["kb-1", "kb-2"]})
draft = trace.generation(
    name="draft-answer", model="gpt-4o-mini", model_parameters={"temperature": 0.1},
    input=[{"role": "user", "content": "How do I reset my password?"}],
)
draft.end(output={"role": "assistant", "content": "Use the reset link."}, usage={"input": 120, "output": 30})
polish = trace.generation(name="polish-answer", model="claude-3-5-sonnet-20241022", input="Use the reset link.")
polish.end(output="Use the reset link in your inbox.", usage_details={"input": 50, "output": 20},
           cost_details={"input": 0.001, "output": 0.002})
email = trace.span(name="send-email", input={"to": "alice@example.com"})
email.end(level="ERROR", status_message="smtp timeout")
trace.update(output={"answer": "Use the reset link."})
trace.score(name="resolution", value=0.9, comment="resolved")
lf.score(trace_id=trace.id, name="sentiment", value="positive", data_type="CATEGORICAL")
lf.score(trace_id=trace.id, observation_id=draft.id, name="grounded", value=1, data_type="BOOLEAN")
lf.flush()


@observe()
async def lookup(key):
    await asyncio.sleep(0.01)
    return f"value-{key}"


@observe(as_type="generation")
async def summarize(values):
    langfuse_context.update_current_observation(model="gpt-4o", usage={"input": 10, "output": 5})
    return "summary of " + ",".join(values)


@observe(name=f"decorated-{run}")
async def handle():
    langfuse_context.update_current_trace(user_id="bob", session_id=f"sess-{run}", tags=["decorated"])
    values = await asyncio.gather(lookup("a"), lookup("b"))
    answer = await summarize(values)
    langfuse_context.score_current_trace(name="quality", value=0.7)
    return answer, langfuse_context.get_current_trace_id()


_, decorated_id = asyncio.run(handle())
langfuse_context.flush()

full = lf.fetch_trace(trace.id).data
reads = {
    "trace_observations": len(full.observations),
    "trace_scores": len(full.scores),
    "traces_for_alice": len(lf.fetch_traces(user_id="alice", tags=["support"]).data),
    "generations": len(lf.fetch_observations(trace_id=trace.id, type="GENERATION").data),
    "draft_model": lf.fetch_observation(draft.id).data.model,
    "sessions": len(lf.fetch_sessions().data),
}
print(json.dumps({"support": trace.id, "decorated": decorated_id, "reads": reads}))
