"""AWS-like behaviour for the local moto emulator (imported by scripts/moto_shim.py).

moto answers at once and forgives a lot; AWS is asynchronous and strict.  This module makes
the emulator behave like AWS where pipectl's integration tests need it, behind switches, so a
test can exercise waiting, "busy" conflicts, IAM propagation, quotas and failures.

Switches (read once at start-up):
  PIPECTL_AWS_LIKE        unset/empty: off (plain moto plus the always-on gap fixes);
                          "all": every behaviour; or a comma list of
                          async, busy, iam, quota, failures, foreign.
  PIPECTL_AWS_LIKE_STEPS  how many describe/get calls a transitional state lasts (default 2),
                          counted per resource, so tests are fast and deterministic.

Control endpoint (always on; `/_pipectl/...` can never be an AWS path: a path-style S3 bucket
name must begin with a lowercase letter or a digit, and no other service here uses that prefix):
  POST /_pipectl/faults  JSON body arming faults (see the `failures` and `foreign` sections);
                         answers {"armed": {...}, "inactive": [...]} where "inactive" lists the
                         faults whose switch is off (they are stored but have no effect).
  POST /_pipectl/reset   clears the faults and the call counts (resources and their
                         transitional states stay, as they are in moto).
  /_pipectl/search/...   an OpenSearch domain's REST endpoint (always on), with
                         /_pipectl/search-log, /_pipectl/search-state and the "search" fault:
                         see scripts/search_standin.py.

Faults (each value may also be a list of such objects; one-shot unless said):
  {"firehose_create_failed": {"name": D, "type": "KMS_ACCESS_DENIED", "details": "..."}}
  {"firehose_delete_failed": {"name": D}}            (optional "type", "details")
  {"delete_objects_errors": {"bucket": B, "code": "AccessDenied", "message": "Access Denied"}}
  {"domain_change_fails": {"name": D, "message": "..."}}
  {"lambda_failed": {"name": F, "reason": "..."}}    (until F is deleted)
  {"stream_stuck": {"name": S}}                      (persistent)
  {"foreign_buckets": [{"name": B, "kind": "redirect"|"optin"|"denied"|"taken"}]} (persistent)
  {"denied_tags": ["arn-or-name", ...]}              (persistent, appended)
  failures-type faults need `failures` on; foreign_buckets/denied_tags need `foreign` on.
  GET  /_pipectl/calls   JSON {"service:Action": count} of the calls seen (internal look-ups the
                         shim makes itself are not counted).  Services: kinesis, firehose, lambda,
                         opensearch (2021-01-01 paths), es (2015-01-01 paths), s3, iam, tagging,
                         cloudwatch (RPC v2 CBOR, bridged to moto's JSON 1.0; see "CloudWatch").

Mechanism: `install()` wraps the WSGI application that moto's `main()` hands to werkzeug's
`run_simple` in `AwsLike`.  The middleware identifies service and action, then either passes
the request through untouched (the default: data-plane calls are never buffered), answers it
itself (errors), or calls moto and rewrites the JSON/XML answer (status fields).  A few gap
fixes are plain model-level monkeypatches.  All shim state sits behind one re-entrant lock;
a call the shim intercepts holds the lock for its whole handling (moto's server is threaded).

Every behaviour cites the AWS page, terraform-provider-aws code or GitHub issue it reproduces.
Facts that could not be confirmed are marked "UNCONFIRMED".
"""

from __future__ import annotations

import base64
import collections
import datetime
import io
import json
import os
import re
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable, Iterable
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as xml_escape

import search_standin  # scripts/search_standin.py: the domain REST endpoint stand-in

# --------------------------------------------------------------------------------------------
# Switches
# --------------------------------------------------------------------------------------------

FEATURES = ("async", "busy", "iam", "quota", "failures", "foreign")


def parse_features(value: str | None) -> frozenset[str]:
    value = (value or "").strip()
    if not value:
        return frozenset()
    if value == "all":
        return frozenset(FEATURES)
    wanted = {part.strip() for part in value.split(",") if part.strip()}
    unknown = wanted - set(FEATURES)
    if unknown:
        raise SystemExit(f"PIPECTL_AWS_LIKE: unknown behaviour(s) {sorted(unknown)}; "
                         f"use 'all' or a comma list of {', '.join(FEATURES)}")
    return frozenset(wanted)


ENABLED = parse_features(os.environ.get("PIPECTL_AWS_LIKE"))
STEPS = max(0, int(os.environ.get("PIPECTL_AWS_LIKE_STEPS", "2") or "2"))
# IAM propagation: how many calls that use a freshly changed role fail (the brief: "the next 2").
IAM_PROPAGATION_CALLS = 2


def on(feature: str) -> bool:
    return feature in ENABLED


def async_on() -> bool:
    """Transitional states exist only with `async` and a positive step count."""
    return on("async") and STEPS > 0


# Which switch makes each fault take effect.
FAULT_FEATURE = {
    "foreign_buckets": "foreign",
    "denied_tags": "foreign",
    "firehose_create_failed": "failures",
    "firehose_delete_failed": "failures",
    "delete_objects_errors": "failures",
    "domain_change_fails": "failures",
    "lambda_failed": "failures",
    "stream_stuck": "failures",
}

# --------------------------------------------------------------------------------------------
# Shared state (one lock)
# --------------------------------------------------------------------------------------------


class Transition:
    """A transitional status that lasts `left` more describe/get calls of its resource."""

    def __init__(self, status: str, left: int = STEPS, replay: "Req | None" = None,
                 **extra: Any):
        self.status = status
        self.left = left
        self.replay = replay  # a deferred delete, sent to moto when the transition ends
        self.extra = extra


class State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset_all()

    def reset_all(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.faults: dict[str, Any] = {}
        self.kinesis: dict[tuple[str, str], Transition] = {}
        self.kinesis_reshards: dict[tuple[str, str], collections.deque[float]] = {}
        self.firehose: dict[tuple[str, str], Transition] = {}
        self.lambdas: dict[tuple[str, str], Transition] = {}
        self.domains: dict[tuple[str, str], Transition] = {}
        self.domain_reserved: dict[tuple[str, str], int] = {}  # CreateDomain attempts left
        self.domain_changes: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.upgrades: dict[tuple[str, str], dict[str, Any]] = {}  # UpgradeDomain in flight
        self.roles: dict[str, dict[str, Any]] = {}  # role name -> {"left": n, "kind": ...}
        self.rate: dict[str, collections.deque[float]] = {}

    def fault_active(self, key: str) -> bool:
        return key in self.faults and on(FAULT_FEATURE[key])


STATE = State()


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------------------------
# Request / response plumbing
# --------------------------------------------------------------------------------------------

App = Callable[[dict, Callable], Iterable[bytes]]
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class Resp:
    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b""):
        self.status = status
        self.headers = list(headers or [])
        self.body = body

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def with_body(self, body: bytes, content_type: str | None = None) -> "Resp":
        """Replaces the body and fixes Content-Length (and Content-Type if given)."""
        drop = {"content-length"} | ({"content-type"} if content_type else set())
        headers = [(k, v) for k, v in self.headers if k.lower() not in drop]
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.append(("Content-Length", str(len(body))))
        return Resp(self.status, headers, body)

    def with_json(self, obj: Any) -> "Resp":
        return self.with_body(json.dumps(obj, default=str).encode())


class Req:
    """One request as the middleware sees it; `forward()` hands it to moto and buffers the
    answer.  The body is read once and put back, so moto reads it again as usual."""

    def __init__(self, app: App, environ: dict):
        self.app = app
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        if isinstance(path, bytes):
            path = path.decode("utf-8")
        self.path = path
        self.query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""),
                                           keep_blank_values=True)
        self.target = environ.get("HTTP_X_AMZ_TARGET", "")
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if not auth and "X-Amz-Credential" in self.query:  # a presigned URL
            auth = "Credential=" + self.query["X-Amz-Credential"][0]
        m = _CREDENTIAL.search(auth)
        self.access_key = m.group(1) if m else ""
        self.region = m.group(2) if m else "us-east-1"
        self.signing_service = m.group(3) if m else ""
        self.service, self.action = identify(self)
        self.body = self._read_body() if self._needs_body() else None
        self._json: Any = None

    # -- body ----------------------------------------------------------------------------
    def _needs_body(self) -> bool:
        # S3 object bodies are streamed through untouched; only DeleteObjects and
        # CreateBucket (small XML) are read.  Every other service is small JSON/form.
        if self.service == "s3":
            return self.action in ("DeleteObjects", "CreateBucket")
        return self.service != ""

    def _read_body(self) -> bytes:
        env = self.environ
        try:
            length = int(env.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = env.get("wsgi.input")
        if stream is None:
            body = b""
        elif length > 0:
            body = stream.read(length)
        elif env.get("wsgi.input_terminated"):
            body = stream.read()
        else:
            body = b""
        env["wsgi.input"] = io.BytesIO(body)
        return body

    def json(self) -> dict:
        if self._json is None:
            try:
                self._json = json.loads(self.body or b"{}")
            except ValueError:
                self._json = {}
        return self._json

    def form(self) -> dict[str, str]:
        data = urllib.parse.parse_qs((self.body or b"").decode("utf-8", "replace"))
        data.update(urllib.parse.parse_qs(self.environ.get("QUERY_STRING", "")))
        return {k: v[0] for k, v in data.items()}

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def account(self) -> str:
        if "MOTO_ACCOUNT_ID" in os.environ:
            return os.environ["MOTO_ACCOUNT_ID"]
        header = self.environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        if header:
            return header
        from moto.iam.models import get_account_id_from

        return get_account_id_from(self.access_key or "AKIAEXAMPLE")

    # -- talking to moto -----------------------------------------------------------------
    def forward(self) -> Resp:
        env = dict(self.environ)
        if self.body is not None:
            env["wsgi.input"] = io.BytesIO(self.body)
            env["CONTENT_LENGTH"] = str(len(self.body))
        return call_app(self.app, env)

    def sub(self, method: str, path: str, query: str = "", body: bytes = b"",
            target: str | None = None, extra: dict[str, str] | None = None) -> Resp:
        """An internal request to moto, signed like this one (moto does not check
        signatures), e.g. to look a resource up before deciding.  Not counted."""
        env = dict(self.environ)
        for key in ("RAW_URI", "REQUEST_URI", "HTTP_CONTENT_MD5", "HTTP_X_AMZ_CONTENT_SHA256"):
            env.pop(key, None)
        env.update({"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                    "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        if target is not None:
            env["HTTP_X_AMZ_TARGET"] = target
        env.update(extra or {})
        return call_app(self.app, env)

    def sub_json(self, action: str, payload: dict) -> Resp:
        """An internal awsJson call to the same service (Kinesis, Firehose)."""
        prefix = self.target.split(".", 1)[0]
        return self.sub("POST", "/", body=json.dumps(payload).encode(),
                        target=f"{prefix}.{action}")


def call_app(app: App, environ: dict) -> Resp:
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = list(headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return Resp(captured.get("status", 500), captured.get("headers", []), body)


def _request_id() -> str:
    return str(uuid.uuid4())


def json_error(code: str, message: str, status: int = 400, rest: bool = False) -> Resp:
    """An AWS JSON error.  awsJson1_1 (Kinesis, Firehose) puts the code in `__type`;
    restJson1 (Lambda, OpenSearch) in the `x-amzn-ErrorType` header; both are sent so every
    SDK parses it (https://smithy.io/2.0/aws/protocols/aws-json-1_1-protocol.html#operation-error-serialization,
    https://smithy.io/2.0/aws/protocols/aws-restjson1-protocol.html#operation-error-serialization)."""
    body: dict[str, Any] = {"__type": code, "message": message}
    if rest:
        body = {"Type": "User", "message": message, "Message": message}
    content_type = "application/json" if rest else "application/x-amz-json-1.1"
    raw = json.dumps(body).encode()
    headers = [("Content-Type", content_type), ("x-amzn-ErrorType", code),
               ("x-amzn-RequestId", _request_id()), ("Content-Length", str(len(raw)))]
    return Resp(status, headers, raw)


def json_ok(obj: Any, rest: bool = False) -> Resp:
    raw = json.dumps(obj, default=str).encode() if obj is not None else b""
    content_type = "application/json" if rest else "application/x-amz-json-1.1"
    return Resp(200, [("Content-Type", content_type), ("x-amzn-RequestId", _request_id()),
                      ("Content-Length", str(len(raw)))], raw)


def s3_error(code: str, message: str, status: int, extra: dict[str, str] | None = None,
             headers: list[tuple[str, str]] | None = None, bare: bool = False) -> Resp:
    """An S3 REST-XML error (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
    HEAD answers carry no body (`bare`), as on AWS."""
    rid = uuid.uuid4().hex[:16].upper()
    hdrs = [("x-amz-request-id", rid), ("x-amz-id-2", base64.b64encode(rid.encode()).decode())]
    hdrs += headers or []
    if bare:
        return Resp(status, hdrs + [("Content-Length", "0")], b"")
    fields = "".join(f"<{k}>{xml_escape(v)}</{k}>" for k, v in (extra or {}).items())
    raw = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
           f"<Message>{xml_escape(message)}</Message>{fields}<RequestId>{rid}</RequestId>"
           f"<HostId>{base64.b64encode(rid.encode()).decode()}</HostId></Error>").encode()
    hdrs += [("Content-Type", "application/xml"), ("Content-Length", str(len(raw)))]
    return Resp(status, hdrs, raw)


def access_denied_message(account: str, action: str, resource: str) -> str:
    # The wording of an IAM implicit deny
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html).
    return (f"User: arn:aws:iam::{account}:user/pipectl-test is not authorized to perform: "
            f"{action} on resource: {resource} because no identity-based policy allows the "
            f"{action} action")


def tags_denied(*names: str) -> bool:
    """`denied_tags` fault: tag reads on these resources (ARN or name) are denied."""
    if not STATE.fault_active("denied_tags"):
        return False
    denied = set(STATE.faults.get("denied_tags", []))
    return any(n and n in denied for n in names)


def rate_limited(key: str, per_second: int) -> bool:
    """Sliding one-second window; only accepted calls are counted."""
    window = STATE.rate.setdefault(key, collections.deque())
    t = time.monotonic()
    while window and t - window[0] >= 1.0:
        window.popleft()
    if len(window) >= per_second:
        return True
    window.append(t)
    return False


def take_one_shot(key: str, name: str) -> dict | None:
    """Consumes an armed one-shot fault whose "name" (or "bucket") is `name`."""
    if not STATE.fault_active(key):
        return None
    entries = STATE.faults.get(key, [])
    for i, entry in enumerate(entries):
        if entry.get("name", entry.get("bucket")) == name:
            del entries[i]
            if not entries:
                STATE.faults.pop(key, None)
            return entry
    return None


# --------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------

_SIGNING_TO_SERVICE = {"kinesis": "kinesis", "firehose": "firehose", "lambda": "lambda",
                       "es": "es", "s3": "s3", "iam": "iam", "tagging": "tagging"}

_S3_SUBRESOURCES = {
    # query sub-resource -> action suffix (S3 API reference operation names)
    "tagging": "Tagging", "location": "Location", "encryption": "Encryption",
    "publicAccessBlock": "PublicAccessBlock", "policy": "Policy", "versioning": "Versioning",
    "lifecycle": "LifecycleConfiguration", "notification": "NotificationConfiguration",
    "acl": "Acl", "cors": "Cors", "logging": "Logging", "ownershipControls": "OwnershipControls",
    "website": "Website", "replication": "Replication", "accelerate": "Accelerate",
}


def identify(req: Req) -> tuple[str, str]:
    """Returns (service, action) for the calls the shim knows, ("", "") otherwise."""
    target = req.target
    if target.startswith("Kinesis_20131202."):
        return "kinesis", target.split(".", 1)[1]
    if target.startswith("Firehose_20150804."):
        return "firehose", target.split(".", 1)[1]
    if target.startswith("ResourceGroupsTaggingAPI_20170126."):
        return "tagging", target.split(".", 1)[1]
    service = _SIGNING_TO_SERVICE.get(req.signing_service, "")
    path, method = req.path, req.method
    cbor = re.match(r"^/service/([^/]+)/operation/([^/]+)$", path)  # smithy-rpc-v2-cbor
    if cbor and cbor.group(1).startswith("ResourceGroupsTaggingAPI"):
        return "tagging", cbor.group(2)
    if cbor and cbor.group(1) == CLOUDWATCH_SERVICE_SHAPE:
        return "cloudwatch", cbor.group(2)
    if service in ("s3", "iam", "tagging"):
        pass  # decided below: a bucket may be named like a Lambda or OpenSearch path
    elif service == "lambda" or path.startswith(("/2015-03-31/functions", "/2017-03-31/tags")):
        return "lambda", _lambda_action(method, path)
    elif path.startswith("/2021-01-01/"):
        return "opensearch", _opensearch_action(method, path)
    elif path.startswith("/2015-01-01/"):
        return "es", _opensearch_action(method, path.replace("/2015-01-01/es/", "/2021-01-01/opensearch/").replace("/2015-01-01/", "/2021-01-01/"))
    if service == "iam":
        return "iam", ""  # the action is in the form body; see iam_action()
    if service == "tagging":
        return "tagging", target.split(".", 1)[-1] if target else ""
    if service == "s3":
        return "s3", _s3_action(req)
    return "", ""


def _lambda_action(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[1] == "tags":
        return {"GET": "ListTags", "POST": "TagResource", "DELETE": "UntagResource"}.get(method, method)
    if len(parts) == 2:
        return {"POST": "CreateFunction", "GET": "ListFunctions"}.get(method, method)
    if len(parts) == 3:
        return {"GET": "GetFunction", "DELETE": "DeleteFunction"}.get(method, method)
    sub = parts[3] if len(parts) > 3 else ""
    return {("GET", "configuration"): "GetFunctionConfiguration",
            ("PUT", "configuration"): "UpdateFunctionConfiguration",
            ("PUT", "code"): "UpdateFunctionCode",
            ("POST", "invocations"): "Invoke",
            ("POST", "versions"): "PublishVersion",
            ("GET", "versions"): "ListVersionsByFunction"}.get((method, sub), f"{method}:{sub}")


def _opensearch_action(method: str, path: str) -> str:
    parts = [p for p in path.split("/") if p]  # 2021-01-01, opensearch, domain, name, sub
    if parts[1:2] == ["tags"]:
        return {"GET": "ListTags", "POST": "AddTags"}.get(method, method)
    if parts[1:2] == ["tags-removal"]:
        return "RemoveTags"
    if parts[1:2] == ["domain"]:
        return "ListDomainNames"
    if parts[1:3] == ["opensearch", "domain-info"]:
        return "DescribeDomains"
    if parts[1:3] == ["opensearch", "domain"]:
        if len(parts) == 3:
            return "CreateDomain"
        if len(parts) == 4:
            return {"GET": "DescribeDomain", "DELETE": "DeleteDomain"}.get(method, method)
        sub = parts[4]
        return {("GET", "config"): "DescribeDomainConfig",
                ("POST", "config"): "UpdateDomainConfig",
                ("GET", "progress"): "DescribeDomainChangeProgress",
                ("GET", "dryRun"): "DescribeDryRunProgress"}.get((method, sub), f"{method}:{sub}")
    if parts[1:3] == ["opensearch", "compatibleVersions"]:
        return "GetCompatibleVersions"
    if parts[1:3] == ["opensearch", "instanceTypeLimits"]:
        return "DescribeInstanceTypeLimits"
    if parts[1:3] == ["opensearch", "upgradeDomain"]:
        return "UpgradeDomain" if len(parts) == 3 else "GetUpgradeStatus"
    return f"{method}:{'/'.join(parts[1:3])}"


def _s3_action(req: Req) -> str:
    bucket, key = s3_bucket_key(req.path)
    method, query = req.method, req.query
    if not bucket:
        return "ListBuckets" if method == "GET" else method
    if key:
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                    "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method)
        if "tagging" in query:
            return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging",
                    "DELETE": "DeleteObjectTagging"}.get(method, method)
        if method == "PUT" and req.environ.get("HTTP_X_AMZ_COPY_SOURCE"):
            return "CopyObject"
        return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
                "DELETE": "DeleteObject"}.get(method, method)
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    for sub, suffix in _S3_SUBRESOURCES.items():
        if sub in query:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method, method)
            return f"{verb}Bucket{suffix}"
    if method == "GET":
        return "ListObjectsV2" if req.q("list-type") == "2" else "ListObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, method)


def s3_bucket_key(path: str) -> tuple[str, str]:
    """Path-style addressing only (pipectl's client uses force_path_style)."""
    stripped = path.lstrip("/")
    if not stripped:
        return "", ""
    bucket, _, key = stripped.partition("/")
    return bucket, key


def arn_tail(value: str, marker: str) -> str:
    """`arn:...:stream/NAME` -> NAME (for marker "stream/"); a plain name is returned as is."""
    if value and value.startswith("arn:") and marker in value:
        return value.split(marker, 1)[1]
    return value or ""


# ============================================================================================
# Kinesis Data Streams
# ============================================================================================

KINESIS_DESCRIBE = {"DescribeStream", "DescribeStreamSummary"}
# Operations that leave the stream UPDATING (each API reference page says the stream goes to
# UPDATING, e.g. https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html
# "Kinesis Data Streams returns immediately and sets the status of the stream to UPDATING";
# API_StartStreamEncryption.html, API_StopStreamEncryption.html, API_UpdateStreamMode.html,
# API_IncreaseStreamRetentionPeriod.html, API_DecreaseStreamRetentionPeriod.html).
KINESIS_UPDATING_OPS = {"UpdateShardCount", "StartStreamEncryption", "StopStreamEncryption",
                        "IncreaseStreamRetentionPeriod", "DecreaseStreamRetentionPeriod",
                        "UpdateStreamMode"}
KINESIS_MUTATING = KINESIS_UPDATING_OPS | {"AddTagsToStream", "RemoveTagsFromStream",
                                           "SplitShard", "MergeShards"}
KINESIS_INTERCEPT = KINESIS_DESCRIBE | KINESIS_MUTATING | {
    "CreateStream", "DeleteStream", "ListStreams", "ListTagsForStream"}
RESHARDS_PER_DAY = 10


def kinesis_handle(req: Req) -> Resp | None:
    action = req.action
    if action not in KINESIS_INTERCEPT:
        return None  # data plane (PutRecords, GetRecords, ...) is never touched
    body = req.json()
    name = arn_tail(body.get("StreamARN") or body.get("StreamName") or "", "stream/")
    key = (req.region, name)
    with STATE.lock:
        if action in KINESIS_DESCRIBE:
            return kinesis_describe(req, key)
        if action == "ListStreams":
            return kinesis_list_streams(req)
        if action == "ListTagsForStream":
            return kinesis_list_tags(req, key)
        if action == "CreateStream":
            resp = req.forward()
            if resp.ok and async_on():
                # API_CreateStream.html: "CreateStream is an asynchronous operation. Upon
                # receiving a CreateStream request, Kinesis Data Streams immediately returns
                # and sets the stream status to CREATING."
                STATE.kinesis[key] = Transition("CREATING")
            return resp
        if action == "DeleteStream":
            return kinesis_delete(req, key)
        return kinesis_mutate(req, key)


def _kinesis_not_active(req: Req, name: str, status: str) -> Resp:
    # ResourceInUseException for a stream that is not ACTIVE: the wording AWS gives
    # ("Stream X under account Y not ACTIVE, instead in state UPDATING"), as reproduced by
    # kinesalite (github.com/mhart/kinesalite actions/updateShardCount.js) and quoted from
    # AWS in aws/aws-sdk-java-v2#5949 ("... not ACTIVE or UPDATING, instead in state CREATING").
    return json_error("ResourceInUseException",
                      f"Stream {name} under account {req.account} not ACTIVE, "
                      f"instead in state {status}")


def _kinesis_step(key: tuple[str, str], st: Transition, req: Req) -> None:
    """One describe call has seen the transition; end it after STEPS of them."""
    if _stuck(key[1]):
        return
    st.left -= 1
    if st.left > 0:
        return
    STATE.kinesis.pop(key, None)
    if st.replay is not None:
        st.replay.forward()  # the deferred DeleteStream: now the stream is really gone


def _stuck(name: str) -> bool:
    """`stream_stuck` fault: the stream's transitional state never ends (optional fault)."""
    return STATE.fault_active("stream_stuck") and any(
        e.get("name") == name for e in STATE.faults.get("stream_stuck", []))


def kinesis_describe(req: Req, key: tuple[str, str]) -> Resp:
    resp = req.forward()
    st = STATE.kinesis.get(key)
    if not resp.ok or st is None:
        return resp
    data = resp.json()
    for field in ("StreamDescription", "StreamDescriptionSummary"):
        if field in data:
            data[field]["StreamStatus"] = st.status
    _kinesis_step(key, st, req)
    return resp.with_json(data)


def kinesis_list_streams(req: Req) -> Resp:
    # API_ListStreams.html: StreamSummaries carry each stream's StreamStatus; a stream being
    # deleted is still listed, as DELETING, until it is gone.  Listing does not advance states.
    resp = req.forward()
    if not resp.ok or not STATE.kinesis:
        return resp
    data = resp.json()
    for summary in data.get("StreamSummaries", []):
        st = STATE.kinesis.get((req.region, summary.get("StreamName", "")))
        if st is not None:
            summary["StreamStatus"] = st.status
    return resp.with_json(data)


def kinesis_list_tags(req: Req, key: tuple[str, str]) -> Resp:
    name = key[1]
    if on("quota") and rate_limited(f"kinesis:ListTagsForStream:{req.account}", 5):
        # API_ListTagsForStream.html: "This operation has a limit of five transactions per
        # second per account."  The message is the one terraform-provider-aws retries on
        # ("Rate exceeded for stream", internal/service/kinesis; LimitExceededException).
        return json_error("LimitExceededException",
                          f"Rate exceeded for stream {name} under account {req.account}.")
    arn = f"arn:aws:kinesis:{req.region}:{req.account}:stream/{name}"
    if tags_denied(arn, name):
        # API_ListTagsForStream.html lists AccessDeniedException (HTTP 400 in awsJson).
        return json_error("AccessDeniedException",
                          access_denied_message(req.account, "kinesis:ListTagsForStream", arn))
    return req.forward()


def kinesis_delete(req: Req, key: tuple[str, str]) -> Resp:
    st = STATE.kinesis.get(key)
    if st is not None and on("busy"):
        if st.status == "CREATING":
            # API_DeleteStream.html: "If the stream is in the ACTIVE state, you can delete
            # it."  A CREATING stream is refused; wording as kinesalite reproduces it
            # (github.com/mhart/kinesalite actions/deleteStream.js).  An UPDATING stream is
            # let through (UNCONFIRMED whether AWS refuses that too).
            return json_error("ResourceInUseException",
                              "Attempt to change a resource which is still in use: "
                              f"Stream is being created: {key[1]}")
    if st is not None and st.status == "DELETING":
        return json_ok(None)  # already DELETING: a repeated delete is a no-op (UNCONFIRMED)
    if not async_on():
        resp = req.forward()
        if resp.ok:
            STATE.kinesis.pop(key, None)
        return resp
    # API_DeleteStream.html: "After a DeleteStream request, the specified stream is in the
    # DELETING state until Kinesis Data Streams completes the deletion."  The delete is
    # deferred: moto deletes the stream after STEPS describes that answered DELETING.
    probe = req.sub_json("DescribeStreamSummary", _stream_ref(req))
    if not probe.ok:
        return probe  # ResourceNotFoundException, as moto words it
    STATE.kinesis[key] = Transition("DELETING", replay=req)
    return json_ok(None)


def _stream_ref(req: Req) -> dict:
    body = req.json()
    return {k: body[k] for k in ("StreamName", "StreamARN") if body.get(k)}


def kinesis_mutate(req: Req, key: tuple[str, str]) -> Resp:
    action, name = req.action, key[1]
    st = STATE.kinesis.get(key)
    if on("busy"):
        if st is not None:
            return _kinesis_not_active(req, name, st.status)
        if action == "UpdateShardCount":
            refused = kinesis_reshard_limits(req, key)
            if refused is not None:
                return refused
    resp = req.forward()
    if resp.ok:
        if action == "UpdateShardCount":
            STATE.kinesis_reshards.setdefault(key, collections.deque()).append(time.time())
        if action in KINESIS_UPDATING_OPS and async_on():
            STATE.kinesis[key] = Transition("UPDATING")
    return resp


def kinesis_reshard_limits(req: Req, key: tuple[str, str]) -> Resp | None:
    """API_UpdateShardCount.html, "This operation has the following default limits. By
    default, you cannot do the following: Scale more than ten times per rolling 24-hour period
    per stream; Scale up to more than double your current shard count for a stream; Scale down
    below half your current shard count for a stream ..."  All three are LimitExceededException
    (the error the page lists for limits).  The double/half wording is AWS's as kinesalite
    reproduces it (github.com/mhart/kinesalite actions/updateShardCount.js)."""
    target = int(req.json().get("TargetShardCount") or 0)
    probe = req.sub_json("DescribeStreamSummary", _stream_ref(req))
    if not probe.ok:
        return None  # let moto answer (ResourceNotFoundException)
    summary = probe.json().get("StreamDescriptionSummary", {})
    if summary.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND":
        return None  # moto's own ValidationException applies
    current = int(summary.get("OpenShardCount") or 0)
    if current and target > 2 * current:
        return json_error("LimitExceededException",
                          "UpdateShardCount cannot scale up over double your current open "
                          f"shard count. Current open shard count: {current}, "
                          f"Target shard count: {target}")
    if current and target * 2 < current:
        return json_error("LimitExceededException",
                          "UpdateShardCount cannot scale down below half your current open "
                          f"shard count. Current open shard count: {current}, "
                          f"Target shard count: {target}")
    history = STATE.kinesis_reshards.setdefault(key, collections.deque())
    cutoff = time.time() - 24 * 3600
    while history and history[0] < cutoff:
        history.popleft()
    if len(history) >= RESHARDS_PER_DAY:
        # UNCONFIRMED wording; the limit and the exception are documented.
        return json_error("LimitExceededException",
                          f"Stream {key[1]} under account {req.account} has exceeded the "
                          f"limit of {RESHARDS_PER_DAY} UpdateShardCount operations per "
                          "rolling 24-hour period.")
    return None


# ============================================================================================
# Amazon Data Firehose
# ============================================================================================

FIREHOSE_INTERCEPT = {"CreateDeliveryStream", "DescribeDeliveryStream", "DeleteDeliveryStream",
                      "UpdateDestination", "TagDeliveryStream", "UntagDeliveryStream",
                      "ListTagsForDeliveryStream"}
FIREHOSE_ES_KEYS = ("ElasticsearchDestinationConfiguration", "ElasticsearchDestinationUpdate",
                    "AmazonopensearchserviceDestinationConfiguration",
                    "AmazonopensearchserviceDestinationUpdate")


def firehose_handle(req: Req) -> Resp | None:
    action = req.action
    if action not in FIREHOSE_INTERCEPT:
        return None
    name = req.json().get("DeliveryStreamName", "")
    key = (req.region, name)
    with STATE.lock:
        if action == "DescribeDeliveryStream":
            return firehose_describe(req, key)
        if action == "ListTagsForDeliveryStream":
            return firehose_list_tags(req, key)
        if action == "DeleteDeliveryStream":
            return firehose_delete(req, key)
        if action in ("CreateDeliveryStream", "UpdateDestination"):
            refused = firehose_role_check(req)
            if refused is not None:
                return refused
        if action == "CreateDeliveryStream":
            resp = req.forward()
            if resp.ok:
                failed = take_one_shot("firehose_create_failed", name)
                if failed is not None:
                    # `firehose_create_failed`: the create is accepted, then the stream rests
                    # in CREATING_FAILED with a FailureDescription {Type, Details}
                    # (API_DeliveryStreamDescription.html DeliveryStreamStatus;
                    # API_FailureDescription.html) until it is deleted.
                    STATE.firehose[key] = Transition(
                        "CREATING" if async_on() else "CREATING_FAILED",
                        left=STEPS if async_on() else 0, then="CREATING_FAILED",
                        failure={"Type": failed.get("type", "UNKNOWN_ERROR"),
                                 "Details": failed.get("details", "Delivery stream creation failed.")})
                elif async_on():
                    # API_CreateDeliveryStream.html: "This is an asynchronous operation that
                    # immediately returns. The initial status of the Firehose stream is
                    # CREATING. After the Firehose stream is created, its status is ACTIVE".
                    STATE.firehose[key] = Transition("CREATING")
            return resp
        # UpdateDestination, TagDeliveryStream, UntagDeliveryStream
        st = STATE.firehose.get(key)
        if on("busy") and st is not None and st.status in ("CREATING", "DELETING"):
            # API_UpdateDestination.html / API_TagDeliveryStream.html list
            # ResourceInUseException ("The resource is already in use and not available for
            # this operation").  Message wording UNCONFIRMED.
            return json_error("ResourceInUseException",
                              f"Firehose {name} under account {req.account} is not ACTIVE, "
                              f"current status: {st.status}.")
        return req.forward()


def _firehose_step(key: tuple[str, str], st: Transition) -> None:
    if st.left <= 0:
        return
    st.left -= 1
    if st.left > 0:
        return
    then = st.extra.get("then")
    if then:  # a failure fault: the stream now rests in its *_FAILED state
        st.status = then
        st.extra.pop("then")
        return
    STATE.firehose.pop(key, None)
    if st.replay is not None:
        st.replay.forward()


def firehose_describe(req: Req, key: tuple[str, str]) -> Resp:
    resp = req.forward()
    st = STATE.firehose.get(key)
    if not resp.ok or st is None:
        return resp
    data = resp.json()
    desc = data.get("DeliveryStreamDescription", {})
    desc["DeliveryStreamStatus"] = st.status
    # API_DeliveryStreamDescription.html: FailureDescription "Provides details in case one of
    # the following operations fails due to an error related to KMS: CreateDeliveryStream,
    # DeleteDeliveryStream, StartDeliveryStreamEncryption, StopDeliveryStreamEncryption."
    if st.status.endswith("_FAILED") and "failure" in st.extra:
        desc["FailureDescription"] = st.extra["failure"]
    _firehose_step(key, st)
    return resp.with_json(data)


def firehose_list_tags(req: Req, key: tuple[str, str]) -> Resp:
    name = key[1]
    if on("quota") and rate_limited(f"firehose:ListTagsForDeliveryStream:{req.account}", 5):
        # Firehose quotas page (https://docs.aws.amazon.com/firehose/latest/dev/limits.html):
        # ListTagsForDeliveryStream is limited to 5 transactions per second per account.
        # Real AWS answers ThrottlingException "Please slow down. Max limit of 5 RPS has
        # breached for ..." (observed in prowler-cloud/prowler#9124), not the
        # LimitExceededException the API reference lists; the observed error is reproduced.
        return json_error("ThrottlingException",
                          f"Please slow down. Max limit of 5 RPS has breached for account "
                          f"{req.account} and API ListTagsForDeliveryStream.")
    arn = f"arn:aws:firehose:{req.region}:{req.account}:deliverystream/{name}"
    if tags_denied(arn, name):
        return json_error("AccessDeniedException",
                          access_denied_message(req.account, "firehose:ListTagsForDeliveryStream", arn))
    return req.forward()


def firehose_delete(req: Req, key: tuple[str, str]) -> Resp:
    name = key[1]
    st = STATE.firehose.get(key)
    force = bool(req.json().get("AllowForceDelete"))
    if on("busy") and st is not None and st.status == "CREATING":
        # API_DeleteDeliveryStream.html: "You can delete a Firehose stream only if it is in
        # one of the following states: ACTIVE, DELETING, CREATING_FAILED, or DELETING_FAILED.
        # You can't delete a Firehose stream that is in the CREATING state."
        return json_error("ResourceInUseException",
                          f"Firehose {name} under account {req.account} is in CREATING state "
                          "and cannot be deleted.")
    if st is not None and st.status == "DELETING":
        return json_ok({})  # DELETING is a state DeleteDeliveryStream accepts (API ref above)
    probe = req.sub_json("DescribeDeliveryStream", {"DeliveryStreamName": name})
    if not probe.ok:
        return probe  # ResourceNotFoundException
    failed = None
    if not force:
        failed = take_one_shot("firehose_delete_failed", name)
        if failed is None and st is not None and st.status == "DELETING_FAILED":
            failed = {"sticky": True}  # still failing: only a forced delete gets it gone
    if failed is not None:
        # API_DeleteDeliveryStream.html, AllowForceDelete: "Set this to true if you want to
        # delete the Firehose stream even if Firehose is unable to retire the grant for the
        # CMK."  Without it the stream rests in DELETING_FAILED with a FailureDescription.
        failure = (st.extra.get("failure") if failed.get("sticky") and st else None) or {
            "Type": failed.get("type", "RETIRE_KMS_GRANT_FAILED"),
            "Details": failed.get("details", "Firehose is unable to retire the grant for the "
                                             "KMS key; use AllowForceDelete to delete anyway.")}
        STATE.firehose[key] = Transition(
            "DELETING" if async_on() else "DELETING_FAILED",
            left=STEPS if async_on() else 0, then="DELETING_FAILED", failure=failure)
        return json_ok({})
    if not async_on():
        STATE.firehose.pop(key, None)
        return req.forward()
    # API_DeleteDeliveryStream.html: "When an API request to DeleteDeliveryStream succeeds,
    # the Firehose stream is marked for deletion, and it goes into the DELETING state."
    STATE.firehose[key] = Transition("DELETING", replay=req)
    return json_ok({})


def _role_arns(obj: Any, found: list[str]) -> list[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "RoleARN" and isinstance(v, str):
                found.append(v)
            else:
                _role_arns(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _role_arns(v, found)
    return found


def firehose_role_check(req: Req) -> Resp | None:
    """`iam`: a role changed moments ago cannot be used by Firehose yet.
    terraform-provider-aws retries CreateDeliveryStream/UpdateDestination on
    InvalidArgumentException "Firehose is unable to assume role" and on "Verify that the IAM
    role has access to the Elasticsearch domain." (internal/service/firehose/delivery_stream.go,
    with the comment "IAM roles can take ~10 seconds to propagate in AWS").  After CreateRole or
    UpdateAssumeRolePolicy the trust policy has not propagated: Firehose cannot assume the role.
    After PutRolePolicy/AttachRolePolicy the role can be assumed but its permissions have not
    propagated: for an Elasticsearch/OpenSearch destination role that is the domain message."""
    if not on("iam"):
        return None
    body = req.json()
    es_roles = set()
    for k in FIREHOSE_ES_KEYS:
        if isinstance(body.get(k), dict) and body[k].get("RoleARN"):
            es_roles.add(body[k]["RoleARN"])
    for arn in _role_arns(body, []):
        pending = role_propagating(arn)
        if pending is None:
            continue
        pending["left"] -= 1
        if pending["kind"] == "policy" and arn in es_roles:
            return json_error("InvalidArgumentException",
                              "Verify that the IAM role has access to the Elasticsearch domain.")
        return json_error("InvalidArgumentException",
                          f"Firehose is unable to assume role {arn}. Please check the role provided.")
    return None


# ============================================================================================
# IAM (propagation) — query protocol
# ============================================================================================

IAM_CHANGES = {"CreateRole": "trust", "UpdateAssumeRolePolicy": "trust",
               "PutRolePolicy": "policy", "AttachRolePolicy": "policy"}


def iam_handle(req: Req) -> Resp | None:
    form = req.form()
    action = form.get("Action", "")
    req.action = action
    count_call(req)  # counted here: the action is only known once the form is parsed
    kind = IAM_CHANGES.get(action)
    if kind is None or not on("iam"):
        return None
    role = form.get("RoleName", "")
    with STATE.lock:
        resp = req.forward()
        if resp.ok and role:
            # IAM is eventually consistent: "changes that you make ... take time to become
            # visible" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency).
            previous = STATE.roles.get(role)
            if previous and previous["left"] > 0 and previous["kind"] == "trust":
                kind = "trust"  # the trust policy has still not propagated
            STATE.roles[role] = {"left": IAM_PROPAGATION_CALLS, "kind": kind}
        return resp


def role_propagating(role_arn: str) -> dict | None:
    name = role_arn.rsplit("/", 1)[-1] if role_arn else ""
    pending = STATE.roles.get(name)
    if pending is None or pending["left"] <= 0:
        return None
    return pending


# ============================================================================================
# Lambda
# ============================================================================================

LAMBDA_ENV_LIMIT = 4096  # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html


def lambda_function_name(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    ident = urllib.parse.unquote(parts[2]) if len(parts) > 2 else ""
    if ident.startswith("arn:"):
        ident = ident.split(":function:", 1)[-1]
    return ident.split(":", 1)[0]  # drop a qualifier


def lambda_handle(req: Req) -> Resp | None:
    action = req.action
    if action == "ListTags":
        arn = urllib.parse.unquote(req.path.split("/tags/", 1)[-1])
        with STATE.lock:
            if tags_denied(arn, arn.split(":function:", 1)[-1]):
                return json_error("AccessDeniedException",
                                  access_denied_message(req.account, "lambda:ListTags", arn),
                                  status=403, rest=True)
        return None
    if action not in ("CreateFunction", "GetFunction", "GetFunctionConfiguration",
                      "UpdateFunctionConfiguration", "UpdateFunctionCode", "DeleteFunction"):
        return None
    if action == "CreateFunction":
        name = req.json().get("FunctionName", "")
        name = name.split(":function:", 1)[-1] if name.startswith("arn:") else name
    else:
        name = lambda_function_name(req.path)
    key = (req.region, name)
    arn = f"arn:aws:lambda:{req.region}:{req.account}:function:{name}"
    with STATE.lock:
        if action in ("GetFunction", "GetFunctionConfiguration"):
            resp = req.forward()
            if resp.ok:
                data = resp.json()
                conf = data.get("Configuration", data) if action == "GetFunction" else data
                st = STATE.lambdas.get(key)
                if st is None and _lambda_failed(name) is None:
                    return resp
                lambda_rewrite(conf, key, st)
                if st is not None:
                    st.left -= 1
                    if st.left <= 0:
                        STATE.lambdas.pop(key, None)
                return resp.with_json(data)
            return resp
        if action == "DeleteFunction":
            resp = req.forward()
            if resp.ok:
                STATE.lambdas.pop(key, None)
                # `lambda_failed` describes that function: a new one of the same name is fine.
                failed = STATE.faults.get("lambda_failed", [])
                failed[:] = [e for e in failed if e.get("name") != name]
                if not failed:
                    STATE.faults.pop("lambda_failed", None)
            return resp
        # CreateFunction, UpdateFunctionConfiguration, UpdateFunctionCode
        st = STATE.lambdas.get(key)
        if action != "CreateFunction" and on("busy") and st is not None:
            # https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html: while a
            # function is Pending or an update is InProgress, further updates fail with
            # ResourceConflictException (409).  Wording as AWS returns it (quoted in
            # localstack's AWS-validated tests and many issues, e.g. "The operation cannot be
            # performed at this time. An update is in progress for resource: arn:aws:lambda:...").
            if st.status == "Pending":
                message = ("The operation cannot be performed at this time. The function is "
                           "currently in the following state: Pending")
            else:
                message = ("The operation cannot be performed at this time. An update is in "
                           f"progress for resource: {arn}")
            return json_error("ResourceConflictException", message, status=409, rest=True)
        body = req.json()
        if action in ("CreateFunction", "UpdateFunctionConfiguration"):
            refused = lambda_env_quota(body) or lambda_role_check(body)
            if refused is not None:
                return refused
        resp = req.forward()
        if not resp.ok:
            return resp
        data = resp.json()
        if async_on():
            if action == "CreateFunction":
                # functions-states.html: "When you create a function, the function is in the
                # Pending state ... StateReasonCode Creating".
                st = Transition("Pending")
            else:
                # functions-states.html, "Function states during updates": LastUpdateStatus
                # InProgress until the update is done (the response shows
                # "LastUpdateStatusReason": "The function is being created.",
                # "LastUpdateStatusReasonCode": "Creating", as AWS prints it).
                st = Transition("InProgress")
            STATE.lambdas[key] = st
            lambda_rewrite(data, key, st)
        return resp.with_json(data)


def lambda_rewrite(conf: dict, key: tuple[str, str], st: Transition | None) -> None:
    if st is not None and st.status == "Pending":
        conf.update({"State": "Pending", "StateReason": "The function is being created.",
                     "StateReasonCode": "Creating"})
    elif st is not None and st.status == "InProgress":
        conf.update({"LastUpdateStatus": "InProgress",
                     "LastUpdateStatusReason": "The function is being created.",
                     "LastUpdateStatusReasonCode": "Creating"})
    failed = _lambda_failed(key[1])
    if failed is not None:
        # `lambda_failed` fault (API_FunctionConfiguration.html: State Failed, StateReason,
        # StateReasonCode, e.g. InternalError).
        conf.update({"State": "Failed", "StateReason": failed.get("reason", "Internal error."),
                     "StateReasonCode": "InternalError"})


def _lambda_failed(name: str) -> dict | None:
    if not STATE.fault_active("lambda_failed"):
        return None
    for entry in STATE.faults.get("lambda_failed", []):
        if entry.get("name") == name:
            return entry
    return None


def lambda_env_quota(body: dict) -> Resp | None:
    """`quota`: "Function environment variables: 4 KB, for all environment variables
    associated with the function, in aggregate" (gettingstarted-limits.html).  Lambda measures
    the variables serialised as compact JSON and prints that string in the error, e.g.
    'InvalidParameterValueException: Lambda was unable to configure your environment variables
    because the environment variables you have provided exceeded the 4KB limit. String
    measured: {"POWERTOOLS_LOGGER_LOG_EVENT":"true",...}'
    (github-aws-runners/terraform-aws-github-runner#3594)."""
    if not on("quota"):
        return None
    variables = (body.get("Environment") or {}).get("Variables")
    if not variables:
        return None
    measured = json.dumps(variables, separators=(",", ":"), ensure_ascii=False)
    if len(measured.encode("utf-8")) <= LAMBDA_ENV_LIMIT:
        return None
    return json_error("InvalidParameterValueException",
                      "Lambda was unable to configure your environment variables because the "
                      "environment variables you have provided exceeded the 4KB limit. "
                      f"String measured: {measured}", status=400, rest=True)


def lambda_role_check(body: dict) -> Resp | None:
    """`iam`: Lambda cannot assume a role whose changes have not propagated.  The message is
    AWS's (terraform-provider-aws retries CreateFunction on "The role defined for the function
    cannot be assumed by Lambda", internal/service/lambda/function.go)."""
    if not on("iam") or not body.get("Role"):
        return None
    pending = role_propagating(body["Role"])
    if pending is None:
        return None
    pending["left"] -= 1
    return json_error("InvalidParameterValueException",
                      "The role defined for the function cannot be assumed by Lambda.",
                      status=400, rest=True)


# ============================================================================================
# OpenSearch Service (2021-01-01 paths)
# ============================================================================================

CHANGE_IN_PROGRESS = ("A change/update is in progress. Please wait for it to complete before "
                      "requesting another change.")


def opensearch_handle(req: Req) -> Resp | None:
    action = req.action
    if action == "ListTags":
        arn = req.q("arn") or ""
        with STATE.lock:
            if tags_denied(arn, arn_tail(arn, "domain/")):
                # API_ListTags.html (OpenSearch): AccessDeniedException, HTTP 403.
                return json_error("AccessDeniedException",
                                  access_denied_message(req.account, "es:ListTags", arn),
                                  status=403, rest=True)
        return None
    if req.service != "opensearch":
        return None  # legacy es paths: only ListTags above
    if action in ("GetCompatibleVersions", "UpgradeDomain", "GetUpgradeStatus"):
        with STATE.lock:
            return opensearch_upgrades(req, action)
    if action == "DescribeInstanceTypeLimits":
        return opensearch_instance_type_limits(req)
    parts = [p for p in req.path.split("/") if p]
    if action == "CreateDomain":
        name = req.json().get("DomainName", "")
    elif action == "DescribeDomains":
        name = ""
    else:
        name = urllib.parse.unquote(parts[3]) if len(parts) > 3 else ""
    key = (req.region, name)
    with STATE.lock:
        if action == "DescribeDomain":
            return opensearch_describe(req, key)
        if action == "DescribeDomains":
            return opensearch_describe_many(req)
        if action == "DescribeDomainConfig":
            return opensearch_describe_config(req, key)
        if action == "CreateDomain":
            return opensearch_create(req, key)
        if action == "DeleteDomain":
            return opensearch_delete(req, key)
        if action == "UpdateDomainConfig":
            return opensearch_update(req, key)
        if action == "DescribeDomainChangeProgress" and (on("async") or on("failures")):
            return opensearch_progress(req, key)
        return None


# -- Engine upgrades (always on: moto 5.2.5 does not route UpgradeDomain or GetUpgradeStatus,
# and its GetCompatibleVersions is a fixed list that ignores the domain) ------------------------

def _upgrade_table() -> dict[str, list[str]]:
    """Which versions each version upgrades to directly, after "Supported upgrade paths" in
    https://docs.aws.amazon.com/opensearch-service/latest/developerguide/version-migration.html:
    Elasticsearch 7.x to a later 7.x, 7.10 to OpenSearch 1.x, OpenSearch 1.x to a later 1.x, 1.3 to
    2.x, 2.x to a later 2.x. Abridged to the versions pipectl's tests use and their neighbours."""
    es7 = [f"Elasticsearch_7.{m}" for m in (1, 4, 7, 8, 9, 10)]
    os1 = [f"OpenSearch_1.{m}" for m in (0, 1, 2, 3)]
    os2 = [f"OpenSearch_2.{m}" for m in (3, 5, 7, 9, 11, 13, 15, 17, 19)]
    table: dict[str, list[str]] = {}
    for family in (es7, os1, os2):
        for i, v in enumerate(family):
            table[v] = list(family[i + 1:])
    table["Elasticsearch_7.10"] = list(os1)
    table["OpenSearch_1.3"] = list(os2)
    return table


# EBS volume size quotas per instance type, GiB (gp2 max, gp3 max), from the developer guide's
# "EBS volume size quotas" table
# (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/limits.html#ebsresource);
# the minimum is 10 GiB throughout. Abridged: a type not listed gets m5.large's row.
EBS_LIMITS = {
    "t3.small.search": (100, 100), "t3.medium.search": (200, 200), "t2.small.search": (35, None),
    "t2.medium.search": (35, None), "m5.large.search": (512, 1024), "m5.xlarge.search": (1024, 2048),
    "r6g.large.search": (1024, 1536), "m6g.large.search": (512, 1024), "m4.large.search": (512, None),
}
INSTANCE_STORE = ("i2.", "i3.", "i4g.", "i4i.", "im4gn.", "r6gd.")


def opensearch_instance_type_limits(req: Req) -> Resp:
    """DescribeInstanceTypeLimits (API_DescribeInstanceTypeLimits.html), which moto 5.2.5 does
    not route: the data-node limits of an instance type, EBS volume sizes per sub type."""
    parts = [urllib.parse.unquote(p) for p in req.path.split("/") if p]
    instance_type = parts[4] if len(parts) > 4 else ""
    if instance_type.startswith(INSTANCE_STORE):
        storage = [{"StorageTypeName": "instance", "StorageTypeLimits": []}]
    else:
        gp2, gp3 = EBS_LIMITS.get(instance_type, (512, 1024))
        storage = [{"StorageTypeName": "ebs", "StorageSubTypeName": "gp2", "StorageTypeLimits": [
            {"LimitName": "MinimumVolumeSize", "LimitValues": ["10"]},
            {"LimitName": "MaximumVolumeSize", "LimitValues": [str(gp2)]}]}]
        if gp3 is not None:
            storage.append({"StorageTypeName": "ebs", "StorageSubTypeName": "gp3", "StorageTypeLimits": [
                {"LimitName": "MinimumVolumeSize", "LimitValues": ["10"]},
                {"LimitName": "MaximumVolumeSize", "LimitValues": [str(gp3)]}]})
    limits = {"StorageTypes": storage,
              "InstanceLimits": {"InstanceCountLimits": {"MinimumInstanceCount": 1,
                                                         "MaximumInstanceCount": 80}},
              "AdditionalLimits": [{"LimitName": "MaximumNumberOfDataNodesWithoutMasterNode",
                                    "LimitValues": ["10"]}]}
    return json_ok({"LimitsByRole": {"data": limits}}, rest=True)


def _moto_domain(req: Req, name: str) -> Any:
    from moto.opensearch.models import opensearch_backends

    backend = opensearch_backends[req.account][req.region]
    return backend.domains.get(name)


def opensearch_upgrades(req: Req, action: str) -> Resp:
    table = _upgrade_table()
    if action == "GetCompatibleVersions":
        # API_GetCompatibleVersions.html: with a domain name, the upgrades of its version only.
        name = req.q("domainName")
        if name:
            domain = _moto_domain(req, name)
            if domain is None:
                return json_error("ResourceNotFoundException", f"Domain not found: {name}", 409, rest=True)
            versions = {domain.engine_version.options: table.get(domain.engine_version.options, [])}
        else:
            versions = table
        return json_ok({"CompatibleVersions": [{"SourceVersion": k, "TargetVersions": v}
                                               for k, v in versions.items() if v]}, rest=True)
    if action == "UpgradeDomain":
        body = req.json()
        name, target = body.get("DomainName", ""), body.get("TargetVersion", "")
        domain = _moto_domain(req, name)
        if domain is None:
            return json_error("ResourceNotFoundException", f"Domain not found: {name}", 409, rest=True)
        current = domain.engine_version.options
        if target not in table.get(current, []):
            # API_UpgradeDomain.html: an upgrade outside the compatible versions is refused.
            return json_error("ValidationException",
                              f"Upgrade from {current} to {target} is not supported.", 400, rest=True)
        if (req.region, name) in STATE.upgrades and STATE.upgrades[(req.region, name)]["left"] > 0:
            return json_error("ValidationException", "A change/update is in progress. Please wait "
                              "for it to complete before requesting another change.", 400, rest=True)
        # GetUpgradeStatus walks PRE_UPGRADE_CHECK -> SNAPSHOT -> UPGRADE
        # (API_GetUpgradeStatus.html, UpgradeStep); the engine changes when UPGRADE succeeds.
        STATE.upgrades[(req.region, name)] = {"target": target, "left": max(STEPS, 1) + 2,
                                              "name": f"Upgrade from {current} to {target}"}
        return json_ok({"DomainName": name, "TargetVersion": target, "PerformCheckOnly": False,
                        "UpgradeId": str(uuid.uuid4())}, rest=True)
    # GetUpgradeStatus
    parts = [p for p in req.path.split("/") if p]
    name = urllib.parse.unquote(parts[3]) if len(parts) > 3 else ""
    up = STATE.upgrades.get((req.region, name))
    if up is None:
        return json_error("ResourceNotFoundException", f"No upgrade for domain {name}", 409, rest=True)
    up["left"] -= 1
    steps = ["UPGRADE", "SNAPSHOT", "PRE_UPGRADE_CHECK"]
    if up["left"] <= 0:
        domain = _moto_domain(req, name)
        if domain is not None and domain.engine_version.options != up["target"]:
            domain.engine_version.options = up["target"]
        return json_ok({"UpgradeStep": "UPGRADE", "StepStatus": "SUCCEEDED", "UpgradeName": up["name"]},
                       rest=True)
    step = steps[min(up["left"], 3) - 1] if up["left"] <= 3 else "PRE_UPGRADE_CHECK"
    # An earlier step that SUCCEEDED is not the end of the upgrade.
    return json_ok({"UpgradeStep": step, "StepStatus": "SUCCEEDED" if step != "UPGRADE" else "IN_PROGRESS",
                    "UpgradeName": up["name"]}, rest=True)


def _epoch() -> float:
    return round(time.time(), 3)


def _current_change(key: tuple[str, str], change_id: str | None = None) -> dict | None:
    changes = STATE.domain_changes.get(key) or []
    if change_id:
        return next((c for c in changes if c["ChangeId"] == change_id), None)
    return changes[-1] if changes else None


def _domain_step(req: Req, key: tuple[str, str]) -> None:
    """One describe call has seen the domain's transition; end it after STEPS of them."""
    st = STATE.domains.get(key)
    if st is None:
        return
    st.left -= 1
    if st.left > 0:
        return
    STATE.domains.pop(key, None)
    change = st.extra.get("change")
    if change is not None:
        change["status"] = "FAILED" if change.get("fails") else "COMPLETED"
        change["updated"] = _epoch()
    if st.replay is not None:
        st.replay.forward()  # the deferred DeleteDomain


def _change_details(change: dict) -> dict:
    """ChangeProgressDetails (API_ChangeProgressDetails.html)."""
    status = {"PROCESSING": "ApplyingChanges" if not change.get("fails") else "Validating",
              "COMPLETED": "Completed", "FAILED": "ValidationFailed"}[change["status"]]
    details = {"ChangeId": change["ChangeId"], "ConfigChangeStatus": status,
               "InitiatedBy": "CUSTOMER", "StartTime": change["start"],
               "LastUpdatedTime": change["updated"]}
    if change["status"] == "FAILED":
        details["Message"] = change["message"]
    return details


def opensearch_rewrite(status: dict, key: tuple[str, str]) -> None:
    """Puts the shim's view into one DomainStatus (API_DomainStatus.html)."""
    st = STATE.domains.get(key)
    change = _current_change(key)
    if change is not None:
        status["ChangeProgressDetails"] = _change_details(change)
    if st is None:
        if change is not None:
            status["DomainProcessingStatus"] = "Active"
        return
    status["Processing"] = True
    if st.status == "creating":
        # API_DomainStatus.html: Created "True if domain creation is complete. False if domain
        # creation is still in progress."  The endpoint appears only once the domain is
        # ready: terraform-provider-aws waits for "!Processing && (Endpoint != nil ||
        # Endpoints != nil)" (internal/service/opensearch/wait.go waitForDomainCreation).
        status["Created"] = False
        for field in ("Endpoint", "Endpoints", "EndpointV2"):
            status.pop(field, None)
        status["DomainProcessingStatus"] = "Creating"
    elif st.status == "updating":
        status["DomainProcessingStatus"] = "Modifying"
    elif st.status == "deleting":
        # API_DomainStatus.html: Deleted "True if domain deletion is complete. False if domain
        # deletion is still in progress. Once deletion is complete, the status of the domain
        # is no longer returned."  AWS answers Deleted=true, Processing=true while deleting
        # (the DeleteDomain response does the same).
        status["Deleted"] = True
        status["DomainProcessingStatus"] = "Deleting"


def opensearch_describe(req: Req, key: tuple[str, str]) -> Resp:
    resp = req.forward()
    if not resp.ok:
        return resp
    data = resp.json()
    opensearch_rewrite(data.get("DomainStatus", {}), key)
    _domain_step(req, key)
    return resp.with_json(data)


def opensearch_describe_many(req: Req) -> Resp:
    resp = req.forward()
    if not resp.ok:
        return resp
    data = resp.json()
    for status in data.get("DomainStatusList", []):
        key = (req.region, status.get("DomainName", ""))
        opensearch_rewrite(status, key)
        _domain_step(req, key)
    return resp.with_json(data)


def opensearch_describe_config(req: Req, key: tuple[str, str]) -> Resp | None:
    st = STATE.domains.get(key)
    if st is not None and st.status == "deleting":
        # A deletion runs its course whichever describe call a client polls with
        # (terraform-provider-aws's waitForDomainDelete polls DescribeDomainConfig).
        resp = req.forward()
        _domain_step(req, key)
        return resp
    change = _current_change(key)
    if change is None:
        return None
    resp = req.forward()
    if resp.ok:
        data = resp.json()
        data.setdefault("DomainConfig", {})["ChangeProgressDetails"] = _change_details(change)
        return resp.with_json(data)
    return resp


def opensearch_create(req: Req, key: tuple[str, str]) -> Resp:
    name = key[1]
    if on("busy"):
        st = STATE.domains.get(key)
        reserved = STATE.domain_reserved.get(key, 0)
        if (st is not None and st.status == "deleting") or reserved > 0:
            # terraform-provider-aws retries CreateDomain on ValidationException "Domain is
            # still being deleted" (internal/service/opensearch/domain.go domainErrorRetryable).
            # The name stays taken while the domain is deleting and for STEPS more CreateDomain
            # attempts after it stopped being described; attempts made while it is still
            # deleting advance its deletion too (so a create-only retry loop also gets through).
            if st is not None and st.status == "deleting":
                _domain_step(req, key)
            else:
                STATE.domain_reserved[key] = reserved - 1
                if STATE.domain_reserved[key] <= 0:
                    STATE.domain_reserved.pop(key, None)
            return json_error("ValidationException", f"Domain is still being deleted: {name}",
                              status=400, rest=True)
    if on("async"):
        probe = req.sub("GET", f"/2021-01-01/opensearch/domain/{name}")
        if probe.ok:
            # moto overwrites an existing domain; AWS refuses.  API_CreateDomain.html lists
            # ResourceAlreadyExistsException (HTTP 409) "An exception for creating a resource
            # that already exists."  Wording UNCONFIRMED.  (terraform-provider-aws checks
            # existence itself before CreateDomain, saying "The API doesn't check for duplicate
            # names" — an old comment from the Elasticsearch days.)
            return json_error("ResourceAlreadyExistsException",
                              f"Domain {name} already exists.", status=409, rest=True)
    resp = req.forward()
    if resp.ok and async_on():
        STATE.domains[key] = Transition("creating")
        STATE.domain_changes.pop(key, None)
        data = resp.json()
        opensearch_rewrite(data.get("DomainStatus", {}), key)
        return resp.with_json(data)
    return resp


def opensearch_delete(req: Req, key: tuple[str, str]) -> Resp:
    st = STATE.domains.get(key)
    if st is not None and st.status == "deleting":
        probe = req.sub("GET", f"/2021-01-01/opensearch/domain/{key[1]}")
        data = probe.json() if probe.ok else {"DomainStatus": {}}
        opensearch_rewrite(data.get("DomainStatus", {}), key)
        return json_ok(data, rest=True)
    if not async_on():
        STATE.domain_changes.pop(key, None)
        STATE.domains.pop(key, None)
        return req.forward()
    probe = req.sub("GET", f"/2021-01-01/opensearch/domain/{key[1]}")
    if not probe.ok:
        return probe  # ResourceNotFoundException (409)
    # API_DeleteDomain.html: the response's DomainStatus shows the domain being deleted; the
    # domain stays describable (Deleted=true, Processing=true) until deletion completes.
    # The delete is deferred: moto deletes the domain after STEPS describes.
    STATE.domains[key] = Transition("deleting", replay=req)
    STATE.domain_changes.pop(key, None)
    if on("busy"):
        STATE.domain_reserved[key] = STEPS
    data = probe.json()
    opensearch_rewrite(data.get("DomainStatus", {}), key)
    return json_ok(data, rest=True)


# -- UpdateDomainConfig -------------------------------------------------------------------------

# Which sections of UpdateDomainConfig force a blue/green deployment, following "Making
# configuration changes in Amazon OpenSearch Service"
# (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/managedomains-configuration-changes.html):
# "Changes that usually cause blue/green deployments": changing instance type; enabling
# fine-grained access control; if the domain has no dedicated master nodes, changing data
# instance count; enabling or disabling dedicated master nodes; enabling or disabling
# Multi-AZ; changing storage type, volume type or volume size (decreasing it; increasing it is
# no longer one on current engines, see below); choosing different VPC subnets or security
# groups; Cognito authentication; modifying advanced settings; enabling encryption of data at
# rest or node-to-node encryption; UltraWarm/cold storage.
# "Changes that usually don't cause blue/green deployments": modifying the access policy;
# modifying the custom endpoint; changing the TLS policy; changing the automated snapshot
# hour; enabling or disabling Require HTTPS; enabling Auto-Tune; with dedicated master nodes,
# changing data node count; enabling or disabling log publishing; "when you increase the
# volume size up to 3 TiB per data node and the volume type, IOPS, or throughput changes"
# (https://repost.aws/knowledge-center/opensearch-more-nodes) — gp3 size increases are
# dynamic.  Kept simple: a section-by-section comparison with the current DomainStatus.
BLUE_GREEN_SECTIONS = {"AdvancedOptions", "CognitoOptions", "VPCOptions", "EncryptionAtRestOptions",
                       "NodeToNodeEncryptionOptions", "AdvancedSecurityOptions", "EngineVersion",
                       "IPAddressType"}
DYNAMIC_SECTIONS = {"AccessPolicies", "DomainEndpointOptions", "SnapshotOptions",
                    "LogPublishingOptions", "AutoTuneOptions", "OffPeakWindowOptions",
                    "SoftwareUpdateOptions"}
CLUSTER_BLUE_GREEN = {"InstanceType", "DedicatedMasterEnabled", "ZoneAwarenessEnabled",
                      "WarmEnabled", "ColdStorageOptions", "MultiAZWithStandbyEnabled"}


def _policy(value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) and value else value
    except ValueError:
        return value


def _changed(old: Any, new: Any) -> bool:
    """True if any field given in `new` differs from `old` (absent fields are unchanged)."""
    if isinstance(new, dict):
        old = old if isinstance(old, dict) else {}
        return any(_changed(old.get(k), v) for k, v in new.items())
    return old != new


def classify_update(request: dict, current: dict) -> tuple[str, list[str]]:
    """Returns (DeploymentType, changed properties) of an UpdateDomainConfig request."""
    changed: list[str] = []
    blue_green = False
    for section, wanted in request.items():
        if section in ("DomainName", "DryRun", "DryRunMode", "AcceptedWarnings"):
            continue
        have = current.get(section)
        if section == "AccessPolicies":
            if _policy(wanted) != _policy(have):
                changed.append(section)
            continue
        if not _changed(have, wanted):
            continue
        changed.append(section)
        if section in BLUE_GREEN_SECTIONS:
            blue_green = True
        elif section == "ClusterConfig":
            have = have or {}
            for field, value in wanted.items():
                if have.get(field) == value:
                    continue
                if field in CLUSTER_BLUE_GREEN or field.startswith("DedicatedMaster"):
                    blue_green = True
                elif field == "InstanceCount" and not have.get("DedicatedMasterEnabled"):
                    blue_green = True  # "If your domain doesn't have dedicated master nodes"
        elif section == "EBSOptions":
            have = have or {}
            if wanted.get("VolumeType", have.get("VolumeType")) != have.get("VolumeType"):
                blue_green = True
            new_size = wanted.get("VolumeSize", have.get("VolumeSize")) or 0
            old_size = have.get("VolumeSize") or 0
            if new_size < old_size:
                blue_green = True  # "Decreasing the EBS volume size"
            elif new_size > old_size and wanted.get("VolumeType", have.get("VolumeType")) != "gp3":
                blue_green = True  # only gp3 size increases are applied in place
    if not changed:
        return "None", changed
    return ("Blue/Green" if blue_green else "DynamicUpdate"), changed


DRY_RUN_MESSAGES = {  # UNCONFIRMED wording; the DeploymentType values are API_DryRunResults.html's
    "Blue/Green": "This change will require a blue/green deployment.",
    "DynamicUpdate": "This change will be applied dynamically without a blue/green deployment.",
    "None": "This request doesn't include any configuration changes.",
    "Undetermined": "The domain is in the middle of an update; try again once it is complete.",
}


def opensearch_update(req: Req, key: tuple[str, str]) -> Resp | None:
    if not (on("async") or on("busy") or on("failures")):
        return None  # plain moto
    name = key[1]
    body = req.json()
    probe = req.sub("GET", f"/2021-01-01/opensearch/domain/{name}")
    if not probe.ok:
        return probe  # ResourceNotFoundException (moto itself would crash with a 500)
    current = probe.json().get("DomainStatus", {})
    st = STATE.domains.get(key)
    dry_run = bool(body.get("DryRun"))
    if dry_run and (on("async") or on("busy")):
        return opensearch_dry_run(req, key, body, current, busy=st is not None)
    if on("busy") and st is not None:
        # terraform-provider-aws retries UpdateDomainConfig on ValidationException "A
        # change/update is in progress. Please wait for it to complete before requesting
        # another change." (internal/service/opensearch/domain.go domainErrorRetryable).
        return json_error("ValidationException", CHANGE_IN_PROGRESS, status=400, rest=True)
    deployment, properties = classify_update(body, current)
    change = {"ChangeId": str(uuid.uuid4()), "start": _epoch(), "updated": _epoch(),
              "status": "PROCESSING", "deployment": deployment, "properties": properties,
              "message": ""}
    failing = take_one_shot("domain_change_fails", name)
    if failing is not None:
        # `domain_change_fails`: accepted (200 with a ChangeId) but not applied; the change
        # then fails validation (API_ChangeProgressDetails.html ConfigChangeStatus
        # ValidationFailed; API_ChangeProgressStatusDetails.html Status FAILED).
        change["fails"] = True
        change["message"] = failing.get("message", "Validation failed for the requested change.")
        config = req.sub("GET", f"/2021-01-01/opensearch/domain/{name}/config")
        data = config.json() if config.ok else {"DomainConfig": {}}
        resp = json_ok(data, rest=True)
    else:
        resp = req.forward()
        if not resp.ok:
            return resp
        data = resp.json()
    STATE.domain_changes.setdefault(key, []).append(change)
    if async_on():
        # API_UpdateDomainConfig.html / managedomains-configuration-changes.html: the domain
        # is Processing while the change is applied; DescribeDomainChangeProgress follows it.
        STATE.domains[key] = Transition("updating", change=change)
    else:
        change["status"] = "FAILED" if change.get("fails") else "COMPLETED"
    details = _change_details(change)
    details["Message"] = change["message"] or DRY_RUN_MESSAGES.get(deployment, "")
    data.setdefault("DomainConfig", {})["ChangeProgressDetails"] = details
    return resp.with_json(data)


def opensearch_dry_run(req: Req, key: tuple[str, str], body: dict, current: dict,
                       busy: bool) -> Resp:
    """UpdateDomainConfig with DryRun=true: nothing is applied; the answer carries
    DryRunResults {DeploymentType, Message} and DryRunProgressStatus
    (API_UpdateDomainConfig.html; "Determining whether a change will cause a blue/green
    deployment" in managedomains-configuration-changes.html).  DryRunMode Basic and Verbose
    give the same answer here (Verbose's extra validation finds nothing on an emulator)."""
    if busy:
        # API_DryRunResults.html: "Undetermined - The domain is in the middle of an update and
        # can't predict the deployment type."
        deployment = "Undetermined"
    else:
        deployment, _ = classify_update(body, current)
    config = req.sub("GET", f"/2021-01-01/opensearch/domain/{key[1]}/config")
    data = config.json() if config.ok else {"DomainConfig": {}}
    stamp = now_iso()
    data["DryRunResults"] = {"DeploymentType": deployment,
                             "Message": DRY_RUN_MESSAGES[deployment]}
    data["DryRunProgressStatus"] = {"DryRunId": str(uuid.uuid4()), "DryRunStatus": "succeeded",
                                    "CreationDate": stamp, "UpdateDate": stamp,
                                    "ValidationFailures": []}
    return json_ok(data, rest=True)


def opensearch_progress(req: Req, key: tuple[str, str]) -> Resp:
    """DescribeDomainChangeProgress (API_DescribeDomainChangeProgress.html), which moto does
    not route.  Polling it also advances the change's transition (like DescribeDomain), so a
    tool that only polls progress sees it complete."""
    probe = req.sub("GET", f"/2021-01-01/opensearch/domain/{key[1]}")
    if not probe.ok:
        return probe
    change = _current_change(key, req.q("changeid"))
    if change is None:
        if req.q("changeid"):
            return json_error("ResourceNotFoundException",
                              f"Change {req.q('changeid')} not found for domain {key[1]}.",
                              status=409, rest=True)
        return json_ok({"ChangeProgressStatus": {}}, rest=True)
    answer = json_ok({"ChangeProgressStatus": _progress_status(change)}, rest=True)
    st = STATE.domains.get(key)
    if st is not None and st.extra.get("change") is change:
        _domain_step(req, key)
    return answer


def _progress_status(change: dict) -> dict:
    """ChangeProgressStatusDetails (API_ChangeProgressStatusDetails.html): Status PENDING |
    PROCESSING | COMPLETED | FAILED; stages named after the developer guide's "Stages of a
    configuration change" (stage names UNCONFIRMED)."""
    if change["deployment"] == "Blue/Green":
        names = ["Validation", "Creating a new environment", "Copying shards to new nodes",
                 "Deleting older resources"]
    else:
        names = ["Validation", "Applying dynamic update"]
    status = change["status"]
    stages = []
    for i, stage in enumerate(names):
        if status == "COMPLETED":
            s = "COMPLETED"
        elif status == "FAILED":
            s = "FAILED" if i == 0 else "PENDING"
        else:
            s = "COMPLETED" if i == 0 else ("IN_PROGRESS" if i == 1 else "PENDING")
        entry = {"Name": stage, "Status": s, "Description": f"{stage}.",
                 "LastUpdated": change["updated"]}
        if s == "FAILED":
            entry["Description"] = change["message"]
        stages.append(entry)
    done = status == "COMPLETED"
    return {"ChangeId": change["ChangeId"], "StartTime": change["start"], "Status": status,
            "PendingProperties": [] if done else list(change["properties"]),
            "CompletedProperties": list(change["properties"]) if done else [],
            "TotalNumberOfStages": len(names), "ChangeProgressStages": stages,
            "LastUpdatedTime": change["updated"],
            "ConfigChangeStatus": _change_details(change)["ConfigChangeStatus"],
            "InitiatedBy": "CUSTOMER"}


# ============================================================================================
# S3
# ============================================================================================

FOREIGN_REGIONS = {"redirect": "us-west-2", "optin": "ap-east-1", "denied": "eu-west-1"}
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def s3_handle(req: Req) -> Resp | None:
    action = req.action
    bucket, _ = s3_bucket_key(req.path)
    with STATE.lock:
        if action == "ListBuckets":
            return s3_list_buckets(req)
        foreign = _foreign_bucket(bucket)
        if foreign is not None:
            return s3_foreign(req, bucket, foreign)
        if action == "GetBucketTagging" and tags_denied(f"arn:aws:s3:::{bucket}", bucket):
            return s3_error("AccessDenied", "Access Denied", 403)
        if action == "DeleteObjects":
            failing = take_one_shot("delete_objects_errors", bucket)
            if failing is not None:
                return s3_delete_objects_errors(req, failing)
    return None


def _foreign_bucket(bucket: str) -> dict | None:
    if not bucket or not STATE.fault_active("foreign_buckets"):
        return None
    return next((b for b in STATE.faults.get("foreign_buckets", []) if b.get("name") == bucket), None)


def s3_foreign(req: Req, bucket: str, foreign: dict) -> Resp:
    """`foreign`: a bucket that is someone else's, or in another region.
    - redirect: the bucket is in us-west-2: 301 PermanentRedirect with Endpoint and Bucket
      (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html "PermanentRedirect
      ... The bucket you are attempting to access must be addressed using the specified
      endpoint."); HeadBucket answers a bare 301 with x-amz-bucket-region
      (API_HeadBucket.html: "x-amz-bucket-region: The Region that the bucket is located").
    - optin: the bucket is in an opt-in region (ap-east-1) this account has not enabled:
      400 IllegalLocationConstraintException (ErrorResponses.html; "The ap-east-1 location
      constraint is incompatible for the region specific endpoint this request was sent to.").
    - denied: ours to list, but the policy denies us: 403 AccessDenied ("Access Denied");
      HeadBucket: bare 403 (API_HeadBucket.html: "If the bucket exists but you don't have
      permission to access it, you get a 403 Forbidden error with no body").
    - taken: the name belongs to another account (not listed): HeadBucket bare 403,
      CreateBucket 409 BucketAlreadyExists (API_CreateBucket.html / ErrorResponses.html:
      "The requested bucket name is not available. The bucket namespace is shared by all
      users of the system. Please select a different name and try again.")."""
    kind = foreign.get("kind", "denied")
    head = req.method == "HEAD"
    region = FOREIGN_REGIONS.get(kind)
    region_header = [("x-amz-bucket-region", region)] if region else []
    if kind == "redirect":
        return s3_error("PermanentRedirect",
                        "The bucket you are attempting to access must be addressed using the "
                        "specified endpoint. Please send all future requests to this endpoint.",
                        301, {"Endpoint": f"{bucket}.s3.{region}.amazonaws.com", "Bucket": bucket},
                        headers=region_header, bare=head)
    if kind == "optin":
        return s3_error("IllegalLocationConstraintException",
                        f"The {region} location constraint is incompatible for the region "
                        "specific endpoint this request was sent to.", 400,
                        headers=region_header, bare=head)
    if kind == "taken":
        if req.action == "CreateBucket":
            return s3_error("BucketAlreadyExists",
                            "The requested bucket name is not available. The bucket namespace "
                            "is shared by all users of the system. Please select a different "
                            "name and try again.", 409, {"BucketName": bucket})
        return s3_error("AccessDenied", "Access Denied", 403, bare=head)
    return s3_error("AccessDenied", "Access Denied", 403, headers=region_header, bare=head)


def s3_list_buckets(req: Req) -> Resp:
    """ListBuckets with AWS's pagination and BucketRegion (API_ListBuckets.html: max-buckets,
    continuation-token, prefix, bucket-region; each Bucket has Name, CreationDate,
    BucketRegion; a ContinuationToken when more remain).  moto 5.2.5 truncates at max-buckets
    without a token and gives no BucketRegion (always on).  Foreign buckets are added."""
    plain = req.sub("GET", "/")
    if not plain.ok:
        return plain
    ns = {"s3": S3_NS}
    root = ET.fromstring(plain.body)
    owner_id = root.findtext("s3:Owner/s3:ID", "", ns) or root.findtext("Owner/ID", "")
    owner_name = root.findtext("s3:Owner/s3:DisplayName", "", ns) or root.findtext("Owner/DisplayName", "")
    buckets = []
    regions = _bucket_regions(req.account)
    for b in root.iter():
        if b.tag.split("}")[-1] != "Bucket":
            continue
        name = b.findtext("s3:Name", None, ns) or b.findtext("Name", "")
        created = b.findtext("s3:CreationDate", None, ns) or b.findtext("CreationDate", "")
        buckets.append((name, created, regions.get(name, req.region)))
    if STATE.fault_active("foreign_buckets"):
        for f in STATE.faults.get("foreign_buckets", []):
            if f.get("kind") != "taken" and f.get("name") not in {b[0] for b in buckets}:
                buckets.append((f["name"], "2020-01-01T00:00:00.000Z",
                                FOREIGN_REGIONS.get(f.get("kind", "denied"), "eu-west-1")))
    buckets.sort()
    prefix = req.q("prefix")
    if prefix:
        buckets = [b for b in buckets if b[0].startswith(prefix)]
    region_filter = req.q("bucket-region")
    if region_filter:
        buckets = [b for b in buckets if b[2] == region_filter]
    token = req.q("continuation-token")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            return s3_error("InvalidArgument", "The continuation token provided is incorrect", 400)
        buckets = [b for b in buckets if b[0] > after]
    max_buckets = req.q("max-buckets")
    next_token = None
    if max_buckets:
        limit = int(max_buckets)
        if not 1 <= limit <= 10000:
            return s3_error("InvalidArgument", "Argument max-buckets must be an integer "
                            "between 1 and 10000.", 400)
        if len(buckets) > limit:
            buckets = buckets[:limit]
            next_token = base64.urlsafe_b64encode(buckets[-1][0].encode()).decode()
    parts = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListAllMyBucketsResult xmlns="{S3_NS}">',
             "<Buckets>"]
    for name, created, region in buckets:
        parts.append(f"<Bucket><Name>{xml_escape(name)}</Name><CreationDate>{created}"
                     f"</CreationDate><BucketRegion>{region}</BucketRegion></Bucket>")
    parts.append(f"</Buckets><Owner><ID>{owner_id}</ID><DisplayName>{xml_escape(owner_name)}"
                 "</DisplayName></Owner>")
    if next_token:
        parts.append(f"<ContinuationToken>{next_token}</ContinuationToken>")
    if prefix:
        parts.append(f"<Prefix>{xml_escape(prefix)}</Prefix>")
    parts.append("</ListAllMyBucketsResult>")
    return plain.with_body("".join(parts).encode(), "application/xml")


def _bucket_regions(account: str) -> dict[str, str]:
    try:
        from moto.s3.models import s3_backends

        backend = s3_backends[account]["aws"]
        return {name: b.region_name for name, b in list(backend.buckets.items())}
    except Exception:  # noqa: BLE001 - best effort; the request region is the fallback
        return {}


def s3_delete_objects_errors(req: Req, failing: dict) -> Resp:
    """`delete_objects_errors`: API_DeleteObjects.html — the answer is 200 and each key that
    could not be deleted comes back as <Error><Key/><Code/><Message/></Error>; nothing is
    deleted."""
    try:
        root = ET.fromstring(req.body or b"<Delete/>")
    except ET.ParseError:
        root = ET.fromstring(b"<Delete/>")
    code = failing.get("code", "AccessDenied")
    message = failing.get("message", "Access Denied")
    errors = []
    for obj in root.iter():
        if obj.tag.split("}")[-1] != "Object":
            continue
        key = next((c.text or "" for c in obj if c.tag.split("}")[-1] == "Key"), "")
        version = next((c.text or "" for c in obj if c.tag.split("}")[-1] == "VersionId"), "")
        v = f"<VersionId>{xml_escape(version)}</VersionId>" if version else ""
        errors.append(f"<Error><Key>{xml_escape(key)}</Key>{v}<Code>{xml_escape(code)}</Code>"
                      f"<Message>{xml_escape(message)}</Message></Error>")
    raw = (f'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="{S3_NS}">'
           + "".join(errors) + "</DeleteResult>").encode()
    return Resp(200, [("Content-Type", "application/xml"), ("Content-Length", str(len(raw))),
                      ("x-amz-request-id", uuid.uuid4().hex[:16].upper())], raw)


# ============================================================================================
# CloudWatch: Smithy RPC v2 CBOR bridge (always on: a gap fix, not an AWS-like behaviour)
# ============================================================================================
# The current aws-sdk-cloudwatch speaks Smithy RPC v2 CBOR: `POST /service/<service shape>/
# operation/<Operation>` with a CBOR body and `smithy-protocol: rpc-v2-cbor`
# (https://smithy.io/2.0/additional-specs/protocols/smithy-rpc-v2.html).  CloudWatch's service
# model lists the protocols ["smithy-rpc-v2-cbor", "json", "query"] (botocore's
# cloudwatch/2010-08-01/service-2.json, metadata.protocols), but moto 5.2.5 routes only "/" for
# CloudWatch (awsQuery and JSON 1.0) and answers the CBOR path with 404.  The bridge decodes
# the CBOR request, replays it on moto as JSON 1.0 (`X-Amz-Target:
# GraniteServiceVersion20100801.<Operation>`), and encodes moto's JSON answer back to CBOR,
# walking botocore's output shape so that timestamps become CBOR tag 1 (epoch seconds) and
# doubles CBOR floats, as the RPC v2 CBOR spec's shape-serialisation table requires (the Rust
# decoder, aws-smithy-cbor's `Decoder::timestamp`/`double`, refuses an untagged timestamp and
# an integer where a double is expected).  Errors keep moto's status and become the CBOR
# envelope {"__type", "message"}; moto's `x-amzn-query-error` header (CloudWatch is
# awsQueryCompatible) is passed on.

CLOUDWATCH_SERVICE_SHAPE = "GraniteServiceVersion20100801"
_CLOUDWATCH_MODEL: Any = None


def _cloudwatch_model() -> Any:
    global _CLOUDWATCH_MODEL
    if _CLOUDWATCH_MODEL is None:
        import botocore.session

        _CLOUDWATCH_MODEL = botocore.session.get_session().get_service_model("cloudwatch")
    return _CLOUDWATCH_MODEL


def _cbor_in_to_json(value: Any) -> Any:
    """A decoded CBOR request value -> its JSON 1.0 form: timestamps (cbor2 decodes tag 1 to an
    aware datetime) as epoch seconds, blobs as base64 (the awsJson1_0 serialisation rules)."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _cbor_in_to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cbor_in_to_json(v) for v in value]
    return value


def _json_out_to_cbor(value: Any, shape: Any) -> Any:
    """moto's JSON answer -> the value the CBOR encoder writes, typed by the output shape."""
    import cbor2

    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {k: _json_out_to_cbor(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_json_out_to_cbor(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _json_out_to_cbor(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return cbor2.CBORTag(1, float(value))
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long") and not isinstance(value, bool):
        return int(value)
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def _cbor_error(code: str, message: str, status: int) -> Resp:
    import cbor2

    body = cbor2.dumps({"__type": code, "message": message})
    return Resp(status, [("smithy-protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor"),
                         ("Content-Length", str(len(body)))], body)


def cloudwatch_handle(req: Req) -> Resp | None:
    import cbor2

    try:
        payload = cbor2.loads(req.body) if req.body else {}
    except Exception as exc:  # noqa: BLE001 - an undecodable body is the caller's error
        return _cbor_error("SerializationException", f"undecodable CBOR body: {exc}", 400)
    body = json.dumps(_cbor_in_to_json(payload or {})).encode()
    resp = req.sub("POST", "/", body=body, target=f"{CLOUDWATCH_SERVICE_SHAPE}.{req.action}",
                   extra={"CONTENT_TYPE": "application/x-amz-json-1.0"})
    try:
        answer = json.loads(resp.body or b"{}")
    except ValueError:
        answer = {}
    query_error = resp.header("x-amzn-query-error")
    if not resp.ok:
        code = str(answer.get("__type", "") or f"HTTP{resp.status}").split("#")[-1]
        message = answer.get("message") or answer.get("Message") or ""
        err = _cbor_error(code, message, resp.status)
        if query_error:
            err.headers.append(("x-amzn-query-error", query_error))
        return err
    try:
        shape = _cloudwatch_model().operation_model(req.action).output_shape
    except Exception:  # noqa: BLE001 - an operation botocore does not know stays untyped
        shape = None
    out = cbor2.dumps(_json_out_to_cbor(answer, shape) if shape is not None else answer)
    return Resp(resp.status, [("smithy-protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor"),
                              ("Content-Length", str(len(out)))], out)


# ============================================================================================
# Always-on gap fixes (model-level)
# ============================================================================================

def install_gap_fixes() -> None:
    _kinesis_create_stream_tags()
    _s3_create_bucket_tags()
    _tagging_api_covers_streams_and_domains()


def _s3_create_bucket_tags() -> None:
    """Gap fix: CreateBucket honours `CreateBucketConfiguration.Tags` for general purpose
    buckets (API_CreateBucketConfiguration.html, Tags: "An array of tags that you can apply to
    the bucket that you're creating"; needs s3:TagResource); moto 5.2.5 ignores them."""
    import xml.etree.ElementTree as ET

    from moto.s3 import responses as sr

    original = sr.S3Response._bucket_response_put

    def bucket_response_put(self: Any, request: Any, bucket_name: str, querystring: Any) -> Any:
        result = original(self, request, bucket_name, querystring)
        if querystring or not self.body:
            return result
        try:
            root = ET.fromstring(self.body)
        except ET.ParseError:
            return result
        tags = {}
        for tag in root.iter():
            if tag.tag.rsplit("}", 1)[-1] != "Tag":
                continue
            fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in tag}
            if "Key" in fields:
                tags[fields["Key"]] = fields.get("Value", "")
        if tags:
            self.backend.put_bucket_tagging(bucket_name, tags)
        return result

    sr.S3Response._bucket_response_put = bucket_response_put


def _kinesis_create_stream_tags() -> None:
    """Gap fix 1: CreateStream honours `Tags` (API_CreateStream.html, Tags: "A set of up to 50
    key-value pairs to use to create the tags."); moto 5.2.5 ignores the parameter."""
    from moto.kinesis import responses as kr

    original = kr.KinesisResponse.create_stream

    def create_stream(self: Any) -> Any:
        result = original(self)
        tags = self._get_param("Tags")
        if tags:
            self.kinesis_backend.add_tags_to_stream(None, self._get_param("StreamName"), tags)
        return result

    kr.KinesisResponse.create_stream = create_stream


class _KinesisTaggable:
    """Kinesis streams for the Resource Groups Tagging API (resource type kinesis:stream)."""

    def __init__(self, backend: Any):
        self.backend = backend

    def iter_tagged_resources(self) -> Any:
        from moto.core.resource_tagging import TaggedResource

        for stream in list(self.backend.streams.values()):
            yield TaggedResource(arn=stream.arn, tags=dict(stream.tags),
                                 resource_type="kinesis:stream")

    def owns_arn(self, arn: str) -> bool:
        return ":kinesis:" in arn and ":stream/" in arn

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self.backend.add_tags_to_stream(arn, None, tags)

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self.backend.remove_tags_from_stream(arn, None, keys)


class _DomainTaggable:
    """OpenSearch/Elasticsearch domains for the Tagging API (resource type es:domain)."""

    def __init__(self, backend: Any):
        self.backend = backend

    def iter_tagged_resources(self) -> Any:
        from moto.core.resource_tagging import TaggedResource

        for domain in list(self.backend.domains.values()):
            tags = {t["Key"]: t["Value"] for t in self.backend.list_tags(domain.arn)}
            yield TaggedResource(arn=domain.arn, tags=tags, resource_type="es:domain")

    def owns_arn(self, arn: str) -> bool:
        return ":es:" in arn and ":domain/" in arn

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self.backend.add_tags(arn, [{"Key": k, "Value": v} for k, v in tags.items()])

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self.backend.remove_tags(arn, keys)


class _RegionalS3:
    """S3 buckets of the asked region only: GetResources "Returns all the tagged or previously
    tagged resources that are located in the specified Region for the account"
    (https://docs.aws.amazon.com/resourcegroupstagging/latest/APIReference/API_GetResources.html);
    moto lists every bucket in every region."""

    def __init__(self, backend: Any, region: str):
        self.backend, self.region = backend, region

    def iter_tagged_resources(self) -> Any:
        for res in self.backend.iter_tagged_resources():
            bucket = self.backend.buckets.get(res.arn.rsplit(":", 1)[-1])
            if bucket is None or bucket.region_name == self.region:
                yield res

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


def _tagging_api_covers_streams_and_domains() -> None:
    """Gap fix 2: GetResources also returns Kinesis streams (arn:aws:kinesis:R:A:stream/N,
    kinesis:stream) and OpenSearch/ES domains (arn:aws:es:R:A:domain/N, es:domain) with their
    tags; moto's own filters then apply (TagFilters: AND across filters, any of the values;
    ResourceTypeFilters "kinesis", "kinesis:stream", "es", "es:domain", ...; pagination with
    PaginationToken/ResourcesPerPage), so they behave exactly like the Lambda, Firehose and
    S3 resources moto already reports.  IAM roles stay out: "The GetResources operation does
    not currently support IAM users and roles" (API_GetResources.html)."""
    from moto.resourcegroupstaggingapi import models as rgt

    original = rgt.iter_taggable_backends

    def iter_taggable_backends(account_id: str, region_name: str) -> Any:
        from moto.s3.models import S3Backend

        for backend in original(account_id, region_name):
            if isinstance(backend, S3Backend):
                yield _RegionalS3(backend, region_name)
            else:
                yield backend
        from moto.kinesis.models import kinesis_backends
        from moto.opensearch.models import opensearch_backends

        for backends, wrapper in ((kinesis_backends, _KinesisTaggable),
                                  (opensearch_backends, _DomainTaggable)):
            if account_id in backends and region_name in backends[account_id]:
                yield wrapper(backends[account_id][region_name])

    rgt.iter_taggable_backends = iter_taggable_backends


# ============================================================================================
# Control endpoint and the middleware
# ============================================================================================

LIST_FAULTS = {"foreign_buckets", "denied_tags", "firehose_create_failed",
               "firehose_delete_failed", "delete_objects_errors", "domain_change_fails",
               "lambda_failed", "stream_stuck"}


def control(environ: dict) -> Resp:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "")
    with STATE.lock:
        if path == "/_pipectl/calls" and method == "GET":
            return json_ok(dict(sorted(STATE.calls.items())), rest=True)
        if path == "/_pipectl/reset" and method == "POST":
            STATE.faults.clear()
            STATE.calls.clear()
            search_standin.reset()  # its faults, client-ip override and log (scripts/search_standin.py)
            return json_ok({"reset": True}, rest=True)
        if path == "/_pipectl/faults" and method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                raw = environ["wsgi.input"].read(length) if length else b"{}"
                armed = json.loads(raw or b"{}")
            except (ValueError, KeyError):
                return json_error("ValidationException", "body must be JSON", rest=True)
            search = armed.pop("search", None) if isinstance(armed, dict) else None
            if search is not None:  # the domain endpoint stand-in's faults (always active)
                problem = search_standin.arm(search)
                if problem:
                    return json_error("ValidationException", problem, rest=True)
            unknown = set(armed) - LIST_FAULTS
            if unknown:
                return json_error("ValidationException", f"unknown fault(s): {sorted(unknown)}",
                                  rest=True)
            for key, value in armed.items():
                entries = value if isinstance(value, list) else [value]
                if key == "denied_tags":
                    STATE.faults.setdefault(key, []).extend(entries)
                    continue
                store = STATE.faults.setdefault(key, [])
                for entry in entries:
                    ident = entry.get("name", entry.get("bucket"))
                    store[:] = [e for e in store if e.get("name", e.get("bucket")) != ident]
                    store.append(entry)
            inactive = sorted(k for k in STATE.faults if not on(FAULT_FEATURE[k]))
            return json_ok({"armed": STATE.faults, "inactive": inactive,
                            "behaviours": sorted(ENABLED), "steps": STEPS,
                            "search": search_standin.faults_view()}, rest=True)
    return json_error("UnknownOperationException", f"no such control path {method} {path}",
                      status=404, rest=True)


def count_call(req: Req) -> None:
    if req.service and req.action:
        with STATE.lock:
            STATE.calls[f"{req.service}:{req.action}"] += 1


HANDLERS: dict[str, Callable[[Req], Resp | None]] = {
    "kinesis": kinesis_handle,
    "firehose": firehose_handle,
    "lambda": lambda_handle,
    "opensearch": opensearch_handle,
    "es": opensearch_handle,
    "s3": s3_handle,
    "iam": iam_handle,
    "cloudwatch": cloudwatch_handle,
}


class AwsLike:
    """WSGI middleware in front of moto's DomainDispatcherApplication."""

    def __init__(self, app: App):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_pipectl/"):
            if search_standin.owns(path):  # an OpenSearch domain's REST endpoint, emulated
                return self._send(search_standin.handle(environ), start_response)
            return self._send(control(environ), start_response)
        req = Req(self.app, environ)
        if req.service != "iam":
            count_call(req)
        handler = HANDLERS.get(req.service)
        resp = handler(req) if handler is not None else None
        if resp is None:
            return self.app(req.environ, start_response)
        if req.body is None:
            self._drain(environ)  # answered without moto: consume the unread request body
        return self._send(resp, start_response)

    @staticmethod
    def _drain(environ: dict) -> None:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = environ.get("wsgi.input")
        while stream is not None and length > 0:
            chunk = stream.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    @staticmethod
    def _send(resp: Resp, start_response: Callable) -> list[bytes]:
        import http

        try:
            reason = http.HTTPStatus(resp.status).phrase
        except ValueError:
            reason = "Unknown"
        start_response(f"{resp.status} {reason}", resp.headers)
        return [resp.body]


def install() -> None:
    """Applies the gap fixes and wraps the app moto's main() serves."""
    install_gap_fixes()
    import moto.server as server

    run_simple = server.run_simple

    def run_simple_wrapped(host: str, port: int, app: App, *args: Any, **kwargs: Any) -> Any:
        return run_simple(host, port, AwsLike(app), *args, **kwargs)

    server.run_simple = run_simple_wrapped
