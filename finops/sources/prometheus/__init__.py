"""GPU-hours from dcgm-exporter and tokens from vLLM or the gateway, through Prometheus."""
