"""Metrics queries the scenario scripts send through their SDK's own metrics client."""

import json
from datetime import datetime, timedelta, timezone


def generations_of(trace_id):
    """A trace's generations, counted, over the hour around now."""
    now = datetime.now(timezone.utc)
    return json.dumps({
        "view": "observations",
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "filters": [{"column": "traceId", "operator": "=", "value": trace_id, "type": "string"},
                    {"column": "type", "operator": "any of", "value": ["GENERATION"], "type": "stringOptions"}],
        "fromTimestamp": (now - timedelta(hours=1)).isoformat(),
        "toTimestamp": (now + timedelta(hours=1)).isoformat(),
    })
