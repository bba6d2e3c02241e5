"""The HTTP service: the seed's REST interface on FastAPI.

app         create_app(): the routes, errors and the models the service holds
schemas     the request bodies (the seed's, validated)
security    the API key check and the request-size limit
server      serve(): uvicorn with the settings' host and port
"""
