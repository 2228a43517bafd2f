"""Each framework's own session tests, run against sessionshare's adapters (see conftest)."""
