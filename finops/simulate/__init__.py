"""CPU stand-ins for the systems the service reads (vLLM, dcgm-exporter) and a load generator.

They speak the real wire formats (OpenAI HTTP API, Prometheus text) so the stack can run on a laptop
or in CI. Nothing here touches the store.
"""
