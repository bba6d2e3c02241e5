"""``python run_parallel_example.py``: the seed's quick example, a client of the service.

Start the service first (``python api/app.py``), then run this. It embeds a few sample
texts locally, sends their embeddings to ``$API_BASE_URL/generate_prompts_parallel``
(default http://localhost:8000) with ``$API_KEY`` if set, and prints the recovered
prompts, their similarities and the summary.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

SAMPLE_TEXTS = [
    "How do I reset my password?",
    "Write a short poem about the sea.",
    "What are the health benefits of green tea?",
    "Explain how a rate limiter works.",
]


def main() -> int:
    base_url = os.environ.get("API_BASE_URL", "http://localhost:8000").rstrip("/")
    from embed2prompt.embedders.local import LocalEmbedder

    embeddings = LocalEmbedder().embed_sync(SAMPLE_TEXTS).tolist()
    body = {
        "embeddings": embeddings,
        "max_concurrent": 4,
        "rate_limit_tier": "tier_2",
        "evaluate_quality": True,
        "generate_variants": False,
        "return_metadata": True,
    }
    headers = {"Content-Type": "application/json"}
    if os.environ.get("API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['API_KEY']}"
    request = urllib.request.Request(
        f"{base_url}/generate_prompts_parallel",
        data=json.dumps(body).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as error:
        print(f"the service answered {error.code}: {error.read().decode(errors='replace')}")
        return 1
    except urllib.error.URLError as error:
        print(
            f"cannot reach the service at {base_url} ({error.reason}). Start it with "
            "`python api/app.py` (or set API_BASE_URL to where it runs)."
        )
        return 1
    for text, result in zip(SAMPLE_TEXTS, data["results"], strict=True):
        original = result["original_result"]
        print(f"target:  {text}")
        print(f"prompt:  {result['original_prompt']}")
        if original["success"]:
            print(
                f"         prompt similarity {original['prompt_similarity']:.3f}, "
                f"generation similarity {original['similarity']:.3f}\n"
            )
        else:
            print(f"         failed: {original.get('error')}\n")
    print("summary:", json.dumps(data["summary"], indent=2))
    metrics = data["metadata"]["performance_metrics"]
    print(
        f"{metrics['requests_per_second']:.2f} embeddings/s, "
        f"{metrics['average_processing_time']:.1f} s each on average"
    )
    return 0 if data["summary"]["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
