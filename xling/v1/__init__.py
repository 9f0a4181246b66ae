"""Generated protobuf and gRPC stubs of the xling.v1 API. Do not edit."""
