"""Support-bot scenario with langfuse 3.x (OTLP protobuf; scores through ingestion)."""
import asyncio
import json
import sys

from metrics_queries import generations_of
from langfuse import Langfuse, get_client, observe

run = sys.argv[1]
lf = Langfuse(release="r-7")

with lf.start_as_current_span(name="support-root", input={"question": "How do I reset my password?"}) as root:
    root.update_trace(
        name=f"support-{run}", user_id="alice", session_id=f"sess-{run}", tags=["support", "v3"],
        metadata={"ticket": {"id": 42}, "priority": "high"}, version="2.0",
        input={"question": "How do I reset my password?"},
    )
    support_id = root.trace_id
    with root.start_as_current_span(name="classify", input={"text": "reset password"}) as classify:
        classify.update(output={"intent": "account"})
    with root.start_as_current_observation(as_type="retriever", name="search-kb", input={"query": "reset password"}) as search:
        lf.create_event(name="kb-miss", level="WARNING", metadata={"index": "faq"})
        search.update(output={"docs": ["kb-1", "kb-2"]})
    with root.start_as_current_generation(
        name="draft-answer", model="gpt-4o-mini", model_parameters={"temperature": 0.1},
        input=[{"role": "user", "content": "How do I reset my password?"}],
    ) as draft:
        draft.update(output={"role": "assistant", "content": "Use the reset link."},
                     usage_details={"input": 120, "output": 30})
        draft_id = draft.id
    with root.start_as_current_generation(name="polish-answer", model="claude-3-5-sonnet-20241022",
                                          input="Use the reset link.") as polish:
        polish.update(output="Use the reset link in your inbox.", usage_details={"input": 50, "output": 20},
                      cost_details={"input": 0.001, "output": 0.002})
    with root.start_as_current_observation(as_type="tool", name="send-email", input={"to": "alice@example.com"}) as email:
        email.update(level="ERROR", status_message="smtp timeout")
    root.update(output={"answer": "Use the reset link."})
    root.update_trace(output={"answer": "Use the reset link."})
    root.score_trace(name="resolution", value=0.9, comment="resolved")

lf.create_score(trace_id=support_id, name="sentiment", value="positive", data_type="CATEGORICAL")
lf.create_score(trace_id=support_id, observation_id=draft_id, name="grounded", value=1, data_type="BOOLEAN")


@observe()
async def lookup(key):
    await asyncio.sleep(0.01)
    return f"value-{key}"


@observe(as_type="generation")
async def summarize(values):
    get_client().update_current_generation(model="gpt-4o", usage_details={"input": 10, "output": 5})
    return "summary of " + ",".join(values)


@observe(name=f"decorated-{run}")
async def handle():
    get_client().update_current_trace(user_id="bob", session_id=f"sess-{run}", tags=["decorated"])
    values = await asyncio.gather(lookup("a"), lookup("b"))
    answer = await summarize(values)
    get_client().score_current_trace(name="quality", value=0.7)
    return answer, get_client().get_current_trace_id()


_, decorated_id = asyncio.run(handle())
lf.flush()

# The metrics API, v2 and the legacy v1 path: the support trace's generations, counted.
generations_query = generations_of(support_id)

api = lf.api
full = api.trace.get(support_id)
reads = {
    "auth_check": lf.auth_check(),
    "trace_observations": len(full.observations),
    "trace_scores": len(full.scores),
    "traces_for_alice": len(api.trace.list(user_id="alice", tags=["support"]).data),
    "generations": len(api.observations.get_many(trace_id=support_id, type="GENERATION").data),
    "draft_model": api.observations.get(draft_id).model,
    "v2_observations": len(api.observations_v_2.get_many(trace_id=support_id, fields="core,basic,usage").data),
    "sessions": len(api.sessions.list().data),
    "v2_scores": len(api.score_v_2.get(trace_id=support_id).data),
    "metrics_generations": api.metrics_v_2.metrics(query=generations_query).data[0]["count_count"],
    "legacy_metrics_generations": api.metrics.metrics(query=generations_query).data[0]["count_count"],
}
print(json.dumps({"support": support_id, "decorated": decorated_id, "reads": reads}))
