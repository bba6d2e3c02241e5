"""The HTTP service: the seed's REST interface on FastAPI.

app         create_app(): the guards, the error handlers and the routers, put together
routes      one router per resource: health (and ready), generation, jobs
models      ServiceModels: the inverter and the pipelines the service holds
dependencies  what a route needs (settings, models, metrics, jobs) as Annotated aliases
schemas     the request bodies (the seed's, validated strictly)
errors      the one error shape of every 4xx, and its handlers
security    the API key check and the request-size limit, before the body is read
openapi     what the schema cannot see: the key (the guard's open paths), run-time limits
health      /health (from memory, no secrets) and /ready (probes the API backends)
vectors     the embeddings accepted: check_embeddings's rule, and the same as JSON Schema
uploads     streamed job uploads, parsed and checked as they arrive
jobs        running jobs; job_store keeps them in SQLite
metrics     the Prometheus metrics
server      serve(): uvicorn with the settings' host and port
"""
