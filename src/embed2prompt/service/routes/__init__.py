"""The service's routes, one router per resource.

health      /health and /ready
generation  /generate_prompts_parallel (the seed's endpoint) and /metrics
embeddings  /embed: texts to the vectors the inverter inverts
jobs        /jobs: batches stored and run in the background
job_reports /jobs/{id}/results.parquet and /jobs/{id}/report, as the CLI gives them
page        /: the web page (and its two static files)
"""
