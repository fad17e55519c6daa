"""Plumbing for the emulator's check scripts (scripts/test_*.py): runs a private moto server
through scripts/moto_shim.py on a free port and counts the checks made against it.

  import sys
  sys.dont_write_bytecode = True  # before this import: no scripts/__pycache__ in the work tree
  from emulator_check import RESULTS, Server, check

Server(env, log_prefix) starts the server (env: variables to set, None to remove, on top of
this process's environment) and waits until it accepts connections; .url, .client(service),
.control(method, path, body) on its /_pipectl endpoint, .stop() (the server's log is kept,
and its path printed, when any check failed).  check(name, fn) runs one check, prints
"ok   name" or "FAIL name" with the traceback, and counts it in RESULTS.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from typing import Any, Callable

import boto3
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
REGION = "eu-west-1"  # the region of every client
ACCOUNT = "123456789012"  # moto's default account (MOTO_ACCOUNT_ID unset)

RESULTS = {"passed": 0, "failed": 0}


def check(name: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - every failure is reported, then the run goes on
        RESULTS["failed"] += 1
        print(f"FAIL {name}")
        traceback.print_exc()
    else:
        RESULTS["passed"] += 1
        print(f"ok   {name}")


class Server:
    def __init__(self, env: dict[str, str | None], log_prefix: str,
                 client_config: dict[str, Any] | None = None):
        """env: variables set (a value) or removed (None) for the server; log_prefix: the name
        of its log file in the temp folder; client_config: botocore Config options of every
        client (default: no retries beyond one)."""
        self.client_config = client_config if client_config is not None else {"retries": {"max_attempts": 1}}
        self.port = self._free_port()
        server_env = dict(os.environ)
        for name, value in env.items():
            if value is None:
                server_env.pop(name, None)
            else:
                server_env[name] = value
        self.log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "moto_shim.py"), "-H", "127.0.0.1",
             "-p", str(self.port)], env=server_env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_shim exited; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("moto_shim did not start")

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str, key: str = "testing", secret: str = "testing") -> Any:
        # A fresh Config each time: botocore rewrites the retries dict it is given.
        config = Config(**copy.deepcopy(self.client_config))
        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id=key, aws_secret_access_key=secret, config=config)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request) as resp:
            return json.loads(resp.read() or b"null")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        if RESULTS["failed"]:
            print(f"server log kept: {self.log.name}")
        else:
            os.unlink(self.log.name)
