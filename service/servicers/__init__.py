"""One servicer per gRPC service: protobuf in, pipeline calls, protobuf out."""
