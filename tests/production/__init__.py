"""A production-shaped estate: HTTPS, real-looking host names, gunicorn, uvicorn behind a proxy."""
