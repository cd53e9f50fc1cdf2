"""The REST service's routes, one router per concern (FastAPI's "bigger applications" layout)."""
