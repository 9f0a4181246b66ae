"""Runs ``xling serve`` as a child process, the way an operator would."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """``xling serve`` on a free loopback port, healthy once constructed."""

    def __init__(self, data_dir: Path, model_dir: Path, *extra_args: str, **env: str) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        child_env = {
            **os.environ,
            "XLING_MODEL_DIR": str(model_dir),
            "XLING_LOG_FORMAT": "json",
            "OMP_NUM_THREADS": "2",
            **env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xling.clients.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(data_dir), *extra_args],
            env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.wait_healthy()

    def wait_healthy(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"xling serve exited early:\n{self.process.stderr.read()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    time.sleep(0.2)
        raise TimeoutError("xling serve did not become healthy")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 60) -> tuple[int, str]:
        _, stderr = self.process.communicate(timeout=timeout_s)
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
