"""The service's routes, one router per resource.

health      /health and /ready
generation  /generate_prompts_parallel (the seed's endpoint) and /metrics
jobs        /jobs: batches stored and run in the background
"""
