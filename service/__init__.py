"""The gRPC server: config, servicers, pipelines, model backends, detection."""
