"""The domain: the request model, the model registry (data), costs, settings and the one tree of errors."""
