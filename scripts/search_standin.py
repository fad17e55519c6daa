"""A local stand-in for an OpenSearch Service domain's REST endpoint (the data plane moto lacks).

Mounted into the emulator's WSGI app by scripts/aws_like.py (always on, whatever PIPECTL_AWS_LIKE
says).  moto 5.2.5 models OpenSearch domains (the control plane) but nothing answers on their
endpoints; pipectl talks to a domain's endpoint to put the index template and the Dashboards
index pattern, so this module answers those calls for every domain in moto's opensearch backend.

URL paths (everything is under the control prefix, which can never be an AWS path):
  /_pipectl/search/<domain path>                   the only domain in moto (any region)
  /_pipectl/search/domain/<domain-name>/<path>      a named domain
      no domain -> 503 {"message": "stand-in: no domain"}; several and no name -> 400;
      a domain still being created (no endpoint yet) or being deleted -> 503.
  GET /_pipectl/search-log     unsigned, test-only: JSON list of
      {method, domain, path, query, status, signed, signature_ok, principal, client_ip}
  GET /_pipectl/search-state   unsigned, test-only: JSON {domain_name: {"templates": {name: as GET
      returns it}, "indices": {name: {"mappings": as GET _mapping returns them, "docs": n}},
      "saved_objects": {"type/id": object as GET returns it}}}

Every domain request is authenticated like AWS does (SigV4, verified with botocore's signer
restricted to exactly the SignedHeaders the request lists) and authorised by the domain's
AccessPolicies (a resource-based domain access policy), then served by a small emulation of the
OpenSearch 2.x / Elasticsearch 7.x REST API: composable index templates, indices with mappings
and documents (index, _doc, _bulk, _mapping, _count) and the Dashboards/Kibana saved-objects API.

State is kept per domain INSTANCE (moto's domain object): a domain deleted and created again
with the same name starts empty.  `POST /_pipectl/reset` clears the stand-in's faults and log,
not the stored data.

Switches:
  PIPECTL_SEARCH_CREDENTIALS  comma-separated keyid:secret pairs (default "testing:testing") whose
                              caller is arn:aws:iam::<account>:user/moto; access keys created in
                              moto's IAM (users' keys, and AssumeRole sessions with their token)
                              are known too, as their user / assumed-role session.
  PIPECTL_SEARCH_CLIENT_IP    the client address policies see (default: the TCP peer);
                              overridable at run time with the faults endpoint.
  MOTO_ACCOUNT_ID             the account of the env credentials (default 123456789012).
Faults (POST /_pipectl/faults, key "search"; always active):
  {"search": {"status": 429|5xx, "times": N}}  the next N authorised domain requests answer that
                                               status with the engine's body, without applying
  {"search": {"lost_reply": N}}                the next N authorised mutating requests are applied,
                                               then answered 504 (the reply was lost)
  {"search": {"client_ip": "198.51.100.7"}}    the client address policies see from now on
                                               (null goes back to the default)
  "path": "text" beside status or lost_reply     only requests whose domain path contains the
                                               text count (e.g. "saved_objects")
  {"search": {"stale_policy": N}}              after the domain's access policy changed, the next
                                               N requests are still judged by the previous policy
  Faults take effect after authentication and the access policy (a refused request consumes
  none); the "armed" answer of /_pipectl/faults shows them under "search".

What a template looks like once stored (GET /_index_template/<name>): settings flattened to
"index."-prefixed keys with string values and rendered nested ({"index": {"number_of_shards":
"1"}}); mappings exactly as PUT (a "dynamic": false stays a boolean; an empty mappings object is
dropped); "composed_of": [] added when the PUT had a "template" section; priority, version,
_meta only when given.  An index created from it renders its mapping differently (GET
<index>/_mapping): "dynamic" as a string ("false", "strict"), properties sorted by name.

Every emulated behaviour cites its source; what could not be confirmed is marked UNCONFIRMED,
and a message reconstructed from source code rather than seen in a real answer says so.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from typing import Any, Callable

PREFIX = "/_pipectl/search"
LOG_PATH = "/_pipectl/search-log"
STATE_PATH = "/_pipectl/search-state"
DEFAULT_ACCOUNT = "123456789012"
# botocore's SIGV4_TIMESTAMP format; AWS allows 15 minutes of clock skew either way for SigV4
# ("Signature expired: ... (... - 15 min.)", e.g. aws/aws-cli#6676, aws/aws-sdk-js#254).
SKEW_SECONDS = 15 * 60


def owns(path: str) -> bool:
    """True for the paths this module answers (checked by aws_like.AwsLike)."""
    return path == PREFIX or path.startswith(PREFIX + "/") or path in (LOG_PATH, STATE_PATH)


def _env_credentials() -> dict[str, str]:
    raw = os.environ.get("PIPECTL_SEARCH_CREDENTIALS", "testing:testing")
    creds: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if ":" in part:
            key, secret = part.split(":", 1)
            creds[key.strip()] = secret
    return creds


CREDENTIALS = _env_credentials()
START_CLIENT_IP = os.environ.get("PIPECTL_SEARCH_CLIENT_IP") or None


def moto_account() -> str:
    return os.environ.get("MOTO_ACCOUNT_ID") or DEFAULT_ACCOUNT


# --------------------------------------------------------------------------------------------
# Responses and errors
# --------------------------------------------------------------------------------------------

class Resp:
    """Same shape as aws_like.Resp (status, headers, body), which AwsLike._send accepts."""

    def __init__(self, status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b""):
        self.status = status
        self.headers = list(headers or [])
        self.body = body


def jresp(status: int, obj: Any, head: bool = False, extra: list[tuple[str, str]] | None = None) -> Resp:
    # OpenSearch answers JSON as "application/json; charset=UTF-8" (RestResponse content type).
    raw = b"" if obj is None else json.dumps(obj, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json; charset=UTF-8")] + list(extra or [])
    if head:  # HEAD answers carry no body (RFC 9110; OpenSearch's RestController does the same)
        return Resp(status, headers + [("Content-Length", "0")], b"")
    return Resp(status, headers + [("Content-Length", str(len(raw)))], raw)


def aws_message(status: int, message: str, key: str = "message") -> Resp:
    """An answer of the AWS front end of the domain (not of OpenSearch): {"message": ...}
    (e.g. mailerlite/laravel-elasticsearch#62) or {"Message": ...} for authorisation denials
    (aws/serverless-application-model#3704)."""
    raw = json.dumps({key: message}, separators=(",", ":")).encode()
    return Resp(status, [("Content-Type", "application/json"), ("x-amzn-RequestId", str(uuid.uuid4())),
                         ("Content-Length", str(len(raw)))], raw)


class OSError_(Exception):
    """An OpenSearch exception as the REST layer renders it
    (OpenSearchException.generateFailureXContent: {"error": {"root_cause": [...], "type", "reason",
    ..., "caused_by": ...}, "status": N}).  `os_type` is False for plain Java exceptions
    (IllegalArgumentException, NumberFormatException, ...), which matters for root_cause:
    OpenSearchException.guessRootCauses walks down through OpenSearch exceptions only, and
    an XContentParseException walks into its cause."""

    def __init__(self, etype: str, reason: Any, status: int = 400, cause: "OSError_ | None" = None,
                 os_type: bool = True, extra: dict | None = None):
        super().__init__(reason)
        self.etype, self.reason, self.status, self.cause = etype, reason, status, cause
        self.os_type, self.extra = os_type, dict(extra or {})

    def _own(self) -> dict:
        out = {"type": self.etype, "reason": self.reason}
        out.update(self.extra)
        return out

    def render(self) -> dict:
        out = self._own()
        if self.cause is not None:
            out["caused_by"] = self.cause.render()
        return out

    def root(self) -> "OSError_":
        # OpenSearchException.guessRootCauses / OpenSearchException#guessRootCauses (server/
        # src/main/java/org/opensearch/OpenSearchException.java).
        if self.etype == "x_content_parse_exception" and self.cause is not None and (
                self.cause.etype == "x_content_parse_exception" or self.cause.os_type):
            return self.cause.root()
        if not self.os_type:
            return self
        node = self
        while node.cause is not None and node.cause.os_type:
            node = node.cause
        return node

    def body(self) -> dict:
        return {"error": {"root_cause": [self.root()._own()], **self.render()}, "status": self.status}

    def resp(self, head: bool = False) -> Resp:
        return jresp(self.status, self.body(), head=head)


def illegal_arg(reason: str, cause: OSError_ | None = None) -> OSError_:
    return OSError_("illegal_argument_exception", reason, 400, cause, os_type=False)


def index_not_found(name: str) -> OSError_:
    # IndexNotFoundException: "no such index [x]" with resource.type/resource.id/index_uuid/index
    # metadata, status 404 (server/src/main/java/org/opensearch/index/IndexNotFoundException.java).
    return OSError_("index_not_found_exception", f"no such index [{name}]", 404, extra={
        "index": name, "resource.id": name, "resource.type": "index_or_alias", "index_uuid": "_na_"})


def no_handler(method: str, uri: str) -> Resp:
    # RestController.handleBadRequest: {"error":"no handler found for uri [..] and method [..]",
    # "status":400} (server/src/main/java/org/opensearch/rest/RestController.java).
    return jresp(400, {"error": f"no handler found for uri [{uri}] and method [{method}]", "status": 400})


def incorrect_method(uri: str, method: str, allowed: list[str]) -> Resp:
    # RestController.handleUnsupportedHttpMethod: 405 with an Allow header,
    # e.g. elastic/elasticsearch-js#1632 ("Incorrect HTTP method for uri [...] and method [PUT],
    # allowed: [POST]").
    body = {"error": f"Incorrect HTTP method for uri [{uri}] and method [{method}], "
                     f"allowed: [{', '.join(allowed)}]", "status": 405}
    return jresp(405, body, extra=[("Allow", ",".join(allowed))])


# --------------------------------------------------------------------------------------------
# JSON with token positions (for x_content_parse_exception's "[line:col]" prefix)
# --------------------------------------------------------------------------------------------

class PDict(dict):
    """A JSON object that remembers where its keys and values start (1-based line:column, as
    Jackson's JsonParser.getTokenLocation reports them; XContentParseException prefixes its
    message with "[line:col]")."""

    kpos: dict
    vpos: dict


class JsonError(Exception):
    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.line, self.col = line, col


class _JP:
    WS = " \t\r\n"

    def __init__(self, text: str):
        self.s, self.i = text, 0

    def pos(self, i: int | None = None) -> tuple[int, int]:
        i = self.i if i is None else i
        line = self.s.count("\n", 0, i) + 1
        return line, i - (self.s.rfind("\n", 0, i) + 1) + 1

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in self.WS:
            self.i += 1

    def item_end(self, closer: str, what: str) -> bool:
        """After an array or object entry: True at its closing bracket, False after a comma
        (either consumed); anything else is Jackson's error."""
        self.ws()
        if self.s.startswith(",", self.i):
            self.i += 1
            return False
        if self.s.startswith(closer, self.i):
            self.i += 1
            return True
        raise self.fail(f"was expecting comma to separate {what} entries")

    def fail(self, what: str) -> JsonError:
        line, col = self.pos()
        ch = self.s[self.i] if self.i < len(self.s) else None
        if ch is None:
            msg = f"Unexpected end-of-input: {what}"
        else:
            msg = f"Unexpected character ('{ch}' (code {ord(ch)})): {what}"
        return JsonError(msg, line, col)

    def value(self) -> Any:
        self.ws()
        if self.i >= len(self.s):
            raise self.fail("expected a value")
        c = self.s[self.i]
        if c == "{":
            return self.obj()
        if c == "[":
            self.i += 1
            out: list = []
            self.ws()
            if self.s.startswith("]", self.i):
                self.i += 1
                return out
            while True:
                out.append(self.value())
                if self.item_end("]", "Array"):
                    return out
        if c == '"':
            return self.string()
        for lit, val in (("true", True), ("false", False), ("null", None)):
            if self.s.startswith(lit, self.i):
                self.i += len(lit)
                return val
        m = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?").match(self.s, self.i)
        if m and m.end() > self.i:
            self.i = m.end()
            text = m.group(0)
            return float(text) if (m.group(2) or m.group(3)) else int(text)
        raise self.fail("expected a valid value (JSON String, Number, Array, Object or token "
                        "'null', 'true' or 'false')")

    def string(self) -> str:
        self.i += 1
        out = []
        while True:
            if self.i >= len(self.s):
                raise self.fail("was expecting closing quote for a string value")
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return "".join(out)
            if c == "\\":
                self.i += 1
                e = self.s[self.i:self.i + 1]
                if e == "u":
                    out.append(chr(int(self.s[self.i + 1:self.i + 5], 16)))
                    self.i += 5
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(e, e))
                self.i += 1
                continue
            out.append(c)
            self.i += 1

    def obj(self) -> PDict:
        self.i += 1
        out = PDict()
        out.kpos, out.vpos = {}, {}
        self.ws()
        if self.s.startswith("}", self.i):
            self.i += 1
            return out
        while True:
            self.ws()
            if not self.s.startswith('"', self.i):
                raise self.fail("was expecting double-quote to start field name")
            kp = self.pos()
            key = self.string()
            self.ws()
            if not self.s.startswith(":", self.i):
                raise self.fail("was expecting a colon to separate field name and value")
            self.i += 1
            self.ws()
            vp = self.pos()
            out[key] = self.value()
            out.kpos[key], out.vpos[key] = kp, vp
            if self.item_end("}", "Object"):
                return out


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise JsonError("Invalid UTF-8 start byte", 1, 1)
    p = _JP(text)
    val = p.value()
    p.ws()
    return val


def json_parse_error(e: JsonError) -> OSError_:
    # Jackson's JsonParseException, rendered by OpenSearch as json_parse_exception (status 400).
    # Paraphrased: Jackson's exact wording and source description are not reproduced.
    return OSError_("json_parse_exception",
                    f"{e} at [Source: (byte[]); line: {e.line}, column: {e.col}]", 400, os_type=False)


def body_required() -> OSError_:
    # RestRequest.contentOrSourceParam / requiredContent: OpenSearchParseException
    # "request body is required" -> parse_exception 400.
    return OSError_("parse_exception", "request body is required", 400)


def xparse(pos: tuple[int, int], message: str, cause: OSError_ | None = None) -> OSError_:
    # XContentParseException: "[line:col] message" (libs/x-content XContentParseException).
    return OSError_("x_content_parse_exception", f"[{pos[0]}:{pos[1]}] {message}", 400, cause,
                    os_type=False)


# --------------------------------------------------------------------------------------------
# Levenshtein similarity (Lucene's LevenshteinDistance.getDistance: 1 - d / max(len))
# --------------------------------------------------------------------------------------------

def _similarity(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1.0 - prev[-1] / max(len(a), len(b))


def _suggest(word: str, candidates: Any, threshold: float) -> list[str]:
    scored = [(_similarity(word, c), c) for c in candidates]
    scored = [s for s in scored if s[0] > threshold]
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [c for _, c in scored]


def unknown_field_message(parser: str, field: str, candidates: Any) -> str:
    # SuggestingErrorOnUnknown.errorMessage (server/src/main/java/org/opensearch/common/xcontent/
    # SuggestingErrorOnUnknown.java): "[parser] unknown field [f]" plus " did you mean [x]?" /
    # " did you mean any of [x, y]?" for candidates more than 0.5 similar.
    msg = f"[{parser}] unknown field [{field}]"
    keys = _suggest(field, candidates, 0.5)
    if not keys:
        return msg
    return msg + (f" did you mean [{keys[0]}]?" if len(keys) == 1 else f" did you mean any of [{', '.join(keys)}]?")


# --------------------------------------------------------------------------------------------
# SigV4 (verified with botocore's own SigV4Auth pieces)
# --------------------------------------------------------------------------------------------

class Caller:
    def __init__(self, arn: str, account: str, role_arn: str | None = None):
        self.arn, self.account, self.role_arn = arn, account, role_arn


class AuthResult:
    def __init__(self, signed: bool, ok: bool, caller: Caller | None = None, error: Resp | None = None):
        self.signed, self.ok, self.caller, self.error = signed, ok, caller, error


def _headers(environ: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in environ.items():
        if k.startswith("HTTP_"):
            out[k[5:].replace("_", "-").lower()] = v
    if environ.get("CONTENT_TYPE"):
        out["content-type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        out["content-length"] = environ["CONTENT_LENGTH"]
    return out


def _lookup_key(access_key: str) -> tuple[str, Caller, str | None] | None:
    """(secret, caller, session token or None) for a known access key."""
    try:
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends
        for account, acct in list(iam_backends.items()):
            be = dict.get(acct, "aws")
            key = be.access_keys.get(access_key) if be is not None else None
            if key is None or getattr(key, "status", "Active") != "Active":
                continue
            role_arn = getattr(key, "role_arn", None)
            if role_arn:
                sts = dict.get(dict.get(sts_backends, account) or {}, "aws") or \
                    next(iter((dict.get(sts_backends, account) or {}).values()), None)
                for role in list(getattr(sts, "assumed_roles", []) or []):
                    if role.access_key_id == access_key:
                        arn = (f"arn:aws:sts::{account}:assumed-role/{role_arn.split('/')[-1]}/"
                               f"{role.session_name}")
                        return role.secret_access_key, Caller(arn, account, role_arn), role.session_token
                continue
            user = be.users.get(key.user_name) if key.user_name else None
            arn = user.arn if user is not None else f"arn:aws:iam::{account}:user/{key.user_name}"
            return key.secret_access_key, Caller(arn, account), None
    except Exception:  # noqa: BLE001 - moto internals are best-effort here
        pass
    if access_key in CREDENTIALS:
        account = moto_account()
        return CREDENTIALS[access_key], Caller(f"arn:aws:iam::{account}:user/moto", account), None
    return None


def _denied_signature(message: str) -> Resp:
    return aws_message(403, message)


SIG_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.")


def verify_sigv4(environ: dict, body: bytes, region: str, now: float | None = None) -> AuthResult:
    """Authenticates one request like the domain's front end does.  Messages (all HTTP 403,
    body {"message": ...}):
      - signature mismatch: SIG_MISMATCH (mailerlite/laravel-elasticsearch#62,
        bcuff/elasticsearch-net-aws#47, VanRoy/spring-data-jest#88; some old answers append the
        expected canonical string, elasticsearch-dump#367 - not reproduced);
      - unknown key: "The security token included in the request is invalid."
        (SumoLogic/elasticsearch-client#19, elasticsearch-dump#328);
      - wrong service: "Credential should be scoped to correct service: 'es'. "
        (compwright/aws-elasticsearch-connector#9, opensearch-js#408);
      - wrong region: "Credential should be scoped to a valid region, not 'x'. "
        (joona/aws-es-curl#15);
      - expired / not yet current: "Signature expired: T is now earlier than T' (N - 15 min.)" /
        "Signature not yet current: T is still later than T' (N + 15 min.)" (aws/aws-cli#6676,
        NickWaterton/Roomba980-Python#118 for the wording; 15 minutes is the SigV4 skew).
    Others below are AWS's generic SigV4 wording for these cases, UNCONFIRMED for es domains."""
    headers = _headers(environ)
    auth = headers.get("authorization", "")
    if not auth:
        return AuthResult(False, False)
    algorithm, _, rest = auth.strip().partition(" ")
    params: dict[str, str] = {}
    for part in rest.split(","):
        k, eq, v = part.strip().partition("=")
        if eq:
            params[k.strip()] = v.strip()
    amz_date = headers.get("x-amz-date", "")
    if algorithm != "AWS4-HMAC-SHA256" or not all(k in params for k in ("Credential", "SignedHeaders", "Signature")):
        # AWS's IncompleteSignature wording (UNCONFIRMED for es domains).
        missing = [f"Authorization header requires '{k}' parameter." for k in ("Credential", "Signature", "SignedHeaders")
                   if k not in params or algorithm != "AWS4-HMAC-SHA256"]
        if not amz_date:
            missing.append("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        return AuthResult(True, False, error=_denied_signature(" ".join(missing) + f" Authorization={auth}"))
    if not amz_date:
        return AuthResult(True, False, error=_denied_signature(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            f"Authorization={auth}"))
    try:
        signed_at = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        # UNCONFIRMED wording (AWS's for an unparsable X-Amz-Date).
        return AuthResult(True, False, error=_denied_signature(
            f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. See http://en.wikipedia.org/wiki/ISO_8601"))
    cred = params["Credential"].split("/")
    if len(cred) != 5:
        return AuthResult(True, False, error=_denied_signature(
            f"Credential should be scoped to a valid region, not '{cred[2] if len(cred) > 2 else ''}'. "))
    access_key, scope_date, scope_region, scope_service, terminator = cred
    if scope_date != amz_date[:8]:
        # AWS's wording for a scope date that is not the request's date (UNCONFIRMED for es).
        return AuthResult(True, False, error=_denied_signature(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."))
    if terminator != "aws4_request":
        # UNCONFIRMED wording (AWS's for a bad scope terminator).
        return AuthResult(True, False, error=_denied_signature(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. "))
    if scope_service != "es":
        return AuthResult(True, False, error=_denied_signature("Credential should be scoped to correct service: 'es'. "))
    if scope_region != region:
        return AuthResult(True, False, error=_denied_signature(
            f"Credential should be scoped to a valid region, not '{scope_region}'. "))
    found = _lookup_key(access_key)
    if found is None:
        return AuthResult(True, False, error=_denied_signature("The security token included in the request is invalid."))
    secret, caller, session_token = found
    token = headers.get("x-amz-security-token")
    if session_token is not None and token != session_token:
        return AuthResult(True, False, error=_denied_signature("The security token included in the request is invalid."))
    t_now = time.time() if now is None else now
    fmt = "%Y%m%dT%H%M%SZ"

    def stamp(t: float) -> str:
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(fmt)
    if signed_at.timestamp() < t_now - SKEW_SECONDS:
        return AuthResult(True, False, caller, _denied_signature(
            f"Signature expired: {amz_date} is now earlier than {stamp(t_now - SKEW_SECONDS)} "
            f"({stamp(t_now)} - 15 min.)"))
    if signed_at.timestamp() > t_now + SKEW_SECONDS:
        return AuthResult(True, False, caller, _denied_signature(
            f"Signature not yet current: {amz_date} is still later than {stamp(t_now + SKEW_SECONDS)} "
            f"({stamp(t_now)} + 15 min.)"))
    signed = [h.strip().lower() for h in params["SignedHeaders"].split(";") if h.strip()]
    if "host" not in signed:
        # AWS's wording when the host is not signed (UNCONFIRMED for es domains).
        return AuthResult(True, False, caller, _denied_signature(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."))
    if "x-amz-date" not in signed or (token is not None and "x-amz-security-token" not in signed):
        # The contract requires these signed; AWS's exact answer is UNCONFIRMED, the mismatch
        # message is used.
        return AuthResult(True, False, caller, _denied_signature(SIG_MISMATCH))
    content_sha = headers.get("x-amz-content-sha256")
    if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
        # UNCONFIRMED: what an es domain answers for a payload hash header that does not match
        # the body; the signature-mismatch message is used.
        return AuthResult(True, False, caller, _denied_signature(SIG_MISMATCH))
    expected = _botocore_signature(environ, headers, body, signed, amz_date, access_key, secret,
                                   token, region)
    if not hmac.compare_digest(expected, params["Signature"]):
        return AuthResult(True, False, caller, _denied_signature(SIG_MISMATCH))
    return AuthResult(True, True, caller)


def _botocore_signature(environ: dict, headers: dict[str, str], body: bytes, signed: list[str],
                        amz_date: str, access_key: str, secret: str, token: str | None, region: str) -> str:
    """The signature botocore computes for this request as it arrived: its canonical request
    (path normalised, each segment URI-encoded again - AWS's rule for every service but S3:
    https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html), string to sign
    and signing key, with exactly the headers listed in SignedHeaders."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials

    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        raw = urllib.parse.quote(environ.get("PATH_INFO", "")) + (
            "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else "")
    if "://" in raw:  # absolute-form request target
        raw = urllib.parse.urlsplit(raw)._replace(scheme="", netloc="").geturl()
    raw_path, _, raw_query = raw.partition("?")
    # Query: each name and value decoded, then encoded the SigV4 way and sorted (botocore's
    # _canonical_query_string_params does the encoding and the sort).
    pairs = []
    for piece in raw_query.split("&") if raw_query else []:
        k, _, v = piece.partition("=")
        pairs.append((urllib.parse.unquote(k), urllib.parse.unquote(v)))

    class _Exact(SigV4Auth):
        def headers_to_sign(self, request: Any) -> Any:
            hm = HTTPHeaders()
            for name in signed:
                hm[name] = headers.get(name, "")
            return hm

    signer = _Exact(Credentials(access_key, secret, token), "es", region)
    request = AWSRequest(method=environ.get("REQUEST_METHOD", "GET").upper(),
                         url="http://" + headers.get("host", "") + (raw_path or "/"),
                         data=body, params=pairs or None)
    request.context["timestamp"] = amz_date
    canonical = signer.canonical_request(request)
    return signer.signature(signer.string_to_sign(request, canonical), request)


# --------------------------------------------------------------------------------------------
# Domain access policy (resource-based), as in "Identity and Access Management in Amazon
# OpenSearch Service" (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/ac.html)
# --------------------------------------------------------------------------------------------

def _as_list(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def _wild(pattern: str, value: str, ignore_case: bool = False) -> bool:
    # IAM policy wildcards: "*" any run of characters, "?" one character
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _principal_matches(principal: Any, caller: Caller | None) -> bool:
    # Principal "*" / {"AWS": "*"}: everyone, anonymous included (ac.html, "IP-based policies");
    # an account id or arn:aws:iam::ACCOUNT:root: any identity of that account; a user/role ARN:
    # that identity (a role ARN also covers its assumed-role sessions)
    # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for value in _as_list(principal.get("AWS", [])):
        if value == "*":
            return True
        if caller is None:
            continue
        m = re.fullmatch(r"(?:arn:aws[\w-]*:iam::)?(\d{12})(?::root)?", str(value))
        if m and m.group(1) == caller.account:
            return True
        if value == caller.arn or (caller.role_arn and value == caller.role_arn):
            return True
    return False


def _condition_matches(condition: Any, client_ip: str) -> bool:
    """IpAddress / NotIpAddress on aws:SourceIp (CIDR lists, IPv4 and IPv6), ac.html "IP-based
    policies" and https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IPAddress.
    Every operator must match; an operator or key the stand-in does not know makes the statement
    not apply (documented limitation)."""
    if not condition:
        return True
    if not isinstance(condition, dict):
        return False
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        ip = None
    for op, tests in condition.items():
        if op not in ("IpAddress", "NotIpAddress") or not isinstance(tests, dict):
            return False
        for key, values in tests.items():
            if key.lower() != "aws:sourceip":
                return False
            inside = False
            for v in _as_list(values):
                try:
                    net = ipaddress.ip_network(str(v), strict=False)
                except ValueError:
                    continue
                if ip is not None and ip.version == net.version and ip in net:
                    inside = True
            if inside != (op == "IpAddress"):
                return False
    return True


def evaluate_policy(policy_text: str, caller: Caller | None, action: str, resource: str,
                    client_ip: str) -> str:
    """'allow', 'deny' (explicit) or 'implicit'.  Explicit Deny wins over Allow
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)."""
    try:
        policy = json.loads(policy_text) if isinstance(policy_text, str) and policy_text.strip() else policy_text
    except ValueError:
        return "implicit"
    if not isinstance(policy, dict):
        return "implicit"
    allowed = False
    for st in _as_list(policy.get("Statement", [])):
        if not isinstance(st, dict):
            continue
        if "Principal" in st:
            if not _principal_matches(st["Principal"], caller):
                continue
        elif "NotPrincipal" in st:
            if _principal_matches(st["NotPrincipal"], caller):
                continue
        else:
            continue  # a resource-based policy statement needs a principal
        if "Action" in st:
            if not any(_wild(str(a), action, ignore_case=True) for a in _as_list(st["Action"])):
                continue
        elif "NotAction" in st:
            if any(_wild(str(a), action, ignore_case=True) for a in _as_list(st["NotAction"])):
                continue
        else:
            continue
        if "Resource" in st:
            if not any(_wild(str(r), resource) for r in _as_list(st["Resource"])):
                continue
        elif "NotResource" in st:
            if any(_wild(str(r), resource) for r in _as_list(st["NotResource"])):
                continue
        if not _condition_matches(st.get("Condition"), client_ip):
            continue
        if st.get("Effect") == "Deny":
            return "deny"
        if st.get("Effect") == "Allow":
            allowed = True
    return "allow" if allowed else "implicit"


def denial(caller: Caller | None, action: str, explicit: bool) -> Resp:
    """403 {"Message": ...}: "User: anonymous is not authorized to perform: es:ESHttpPost because
    no resource-based policy allows the es:ESHttpPost action" (aws/serverless-application-model
    #3704, aws-samples/siem-on-amazon-opensearch-service#471); a signed caller is named by its
    ARN the same way (inreachventures/aws-signing-request-interceptor#27 shows an assumed-role
    ARN in this place).  The explicit-deny variant follows IAM's wording "with an explicit deny
    in a resource-based policy" (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html),
    UNCONFIRMED for es domains."""
    who = caller.arn if caller is not None else "anonymous"
    if explicit:
        msg = f"User: {who} is not authorized to perform: {action} with an explicit deny in a resource-based policy"
    else:
        msg = f"User: {who} is not authorized to perform: {action} because no resource-based policy allows the {action} action"
    return aws_message(403, msg, key="Message")


# --------------------------------------------------------------------------------------------
# Engine versions
# --------------------------------------------------------------------------------------------

class Engine:
    """The domain's engine, from moto's EngineVersion ("OpenSearch_2.11", "Elasticsearch_7.10")."""

    def __init__(self, version: str):
        self.version = version or "OpenSearch_2.5"
        kind, _, num = self.version.partition("_")
        self.opensearch = kind != "Elasticsearch"
        parts = [int(p) for p in re.findall(r"\d+", num)[:2]] + [0, 0]
        self.major, self.minor = parts[0], parts[1]

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    @property
    def composable_templates(self) -> bool:
        # Composable index templates (_index_template) came with Elasticsearch 7.8
        # (https://www.elastic.co/guide/en/elasticsearch/reference/7.8/index-templates.html;
        # elastic/elasticsearch#80343: "Composable index templates were introduced in 7.8.0");
        # OpenSearch has them from 1.0 (forked from 7.10.2).
        return self.opensearch or self.at_least(7, 8)

    @property
    def doc_type_in_responses(self) -> bool:
        # Elasticsearch 7.x still answers "_type": "_doc" in document responses; OpenSearch 2.0
        # removed mapping types ("Removal of type" in the OpenSearch 2.0.0 release notes).
        return not self.opensearch or self.major < 2

    @property
    def dashboards_prefix(self) -> str:
        # OpenSearch Dashboards is served at /_dashboards, Kibana (Elasticsearch domains) at
        # /_plugin/kibana (https://docs.aws.amazon.com/opensearch-service/latest/developerguide/dashboards.html).
        return "/_dashboards" if self.opensearch else "/_plugin/kibana"

    @property
    def xsrf_headers(self) -> tuple[str, str]:
        # createXsrfPostAuthHandler: a write needs "osd-xsrf" or "osd-version" (OpenSearch
        # Dashboards src/core/server/http/lifecycle_handlers.ts); Kibana's are kbn-xsrf/kbn-version.
        return ("osd-xsrf", "osd-version") if self.opensearch else ("kbn-xsrf", "kbn-version")


# --------------------------------------------------------------------------------------------
# Index settings (Settings.fromXContent, normalizePrefix("index."), IndexScopedSettings.validate)
# --------------------------------------------------------------------------------------------

def _setting_str(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return [_setting_str(x) for x in v]
    return str(v)


def flatten_settings(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Settings.fromXContent: nested objects become dotted keys, every value a string
    (server/src/main/java/org/opensearch/common/settings/Settings.java fromXContent)."""
    out: dict[str, Any] = {}
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        key = prefix + k
        if isinstance(v, dict):
            out.update(flatten_settings(v, key + "."))
        else:
            out[key] = _setting_str(v)
    return out


def normalize_index_prefix(flat: dict[str, Any]) -> dict[str, Any]:
    # Settings.Builder.normalizePrefix(IndexMetadata.INDEX_SETTING_PREFIX) as used by
    # MetadataIndexTemplateService.addIndexTemplateV2 and index creation.
    return {(k if k.startswith("index.") or k.endswith("*") else "index." + k): v for k, v in flat.items()}


def nest_settings(flat: dict[str, Any]) -> dict:
    """Settings.toXContent without flat_settings: the structured (nested) form."""
    out: dict = {}
    for key in sorted(flat):
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = flat[key]
    return out


def _int_setting(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, Any], str | None]:
    def check(key: str, v: Any) -> str | None:
        # Setting.intSetting / Setting.get: "Failed to parse value [v] for setting [k]" (+ " must
        # be >= n" / " must be <= n") (server/.../common/settings/Setting.java).
        try:
            n = int(str(v))
        except ValueError:
            return f"Failed to parse value [{v}] for setting [{key}]"
        if minimum is not None and n < minimum:
            return f"Failed to parse value [{v}] for setting [{key}] must be >= {minimum}"
        if maximum is not None and n > maximum:
            return f"Failed to parse value [{v}] for setting [{key}] must be <= {maximum}"
        return None
    return check


def _bool_setting(key: str, v: Any) -> str | None:
    # Booleans.parseBoolean: "Failed to parse value [v] as only [true] or [false] are allowed."
    if str(v) in ("true", "false"):
        return None
    return f"Failed to parse value [{v}] as only [true] or [false] are allowed."


def _time_setting(key: str, v: Any) -> str | None:
    # TimeValue.parseTimeValue: "failed to parse setting [k] with value [v] as a time value: unit
    # is missing or unrecognized" (libs/common/.../TimeValue.java).
    s = str(v).strip().lower()
    if s in ("-1", "0") or re.fullmatch(r"\d+(\.\d+)?(nanos|micros|ms|s|m|h|d)", s):
        return None
    return f"failed to parse setting [{key}] with value [{v}] as a time value: unit is missing or unrecognized"


def _any_setting(key: str, v: Any) -> str | None:
    return None


def _choice(*choices: str) -> Callable[[str, Any], str | None]:
    def check(key: str, v: Any) -> str | None:
        if str(v) in choices:
            return None
        # UNCONFIRMED wording: each of these settings words its own refusal.
        return f"unknown value for [{key}] must be one of [{', '.join(choices)}] but was: {v}"
    return check


# A subset of the index-scoped settings OpenSearch 2.x and Elasticsearch 7.10 know
# (IndexScopedSettings.BUILT_IN_INDEX_SETTINGS, plus the k-NN and ISM plugins AWS installs).
INDEX_SETTINGS: dict[str, Callable[[str, Any], str | None]] = {
    "index.number_of_shards": _int_setting(1, 1024),
    "index.number_of_replicas": _int_setting(0),
    "index.number_of_routing_shards": _int_setting(1),
    "index.routing_partition_size": _int_setting(1),
    "index.refresh_interval": _time_setting,
    "index.auto_expand_replicas": _any_setting,
    "index.max_result_window": _int_setting(1),
    "index.max_inner_result_window": _int_setting(1),
    "index.max_rescore_window": _int_setting(1),
    "index.max_docvalue_fields_search": _int_setting(0),
    "index.max_script_fields": _int_setting(0),
    "index.max_terms_count": _int_setting(1),
    "index.max_regex_length": _int_setting(1),
    "index.max_ngram_diff": _int_setting(0),
    "index.max_shingle_diff": _int_setting(0),
    "index.max_refresh_listeners": _int_setting(0),
    "index.max_slices_per_scroll": _int_setting(1),
    "index.highlight.max_analyzed_offset": _int_setting(1),
    "index.codec": _any_setting,
    "index.hidden": _bool_setting,
    "index.blocks.read_only": _bool_setting,
    "index.blocks.read_only_allow_delete": _bool_setting,
    "index.blocks.read": _bool_setting,
    "index.blocks.write": _bool_setting,
    "index.blocks.metadata": _bool_setting,
    "index.mapping.total_fields.limit": _int_setting(0),
    "index.mapping.depth.limit": _int_setting(1),
    "index.mapping.nested_fields.limit": _int_setting(0),
    "index.mapping.nested_objects.limit": _int_setting(0),
    "index.mapping.field_name_length.limit": _int_setting(1),
    "index.mapping.ignore_malformed": _bool_setting,
    "index.mapping.coerce": _bool_setting,
    "index.default_pipeline": _any_setting,
    "index.final_pipeline": _any_setting,
    "index.query.default_field": _any_setting,
    "index.priority": _int_setting(0),
    "index.translog.durability": _choice("request", "async", "REQUEST", "ASYNC"),
    "index.translog.sync_interval": _time_setting,
    "index.translog.flush_threshold_size": _any_setting,
    "index.unassigned.node_left.delayed_timeout": _time_setting,
    "index.write.wait_for_active_shards": _any_setting,
    "index.soft_deletes.enabled": _bool_setting,
    "index.soft_deletes.retention_lease.period": _time_setting,
    "index.gc_deletes": _time_setting,
    "index.search.idle.after": _time_setting,
    "index.store.type": _any_setting,
    "index.shard.check_on_startup": _any_setting,
    "index.load_fixed_bitset_filters_eagerly": _bool_setting,
    "index.sort.field": _any_setting,
    "index.sort.order": _any_setting,
    "index.sort.mode": _any_setting,
    "index.sort.missing": _any_setting,
    "index.knn": _bool_setting,
    "index.knn.algo_param.ef_search": _int_setting(2),
    "index.plugins.index_state_management.rollover_alias": _any_setting,
    "index.opendistro.index_state_management.rollover_alias": _any_setting,
    "index.replication.type": _choice("DOCUMENT", "SEGMENT"),
}
# Group settings: any key under these prefixes is known (Setting.groupSetting / affix settings).
INDEX_SETTING_GROUPS = ("index.analysis.", "index.routing.allocation.", "index.search.slowlog.",
                        "index.indexing.slowlog.", "index.merge.", "index.similarity.",
                        "index.routing.rebalance.", "index.lifecycle.")


def validate_settings(flat: dict[str, Any]) -> list[str]:
    """IndexScopedSettings.validate(settings, true): every key in order, one message each
    (AbstractScopedSettings.validate: "unknown setting [k] please check that any required plugins
    are installed, or check the breaking changes documentation for removed settings", or
    " did you mean [x]?" for a known key more than 0.7 similar)."""
    errors = []
    for key in sorted(flat):
        check = INDEX_SETTINGS.get(key)
        if check is None:
            if key.startswith(INDEX_SETTING_GROUPS):
                continue
            keys = _suggest(key, INDEX_SETTINGS, 0.7)
            msg = f"unknown setting [{key}]"
            if keys:
                msg += f" did you mean [{keys[0]}]?" if len(keys) == 1 else f" did you mean any of [{', '.join(keys)}]?"
            else:
                msg += (" please check that any required plugins are installed, or check the "
                        "breaking changes documentation for removed settings")
            errors.append(msg)
            continue
        value = flat[key]
        if value is None:
            continue
        problem = check(key, value if not isinstance(value, list) else ",".join(value))
        if problem:
            errors.append(problem)
    return errors


# --------------------------------------------------------------------------------------------
# Mappings
# --------------------------------------------------------------------------------------------

FIELD_TYPES_COMMON = {
    "text", "keyword", "long", "integer", "short", "byte", "double", "float", "half_float",
    "scaled_float", "date", "date_nanos", "boolean", "binary", "object", "nested", "geo_point",
    "geo_shape", "ip", "completion", "token_count", "alias", "integer_range", "float_range",
    "long_range", "double_range", "date_range", "ip_range", "search_as_you_type", "rank_feature",
    "rank_features", "percolator", "join", "murmur3", "annotated_text", "knn_vector",
}


def field_types(engine: Engine) -> set[str]:
    # The mapper types of each engine (OpenSearch 2.x "Supported field types" page:
    # https://opensearch.org/docs/latest/field-types/supported-field-types/index/ - flat_object
    # from 2.7, unsigned_long from 2.8, match_only_text from 2.12, wildcard from 2.15).
    types = set(FIELD_TYPES_COMMON)
    if engine.opensearch:
        if engine.at_least(2, 7):
            types.add("flat_object")
        if engine.at_least(2, 8):
            types.add("unsigned_long")
        if engine.at_least(2, 12):
            types.add("match_only_text")
        if engine.at_least(2, 15):
            types.add("wildcard")
    return types


# RootObjectMapper / DocumentMapperParser accept these at the root of a mapping.
ROOT_PARAMS = {"properties", "dynamic", "enabled", "_meta", "_source", "_routing", "_field_names",
               "_size", "dynamic_templates", "date_detection", "numeric_detection",
               "dynamic_date_formats", "_data_stream_timestamp", "derived"}
OBJECT_PARAMS = {"properties", "dynamic", "enabled", "type", "include_in_parent", "include_in_root"}


def _dynamic_value(v: Any, engine: Engine) -> str:
    """ObjectMapper.TypeParser.parseObjectOrDocumentTypeProperties: "strict", (OpenSearch 2.16+)
    "strict_allow_templates"/"false_allow_templates", else a boolean through
    XContentMapValues.nodeBooleanValue(node, "dynamic.dynamic") ("Could not convert
    [dynamic.dynamic] to boolean", caused by "Failed to parse value [x] as only [true] or [false]
    are allowed.")."""
    s = "true" if v is True else "false" if v is False else str(v)
    if s.lower() == "strict":
        return "strict"
    if engine.opensearch and engine.at_least(2, 16) and s.lower() in ("strict_allow_templates", "false_allow_templates"):
        return s.lower()
    if s in ("true", "false"):
        return s
    raise illegal_arg("Could not convert [dynamic.dynamic] to boolean",
                      illegal_arg(f"Failed to parse value [{s}] as only [true] or [false] are allowed."))


def _java_map(v: Any) -> str:
    """Java's Map/List toString, used in mapper error messages."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_java_map(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_java_map(x) for x in v) + "]"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return str(v)


def mapper_parsing(reason: str, cause: OSError_ | None = None) -> OSError_:
    return OSError_("mapper_parsing_exception", reason, 400, cause)


def validate_mapping(mapping: Any, engine: Engine) -> None:
    """What DocumentMapperParser / ObjectMapper.TypeParser refuse (server/src/main/java/org/
    opensearch/index/mapper/ObjectMapper.java parseProperties: "No type specified for field [f]",
    "No handler for type [t] declared on field [f]"; DocumentMapperParser.checkNoRemainingFields:
    "Root mapping definition has unsupported parameters:  [k : v]").  Raises OSError_."""
    if not isinstance(mapping, dict):
        raise mapper_parsing("Expected map for property [mappings]")  # UNCONFIRMED wording
    if len(mapping) == 1 and "_doc" in mapping and isinstance(mapping["_doc"], dict):
        mapping = mapping["_doc"]  # DocumentMapperParser.extractMapping strips the type
    extra = [k for k in mapping if k not in ROOT_PARAMS]
    if extra:
        rest = "".join(f" [{k} : {_java_map(mapping[k])}]" for k in extra)
        raise mapper_parsing("Root mapping definition has unsupported parameters: " + rest)
    _validate_object(mapping, engine, root=True)


def _validate_object(node: dict, engine: Engine, root: bool = False) -> None:
    if "dynamic" in node:
        _dynamic_value(node["dynamic"], engine)
    if "enabled" in node and str(node["enabled"]).lower() not in ("true", "false"):
        raise illegal_arg("Could not convert [enabled.enabled] to boolean",
                          illegal_arg(f"Failed to parse value [{node['enabled']}] as only [true] or [false] are allowed."))
    props = node.get("properties")
    if props is None or (isinstance(props, list) and not props):
        return
    if not isinstance(props, dict):
        # ObjectMapper: OpenSearchParseException("properties must be a map type")
        raise OSError_("parse_exception", "properties must be a map type", 400)
    types = field_types(engine)
    for name, field in props.items():
        if isinstance(field, list) and not field:
            continue
        if not isinstance(field, dict):
            raise mapper_parsing(f"Expected map for property [fields] on field [{name}] but got a class java.lang.String")
        ftype = field.get("type")
        if ftype is None:
            if field.get("properties") is not None or (len(field) == 1 and "enabled" in field):
                ftype = "object"
            else:
                raise mapper_parsing(f"No type specified for field [{name}]")
        ftype = str(ftype)
        if ftype not in types:
            raise mapper_parsing(f"No handler for type [{ftype}] declared on field [{name}]")
        if ftype in ("object", "nested"):
            _validate_object(field, engine)
        elif isinstance(field.get("fields"), dict):
            _validate_object({"properties": field["fields"]}, engine)


def merge_mappings(base: dict, over: dict) -> dict:
    """MergeReason.INDEX_TEMPLATE: objects merge recursively, a field definition replaces the
    existing one, dynamic/enabled are overridden when set (ObjectMapper.doMerge)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key == "properties" and isinstance(value, dict) and isinstance(out.get("properties"), dict):
            props = out["properties"]
            for fname, fdef in value.items():
                old = props.get(fname)
                if (isinstance(old, dict) and isinstance(fdef, dict) and _is_object(old) and _is_object(fdef)):
                    props[fname] = merge_mappings(old, fdef)
                else:
                    props[fname] = copy.deepcopy(fdef)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_object(fdef: dict) -> bool:
    return fdef.get("type", "object" if "properties" in fdef else None) in ("object", "nested")


_BOOL_PARAMS = {"index", "doc_values", "store", "norms", "coerce", "ignore_malformed",
                "eager_global_ordinals", "index_phrases", "include_in_parent", "include_in_root",
                "ignore_z_value", "enabled"}
_INT_PARAMS = {"ignore_above", "position_increment_gap", "max_shingle_size"}


def render_mapping(mapping: dict, root: bool = True) -> dict:
    """An index's mapping as GET <index>/_mapping renders it (ObjectMapper.toXContent):
    "dynamic" as a lowercase STRING ("false", "strict"), properties sorted by name, an object
    with properties loses "type": "object", parsed parameters in their typed form."""
    out: dict = {}
    if not root:
        is_nested = mapping.get("type") == "nested"
        if is_nested:
            out["type"] = "nested"
            for k in ("include_in_parent", "include_in_root"):
                if _truthy(mapping.get(k)):
                    out[k] = True
        elif not mapping.get("properties"):
            out["type"] = "object"
    if "dynamic" in mapping:
        d = mapping["dynamic"]
        out["dynamic"] = "true" if d is True else "false" if d is False else str(d).lower()
    if "enabled" in mapping and not _truthy(mapping["enabled"]):
        out["enabled"] = False
    for k, v in mapping.items():
        if k in ("properties", "dynamic", "enabled", "type", "include_in_parent", "include_in_root"):
            continue
        out[k] = copy.deepcopy(v)
    props = mapping.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {name: _render_field(props[name]) for name in sorted(props)}
    return out


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() == "true"


def _render_field(fdef: Any) -> Any:
    if not isinstance(fdef, dict):
        return fdef
    if _is_object(fdef):
        return render_mapping(fdef, root=False)
    out: dict = {}
    for k, v in fdef.items():
        if k in _BOOL_PARAMS and isinstance(v, str) and v.lower() in ("true", "false"):
            v = v.lower() == "true"
        elif k in _INT_PARAMS and isinstance(v, str) and v.lstrip("-").isdigit():
            v = int(v)
        elif k == "fields" and isinstance(v, dict):
            v = {n: _render_field(v[n]) for n in sorted(v)}
        out[k] = copy.deepcopy(v)
    return out


# --------------------------------------------------------------------------------------------
# Dates (Java DateTimeFormatter patterns and the built-in named formats)
# --------------------------------------------------------------------------------------------

_NAMED_DATE = {
    # https://opensearch.org/docs/latest/field-types/supported-field-types/date/ (built-in formats)
    "strict_date_optional_time": "yyyy[-MM[-dd['T'HH[:mm[:ss[.SSSSSSSSS]]][XXX]]]]",
    "date_optional_time": "yyyy[-MM[-dd['T'HH[:mm[:ss[.SSSSSSSSS]]][XXX]]]]",
    "strict_date_optional_time_nanos": "yyyy[-MM[-dd['T'HH[:mm[:ss[.SSSSSSSSS]]][XXX]]]]",
    "strict_date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "date_time": "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
    "strict_date_time_no_millis": "yyyy-MM-dd'T'HH:mm:ssXXX", "date_time_no_millis": "yyyy-MM-dd'T'HH:mm:ssXXX",
    "strict_date": "yyyy-MM-dd", "date": "yyyy-MM-dd", "basic_date": "yyyyMMdd",
    "basic_date_time": "yyyyMMdd'T'HHmmss.SSSXX", "basic_date_time_no_millis": "yyyyMMdd'T'HHmmssXX",
    "strict_date_hour_minute_second": "yyyy-MM-dd'T'HH:mm:ss", "date_hour_minute_second": "yyyy-MM-dd'T'HH:mm:ss",
    "strict_date_hour_minute_second_millis": "yyyy-MM-dd'T'HH:mm:ss.SSS",
    "date_hour_minute_second_millis": "yyyy-MM-dd'T'HH:mm:ss.SSS",
    "strict_date_hour_minute": "yyyy-MM-dd'T'HH:mm", "date_hour_minute": "yyyy-MM-dd'T'HH:mm",
    "strict_year_month_day": "yyyy-MM-dd", "year_month_day": "yyyy-MM-dd",
    "strict_year_month": "yyyy-MM", "year_month": "yyyy-MM", "strict_year": "yyyy", "year": "yyyy",
    "strict_hour_minute_second": "HH:mm:ss", "hour_minute_second": "HH:mm:ss",
    "strict_hour_minute": "HH:mm", "hour_minute": "HH:mm",
}
DEFAULT_DATE_FORMAT = "strict_date_optional_time||epoch_millis"


def _java_pattern_regex(pattern: str) -> str:
    out, i, depth = [], 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            j = pattern.find("'", i + 1)
            j = len(pattern) if j < 0 else j
            lit = pattern[i + 1:j]
            out.append(re.escape(lit) if lit else "'")
            i = j + 1
            continue
        if c == "[":
            out.append("(?:")
            depth += 1
            i += 1
            continue
        if c == "]":
            out.append(")?")
            depth -= 1
            i += 1
            continue
        if c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            n = j - i
            out.append(_letter_regex(c, n))
            i = j
            continue
        out.append(re.escape(c))
        i += 1
    out.extend(")?" for _ in range(depth))
    return "".join(out)


def _letter_regex(c: str, n: int) -> str:
    named = {"y": "year", "u": "year", "M": "month", "d": "day", "H": "hour", "k": "hour",
             "h": "hour12", "K": "hour12", "m": "minute", "s": "second"}
    if c in ("y", "u"):
        body = r"\d{2}" if n == 2 else r"\d{4}" if n == 4 else r"[+-]?\d{%d,9}" % max(n, 1)
    elif c == "M":
        body = r"[A-Za-z]+" if n >= 4 else r"[A-Za-z]{3}" if n == 3 else r"\d{2}" if n == 2 else r"\d{1,2}"
        if n >= 3:
            return body
    elif c in ("d", "H", "k", "h", "K", "m", "s"):
        body = r"\d{2}" if n == 2 else r"\d{1,2}"
    elif c == "S":
        return r"\d{%d}" % n if n < 9 else r"\d{1,9}"
    elif c == "a":
        return r"(?:AM|PM|am|pm)"
    elif c in ("X", "x"):
        zulu = "Z|" if c == "X" else ""
        return r"(?:%s[+-]\d{2}(?::?\d{2})?)" % zulu
    elif c == "Z":
        return r"(?:Z|[+-]\d{2}:?\d{2})"
    elif c in ("z", "V", "O"):
        return r"[A-Za-z][A-Za-z0-9/_+\-]*"
    elif c == "E":
        return r"[A-Za-z]+"
    else:
        return r"\d+"
    return "(?P<%s>%s)" % (named[c] + "_" + uuid.uuid4().hex[:6], body)


def date_parses(value: str, fmt: str) -> bool:
    for alt in fmt.split("||"):
        alt = alt.strip()
        if alt in ("epoch_millis", "epoch_second"):
            if re.fullmatch(r"-?\d+(\.\d+)?", value):
                return True
            continue
        pattern = _NAMED_DATE.get(alt, alt)
        m = re.fullmatch(_java_pattern_regex(pattern), value)
        if not m:
            continue
        parts = {k.rsplit("_", 1)[0]: int(v) for k, v in m.groupdict().items() if v is not None}
        limits = {"month": (1, 12), "day": (1, 31), "hour": (0, 23), "hour12": (1, 12), "minute": (0, 59), "second": (0, 59)}
        if any(not (lo <= parts[k] <= hi) for k, (lo, hi) in limits.items() if k in parts):
            continue
        if "year" in parts and "month" in parts and "day" in parts:
            try:
                datetime.date(parts["year"] if parts["year"] > 0 else 2000, parts["month"], parts["day"])
            except ValueError:
                continue  # ResolverStyle.STRICT refuses Feb 30 etc.
        return True
    return False


def date_error(field: str, ftype: str, doc_id: str, value: Any, fmt: str) -> OSError_:
    # DateFieldMapper: IllegalArgumentException "failed to parse date field [v] with format [f]"
    # caused by DateTimeParseException "Text 'v' could not be parsed at index 0" (the index is
    # UNCONFIRMED: always 0 here), wrapped by FieldMapper.parse in the document-level message.
    return doc_field_error(field, ftype, doc_id, value, illegal_arg(
        f"failed to parse date field [{value}] with format [{fmt}]",
        OSError_("date_time_parse_exception", f"Text '{value}' could not be parsed at index 0", 400, os_type=False)))


def doc_field_error(field: str, ftype: str, doc_id: str, value: Any, cause: OSError_) -> OSError_:
    # FieldMapper.parse: MapperParsingException("failed to parse field [{}] of type [{}] in
    # document with id '{}'. Preview of field's value: '{}'") (elastic/kibana#149789 shows one).
    return mapper_parsing(f"failed to parse field [{field}] of type [{ftype}] in document with id "
                          f"'{doc_id}'. Preview of field's value: '{_java_map(value)}'", cause)


# --------------------------------------------------------------------------------------------
# Documents: dynamic mapping and value checks (DocumentParser)
# --------------------------------------------------------------------------------------------

DYNAMIC_DATE_FORMATS = ["strict_date_optional_time", "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z"]


def _dynamic_field(value: Any, root: dict) -> dict | None:
    """Dynamic field mapping defaults (https://opensearch.org/docs/latest/field-types/ -
    "Dynamic mapping"; DocumentParser.createBuilderFromDynamicValue): string -> date when date
    detection matches one of dynamic_date_formats, else text with a "keyword" sub-field
    (ignore_above 256); integer -> long; floating point -> float; boolean -> boolean; object ->
    object; null -> no mapping; array -> the type of its first non-null element."""
    if isinstance(value, list):
        for v in value:
            if v is not None:
                return _dynamic_field(v, root)
        return None
    if value is None:
        return None
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, dict):
        return {"type": "object", "properties": {}}
    text = str(value)
    if str(root.get("date_detection", True)).lower() != "false":
        for fmt in root.get("dynamic_date_formats", DYNAMIC_DATE_FORMATS):
            if date_parses(text, fmt):
                return {"type": "date"}
    if str(root.get("numeric_detection", False)).lower() == "true":
        if re.fullmatch(r"-?\d+", text):
            return {"type": "long"}
        if re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", text):
            return {"type": "float"}
    return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}


def _expand_dots(obj: dict) -> dict:
    # Dotted field names in a document are object paths ("a.b": 1 is {"a": {"b": 1}}).
    out: dict = {}
    for k, v in obj.items():
        parts = k.split(".") if "." in k and not k.startswith(".") and not k.endswith(".") else [k]
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        last = parts[-1]
        if isinstance(v, dict) and isinstance(node.get(last), dict):
            node[last].update(v)
        else:
            node[last] = v
    return out


def parse_document(mapping: dict, source: Any, doc_id: str) -> dict:
    """Checks a document against the index mapping and returns the mapping with the fields
    dynamic mapping adds.  Raises OSError_ as the engine would answer."""
    if not isinstance(source, dict):
        # UNCONFIRMED wording for a non-object document.
        raise mapper_parsing("failed to parse", OSError_("not_x_content_exception",
                             "Compressor detection can only be called on some xcontent bytes or "
                             "compressed xcontent bytes", 400))
    root = copy.deepcopy(mapping)
    _parse_object(root, root, source, "", _dyn(root.get("dynamic"), "true"), doc_id, "_doc")
    return root


def _dyn(v: Any, inherited: str) -> str:
    if v is None:
        return inherited
    return "true" if v is True else "false" if v is False else str(v).lower()


def _parse_object(root: dict, node: dict, value: dict, path: str, dynamic: str, doc_id: str, name: str) -> None:
    props = node.get("properties")
    if not isinstance(props, dict):
        props = node["properties"] = {}
    for key, v in _expand_dots(value).items():
        full = path + key
        fdef = props.get(key)
        if fdef is None:
            if v is None or (isinstance(v, list) and all(x is None for x in v)):
                continue
            if dynamic in ("strict", "strict_allow_templates"):
                # StrictDynamicMappingException: "mapping set to strict, dynamic introduction of
                # [f] within [parent] is not allowed" (root: "_doc"), status 400.
                raise OSError_("strict_dynamic_mapping_exception",
                               f"mapping set to strict, dynamic introduction of [{key}] within [{name}] is not allowed", 400)
            if dynamic in ("false", "false_allow_templates"):
                continue  # kept in _source, not mapped
            fdef = _dynamic_field(v, root)
            if fdef is None:
                continue
            props[key] = fdef
        _parse_value(root, fdef, v, full, key, dynamic, doc_id)


def _parse_value(root: dict, fdef: dict, v: Any, full: str, key: str, dynamic: str, doc_id: str) -> None:
    if isinstance(v, list) and fdef.get("type") == "geo_point" and v and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        _parse_value(root, fdef, tuple(v), full, key, dynamic, doc_id)  # one [lon, lat] point
        return
    if isinstance(v, list):
        for item in v:
            _parse_value(root, fdef, item, full, key, dynamic, doc_id)
        return
    if v is None:
        return
    ftype = fdef.get("type", "object" if "properties" in fdef else None)
    if ftype in ("object", "nested"):
        if not isinstance(v, dict):
            # DocumentParser: "object mapping for [x] tried to parse field [k] as object, but
            # found a concrete value".
            raise mapper_parsing(f"object mapping for [{full}] tried to parse field [{key}] as object, "
                                 "but found a concrete value")
        _parse_object(root, fdef, v, full + ".", _dyn(fdef.get("dynamic"), dynamic), doc_id, full)
        return
    if isinstance(v, dict) and ftype not in ("geo_point", "geo_shape", "flat_object", "join", "percolator",
                                             "integer_range", "float_range", "long_range", "double_range",
                                             "date_range", "ip_range", "completion", "rank_features"):
        raise doc_field_error(full, ftype, doc_id, v, OSError_(
            "illegal_state_exception", "Can't get text on a START_OBJECT", 400, os_type=False))
    if ftype in ("long", "integer", "short", "byte", "unsigned_long"):
        limits = {"long": (-2**63, 2**63 - 1), "integer": (-2**31, 2**31 - 1), "short": (-2**15, 2**15 - 1),
                  "byte": (-128, 127), "unsigned_long": (0, 2**64 - 1)}
        names = {"long": "a long", "integer": "an integer", "short": "a short", "byte": "a byte",
                 "unsigned_long": "an unsigned long"}
        try:
            if isinstance(v, bool):
                raise ValueError
            n = int(float(v)) if isinstance(v, (int, float)) else int(float(str(v).strip())) \
                if re.fullmatch(r"\s*-?\d+(\.\d+)?([eE][+-]?\d+)?\s*", str(v)) else None
        except (ValueError, OverflowError):
            n = None
        if n is None:
            # AbstractXContentParser.toLong: IllegalArgumentException("For input string: \"v\"")
            raise doc_field_error(full, ftype, doc_id, v, illegal_arg(f'For input string: "{v}"'))
        lo, hi = limits[ftype]
        if not lo <= n <= hi:
            raise doc_field_error(full, ftype, doc_id, v, illegal_arg(f"Value [{v}] is out of range for {names[ftype]}"))
        return
    if ftype in ("float", "double", "half_float", "scaled_float"):
        try:
            if isinstance(v, bool):
                raise ValueError
            float(v)
        except (ValueError, TypeError):
            # Double.parseDouble: NumberFormatException 'For input string: "v"'
            raise doc_field_error(full, ftype, doc_id, v, OSError_(
                "number_format_exception", f'For input string: "{v}"', 400, os_type=False))
        return
    if ftype == "boolean":
        if isinstance(v, bool) or v in ("true", "false", ""):
            return
        raise doc_field_error(full, ftype, doc_id, v, illegal_arg(
            f"Failed to parse value [{_java_map(v)}] as only [true] or [false] are allowed."))
    if ftype in ("date", "date_nanos"):
        fmt = str(fdef.get("format") or DEFAULT_DATE_FORMAT)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if any(a.strip() in ("epoch_millis", "epoch_second") for a in fmt.split("||")):
                return
            raise date_error(full, ftype, doc_id, v, fmt)
        if not date_parses(str(v), fmt):
            raise date_error(full, ftype, doc_id, v, fmt)
        return
    if ftype == "ip":
        try:
            ipaddress.ip_address(str(v))
        except ValueError:
            raise doc_field_error(full, ftype, doc_id, v, illegal_arg(f"'{v}' is not an IP string literal."))
        return
    if ftype == "geo_point":
        problem = _geo_point_problem(v, full)
        if problem:
            # AbstractPointGeometryFieldMapper: "failed to parse field [f] of type [geo_point]"
            # caused by a parse_exception (its wording here is a paraphrase, UNCONFIRMED).
            raise mapper_parsing(f"failed to parse field [{full}] of type [geo_point]",
                                 OSError_("parse_exception", problem, 400))
        return


_GEOHASH = set("0123456789bcdefghjkmnpqrstuvwxyz")


def _geo_point_problem(v: Any, field: str) -> str | None:
    """geo_point accepts {"lat","lon"}, "lat,lon", a geohash, [lon, lat] and "POINT (lon lat)"
    (https://opensearch.org/docs/latest/field-types/supported-field-types/geo-point/)."""
    def coords(lat: Any, lon: Any) -> str | None:
        try:
            la, lo = float(lat), float(lon)
        except (TypeError, ValueError):
            return "latitude and longitude must be numbers"
        if not -90 <= la <= 90:
            return f"illegal latitude value [{la}] for {field}"
        if not -180 <= lo <= 180:
            return f"illegal longitude value [{lo}] for {field}"
        return None
    if isinstance(v, dict):
        if set(v) - {"lat", "lon", "z"} or "lat" not in v or "lon" not in v:
            return "field [lat] and [lon] must be set"
        return coords(v["lat"], v["lon"])
    if isinstance(v, (list, tuple)):
        if len(v) not in (2, 3):
            return "[geo_point] field type does not accept > 3 dimensions"
        return coords(v[1], v[0])
    s = str(v).strip()
    m = re.fullmatch(r"POINT\s*\(\s*(\S+)\s+(\S+)(?:\s+\S+)?\s*\)", s, re.IGNORECASE)
    if m:
        return coords(m.group(2), m.group(1))
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        if len(parts) not in (2, 3):
            return f"failed to parse [{s}], expected 2 or 3 coordinates but found: [{len(parts)}]"
        return coords(parts[0], parts[1])
    if s and all(c in _GEOHASH for c in s.lower()):
        return None
    bad = next((c for c in s if c.lower() not in _GEOHASH), s[:1])
    return f"unsupported symbol [{bad}] in geohash [{s}]"


# --------------------------------------------------------------------------------------------
# Per-domain data
# --------------------------------------------------------------------------------------------

class Index:
    def __init__(self, name: str, settings: dict[str, Any], mapping: dict):
        self.name = name
        self.uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")[:22]
        self.created = int(time.time() * 1000)
        self.settings = settings
        self.mapping = mapping
        self.docs: dict[str, dict] = {}
        self.seq_no = -1


class DomainData:
    def __init__(self) -> None:
        # The access policy last applied to a request (for the stale_policy fault).
        self.last_policy: str | None = None
        self.templates: dict[str, dict] = {}      # name -> {"stored": GET form, "settings", "mappings"}
        self.indices: dict[str, Index] = {}
        self.saved: dict[tuple[str, str], dict] = {}
        self.kibana_seq = -1


def _simple_match(pattern: str, value: str) -> bool:
    # Regex.simpleMatch: "*" is the only wildcard.
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value, re.DOTALL) is not None


def _globs_intersect(p: str, q: str) -> bool:
    """Whether two "*"-patterns match a common string (what MetadataIndexTemplateService
    findConflictingV2Templates decides with Lucene automata: Operations.intersection)."""
    seen, todo = set(), [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(p) and j == len(q):
            return True
        if i < len(p) and p[i] == "*":
            todo.append((i + 1, j))
        if j < len(q) and q[j] == "*":
            todo.append((i, j + 1))
        if i < len(p) and j < len(q):
            a, b = p[i], q[j]
            if a != "*" and b != "*" and a == b:
                todo.append((i + 1, j + 1))
            elif a == "*" and b != "*":
                todo.append((i, j + 1))
            elif b == "*" and a != "*":
                todo.append((i + 1, j))
    return False


def _java_list(items: list) -> str:
    return "[" + ", ".join(str(x) for x in items) + "]"


# INVALID_FILENAME_CHARS as Java's HashSet prints it (Strings.INVALID_FILENAME_CHARS).
INVALID_CHARS_TEXT = '[ , ", *, \\, <, |, ,, >, /, ?]'
INVALID_CHARS = set('\\/*?"<>| ,')


def _validation_failed(errors: list[str]) -> str:
    # ValidationException.getMessage: "Validation Failed: 1: a;2: b;"
    return "Validation Failed: " + "".join(f"{i}: {e};" for i, e in enumerate(errors, 1))


# --------------------------------------------------------------------------------------------
# Composable index templates (_index_template)
# --------------------------------------------------------------------------------------------

TEMPLATE_FIELDS = ["index_patterns", "template", "priority", "composed_of", "version", "_meta", "data_stream"]


def _token(v: Any) -> str:
    if isinstance(v, dict):
        return "START_OBJECT"
    if isinstance(v, list):
        return "START_ARRAY"
    if isinstance(v, bool):
        return "VALUE_BOOLEAN"
    if isinstance(v, (int, float)):
        return "VALUE_NUMBER"
    if v is None:
        return "VALUE_NULL"
    return "VALUE_STRING"


def parse_template_body(body: bytes) -> dict:
    """ComposableIndexTemplate.PARSER (ConstructingObjectParser "index_template", unknown fields
    refused) and Template.PARSER ("template": settings, mappings, aliases).  Returns the parsed
    parts; raises OSError_ with the parser's messages."""
    if not body.strip():
        raise body_required()
    try:
        doc = parse_json(body)
    except JsonError as e:
        raise json_parse_error(e)
    if not isinstance(doc, PDict):
        raise xparse((1, 1), f"[index_template] Expected START_OBJECT but was: {_token(doc)}")
    out: dict = {"given": list(doc.keys())}

    def unsupported(parser: str, d: PDict, key: str) -> OSError_:
        # ObjectParser.FieldParser.assertSupports
        return xparse(d.vpos[key], f"[{parser}] {key} doesn't support values of type: {_token(d[key])}")

    for key in doc:
        v = doc[key]
        if key not in TEMPLATE_FIELDS:
            raise xparse(doc.kpos[key], unknown_field_message("index_template", key, TEMPLATE_FIELDS))
        if key in ("index_patterns", "composed_of"):
            if isinstance(v, str):
                v = [v]
            elif not isinstance(v, list) or any(isinstance(x, (dict, list)) or x is None for x in v):
                raise unsupported("index_template", doc, key)
            out[key] = [("true" if x is True else "false" if x is False else str(x)) for x in v]
        elif key in ("priority", "version"):
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise unsupported("index_template", doc, key)
            try:
                out[key] = int(float(v)) if isinstance(v, (int, float)) else int(float(v.strip()))
                if isinstance(v, str) and not re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", v):
                    raise ValueError
            except ValueError:
                raise xparse(doc.vpos[key], f"[index_template] failed to parse field [{key}]",
                             illegal_arg(f'For input string: "{v}"'))
        elif key in ("_meta", "data_stream"):
            if not isinstance(v, dict):
                raise unsupported("index_template", doc, key)
            out[key] = copy.deepcopy(dict(v))
        elif key == "template":
            if not isinstance(v, dict):
                raise unsupported("index_template", doc, key)
            tpl: dict = {}
            for tk in v:
                tv = v[tk]
                if tk not in ("settings", "mappings", "aliases"):
                    raise xparse(v.vpos[tk], "[index_template] failed to parse field [template]",
                                 xparse(v.kpos[tk], unknown_field_message("template", tk, ["settings", "mappings", "aliases"])))
                if not isinstance(tv, dict):
                    raise xparse(v.vpos[tk], "[index_template] failed to parse field [template]",
                                 unsupported("template", v, tk))
                tpl[tk] = _plain(tv)
            out["template"] = tpl
    if "index_patterns" not in out:
        # ConstructingObjectParser: IllegalArgumentException "Required [index_patterns]"
        raise illegal_arg("Required [index_patterns]")
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def put_template(dd: DomainData, engine: Engine, name: str, body: bytes, query: dict) -> Resp:
    create_raw = query.get("create", "false")
    if create_raw not in ("true", "false", ""):
        raise illegal_arg(f"Failed to parse value [{create_raw}] as only [true] or [false] are allowed.")
    create = create_raw in ("true", "")
    parsed = parse_template_body(body)
    patterns = parsed["index_patterns"]
    priority = parsed.get("priority")
    tpl = parsed.get("template")
    flat = normalize_index_prefix(flatten_settings(tpl["settings"])) if tpl and "settings" in tpl else None
    # PutComposableIndexTemplateAction.Request.validateIndexTemplate
    req_errors = []
    if any(p == "*" for p in patterns) and flat and "index.hidden" in flat:
        req_errors.append("global composable templates may not specify the setting index.hidden")
    if priority is not None and priority < 0:
        req_errors.append("index template priority must be >= 0")
    if req_errors:
        raise OSError_("action_request_validation_exception", _validation_failed(req_errors), 400)
    # MetadataIndexTemplateService.validateV2TemplateRequest: component templates must exist
    # (the stand-in keeps none).
    if parsed.get("composed_of"):
        raise OSError_("invalid_index_template_exception",
                       f"index_template [{name}] invalid, cause [index template [{name}] specifies component templates "
                       f"{_java_list(parsed['composed_of'])} that do not exist]", 400)
    # MetadataIndexTemplateService.addIndexTemplateV2
    if create and name in dd.templates:
        raise illegal_arg(f"index template [{name}] already exists")
    prio = priority or 0
    overlaps = {}
    for other, t in dd.templates.items():
        if other == name:
            continue
        if (t["stored"].get("priority") or 0) != prio:
            continue
        if any(_globs_intersect(p, q) for p in patterns for q in t["stored"]["index_patterns"]):
            overlaps[other] = t["stored"]["index_patterns"]
    if overlaps:
        names = sorted(overlaps)
        raise illegal_arg(
            f"index template [{name}] has index patterns {_java_list(patterns)} matching patterns from existing "
            f"templates [{','.join(names)}] with patterns ({','.join(f'{n} => {_java_list(overlaps[n])}' for n in names)}) "
            f"that have the same priority [{prio}], multiple index templates may not match during index creation, "
            f"please use a different priority")
    # validate(name, template): name, patterns, settings -> InvalidIndexTemplateException
    errors = []
    if " " in name:
        errors.append("name must not contain a space")
    if "," in name:
        errors.append("name must not contain a ','")
    if "#" in name:
        errors.append("name must not contain a '#'")
    if "*" in name:
        errors.append("name must not contain a '*'")
    if name.startswith("_"):
        errors.append("name must not start with '_'")
    if name.lower() != name:
        errors.append("name must be lower cased")
    for p in patterns:
        if " " in p:
            errors.append(f"index_patterns [{p}] must not contain a space")
        if "," in p:
            errors.append(f"index_pattern [{p}] must not contain a ','")
        if "#" in p:
            errors.append(f"index_pattern [{p}] must not contain a '#'")
        if ":" in p:
            errors.append(f"index_pattern [{p}] must not contain a ':'")
        if p.startswith("_"):
            errors.append(f"index_pattern [{p}] must not start with '_'")
        if any(c in INVALID_CHARS and c != "*" for c in p):
            errors.append(f"index_pattern [{p}] must not contain the following characters {INVALID_CHARS_TEXT}")
    if flat is not None:
        errors.extend(validate_settings(flat))
    if errors:
        raise OSError_("invalid_index_template_exception",
                       f"index_template [{name}] invalid, cause [{_validation_failed(errors)}]", 400)
    mappings = tpl.get("mappings") if tpl else None
    if mappings:
        try:
            validate_mapping(mappings, engine)
        except OSError_ as inner:
            # validateCompositeTemplate -> MapperService merge: the mapping error, wrapped in
            # "Failed to parse mapping [_doc]: ..." (MapperService.internalMerge, UNCONFIRMED
            # layer for OpenSearch 2.x), "invalid composite mappings for [n]" and "composable
            # template [n] template after composition is invalid" (dr4gon123/flasi#53 shows the
            # outer two and root_cause being the outermost illegal_argument_exception).
            raise illegal_arg(f"composable template [{name}] template after composition is invalid",
                              illegal_arg(f"invalid composite mappings for [{name}]",
                                          mapper_parsing(f"Failed to parse mapping [_doc]: {inner.reason}", inner)))
    # The stored form, as GET renders it (ComposableIndexTemplate.toXContent / Template.toXContent):
    # settings flattened to "index."-prefixed string values and rendered nested; mappings wrapped
    # in "_doc" when stored and unwrapped when rendered (so they come back as PUT, values
    # untouched - "dynamic": false stays a boolean here); an empty mappings object is not
    # rendered; composed_of is [] when the PUT had a "template" (addIndexTemplateV2 rebuilds the
    # template with composedOf(), never null) and absent otherwise unless given; priority,
    # version, _meta and data_stream only when given.
    stored: dict = {"index_patterns": list(patterns)}
    if tpl is not None:
        rendered: dict = {}
        if flat is not None:
            rendered["settings"] = nest_settings(flat)
        if mappings:
            rendered["mappings"] = copy.deepcopy(mappings)
        if "aliases" in tpl:
            rendered["aliases"] = copy.deepcopy(tpl["aliases"])
        stored["template"] = rendered
        stored["composed_of"] = list(parsed.get("composed_of") or [])
    elif "composed_of" in parsed:
        stored["composed_of"] = list(parsed["composed_of"])
    for key in ("priority", "version", "_meta"):
        if key in parsed:
            stored[key] = parsed[key]
    if "data_stream" in parsed:
        ts = parsed["data_stream"].get("timestamp_field") or {"name": "@timestamp"}
        stored["data_stream"] = {"timestamp_field": ts}
    dd.templates[name] = {"stored": stored, "settings": flat or {}, "mappings": copy.deepcopy(mappings or {})}
    return jresp(200, {"acknowledged": True})


def get_templates(dd: DomainData, name: str | None, head: bool) -> Resp:
    if name is None:
        names = sorted(dd.templates)
    elif "*" in name:
        names = sorted(n for n in dd.templates if _simple_match(name, n))
    elif name in dd.templates:
        names = [name]
    else:
        # TransportGetComposableIndexTemplateAction: ResourceNotFoundException
        # "index template matching [n] not found" (404).
        raise OSError_("resource_not_found_exception", f"index template matching [{name}] not found", 404)
    body = {"index_templates": [{"name": n, "index_template": copy.deepcopy(dd.templates[n]["stored"])} for n in names]}
    # RestGetComposableIndexTemplateAction.getStatus: 404 when a named (wildcard) request matched
    # nothing, 200 for the implicit "all".
    status = 200 if names or name is None else 404
    return jresp(status, body, head=head)


def delete_template(dd: DomainData, name: str) -> Resp:
    # MetadataIndexTemplateService.innerRemoveIndexTemplateV2: wildcard names; none matched ->
    # IndexTemplateMissingException "index_template [n] missing" (404) unless the name is "*".
    names = [n for n in dd.templates if _simple_match(name, n)]
    if not names and name != "*":
        raise OSError_("index_template_missing_exception", f"index_template [{name}] missing", 404)
    for n in names:
        del dd.templates[n]
    return jresp(200, {"acknowledged": True})


# --------------------------------------------------------------------------------------------
# Indices
# --------------------------------------------------------------------------------------------

def validate_index_name(name: str) -> None:
    """MetadataCreateIndexService.validateIndexOrAliasName + validateIndexName:
    InvalidIndexNameException "Invalid index name [n], <why>" (400)."""
    def bad(why: str) -> OSError_:
        return OSError_("invalid_index_name_exception", f"Invalid index name [{name}], {why}", 400,
                        extra={"index_uuid": "_na_", "index": name})
    if any(c in INVALID_CHARS for c in name):
        raise bad(f"must not contain the following characters {INVALID_CHARS_TEXT}")
    if "#" in name:
        raise bad("must not contain '#'")
    if ":" in name:
        raise bad("must not contain ':'")
    if name[:1] in ("_", "-", "+"):
        raise bad("must not start with '_', '-', or '+'")
    if name in (".", ".."):
        raise bad("must not be '.' or '..'")
    if len(name.encode()) > 255:
        raise bad(f"index name is too long, ({len(name.encode())} > 255)")
    if name.lower() != name:
        raise bad("must be lowercase")


def find_template(dd: DomainData, index: str) -> str | None:
    """MetadataIndexTemplateService.findV2Template: the matching template of highest priority."""
    best, best_prio = None, None
    for name in sorted(dd.templates):
        st = dd.templates[name]["stored"]
        if any(_simple_match(p, index) for p in st["index_patterns"]):
            prio = st.get("priority") or 0
            if best_prio is None or prio > best_prio:
                best, best_prio = name, prio
    return best


def create_index(dd: DomainData, engine: Engine, name: str, body: Any) -> Index:
    validate_index_name(name)
    if name in dd.indices:
        existing = dd.indices[name]
        # ResourceAlreadyExistsException "index [n/uuid] already exists" (400)
        raise OSError_("resource_already_exists_exception", f"index [{name}/{existing.uuid}] already exists", 400,
                       extra={"index_uuid": existing.uuid, "index": name})
    body = body or {}
    if not isinstance(body, dict):
        raise OSError_("parse_exception", "Failed to derive xcontent", 400)  # UNCONFIRMED wording
    for key in body:
        if key not in ("settings", "mappings", "aliases"):
            # CreateIndexRequest.source: "unknown key [k] for create index"
            raise OSError_("parse_exception", f"unknown key [{key}] for create index", 400)
    tname = find_template(dd, name)
    settings: dict[str, Any] = {}
    mapping: dict = {}
    if tname is not None:
        settings.update(dd.templates[tname]["settings"])
        mapping = copy.deepcopy(dd.templates[tname]["mappings"])
    req_settings = body.get("settings") or {}
    settings.update(normalize_index_prefix(flatten_settings(req_settings)))
    problems = validate_settings(settings)
    if problems:
        raise illegal_arg(problems[0])  # IndexScopedSettings.validate: the first, others suppressed
    req_mapping = body.get("mappings")
    if isinstance(req_mapping, dict) and len(req_mapping) == 1 and "_doc" in req_mapping:
        req_mapping = req_mapping["_doc"]
    if req_mapping:
        mapping = merge_mappings(mapping, req_mapping)
    try:
        validate_mapping(mapping, engine)
    except OSError_ as inner:
        # MapperService: MapperParsingException "Failed to parse mapping [_doc]: <reason>"
        raise mapper_parsing(f"Failed to parse mapping [_doc]: {inner.reason}", inner)
    settings.setdefault("index.number_of_shards", "1")
    settings.setdefault("index.number_of_replicas", "1")
    idx = Index(name, settings, mapping)
    dd.indices[name] = idx
    return idx


def resolve_indices(dd: DomainData, expr: str, ignore_unavailable: bool, allow_no_indices: bool) -> list[str]:
    """IndexNameExpressionResolver: comma-separated names, "*" wildcards and "_all"; a missing
    concrete name -> index_not_found_exception unless ignore_unavailable; wildcards that match
    nothing -> index_not_found_exception when allow_no_indices=false.  Wildcards skip hidden
    (dot-prefixed) indices unless the pattern starts with a dot."""
    names: list[str] = []
    parts = [p for p in expr.split(",") if p] if expr not in ("", "_all") else ["*"]
    for part in parts:
        if "*" in part:
            hits = [n for n in sorted(dd.indices) if _simple_match(part, n) and (not n.startswith(".") or part.startswith("."))]
            if not hits and not allow_no_indices:
                raise index_not_found(part)
            names.extend(h for h in hits if h not in names)
        elif part in dd.indices:
            if part not in names:
                names.append(part)
        elif not ignore_unavailable:
            raise index_not_found(part)
    if not names and not allow_no_indices:
        raise index_not_found(expr or "_all")
    return names


def _shards() -> dict:
    return {"total": 2, "successful": 1, "failed": 0}


def index_doc(dd: DomainData, engine: Engine, index: str, doc_id: str | None, source: Any, op: str) -> tuple[int, dict]:
    """One index/create operation (TransportIndexAction): creates the index from the templates
    when absent (auto-create), maps new fields dynamically, checks values.  Returns
    (status, the response body of the operation)."""
    if index not in dd.indices:
        create_index(dd, engine, index, None)
    idx = dd.indices[index]
    # Auto-generated ids are 20 URL-safe base64 characters (UUIDs.base64UUID).
    new_id = doc_id if doc_id is not None else base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()
    existing = idx.docs.get(new_id)
    if op == "create" and existing is not None:
        # VersionConflictEngineException (409)
        raise OSError_("version_conflict_engine_exception",
                       f"[{new_id}]: version conflict, document already exists (current version [{existing['_version']}])",
                       409, extra={"index_uuid": idx.uuid, "shard": "0", "index": index})
    idx.mapping = parse_document(idx.mapping, source, new_id)
    idx.seq_no += 1
    version = existing["_version"] + 1 if existing else 1
    idx.docs[new_id] = {"_source": source, "_version": version, "_seq_no": idx.seq_no}
    result = {"_index": index}
    if engine.doc_type_in_responses:
        result["_type"] = "_doc"
    result.update({"_id": new_id, "_version": version, "result": "updated" if existing else "created",
                   "_shards": _shards(), "_seq_no": idx.seq_no, "_primary_term": 1})
    return (200 if existing else 201), result


def bulk(dd: DomainData, engine: Engine, default_index: str | None, body: bytes) -> Resp:
    """_bulk (NDJSON action lines followed by sources): index, create and delete.  Each item
    answers like the single-document API; "errors" says whether any failed."""
    started = time.time()
    lines = body.decode("utf-8", "replace").split("\n")
    items, errors, i = [], False, 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line:
            continue
        try:
            action = json.loads(line)
        except ValueError:
            raise illegal_arg(f"Malformed action/metadata line [{i}], expected START_OBJECT or END_OBJECT but found [VALUE_STRING]")
        if not isinstance(action, dict) or len(action) != 1:
            raise illegal_arg(f"Malformed action/metadata line [{i}], expected START_OBJECT but found [{_token(action)}]")
        op, meta = next(iter(action.items()))
        if op not in ("index", "create", "delete", "update"):
            raise illegal_arg(f"Malformed action/metadata line [{i}], expected field [create], [delete], [index] or [update] but found [{op}]")
        meta = meta or {}
        index = meta.get("_index", default_index)
        doc_id = meta.get("_id")
        doc_id = str(doc_id) if doc_id is not None else None
        source = None
        if op != "delete":
            while i < len(lines) and not lines[i].strip():
                i += 1
            raw = lines[i] if i < len(lines) else ""
            i += 1
            try:
                source = json.loads(raw)
            except ValueError:
                source = raw
        item: dict = {"_index": index}
        if engine.doc_type_in_responses:
            item["_type"] = "_doc"
        try:
            if index is None:
                raise OSError_("action_request_validation_exception", _validation_failed(["index is missing"]), 400)
            if op == "update":
                raise illegal_arg("the stand-in does not emulate bulk updates")  # stand-in limit
            if op == "delete":
                idx = dd.indices.get(index)
                found = idx is not None and doc_id in idx.docs
                if found:
                    del idx.docs[doc_id]
                item.update({"_id": doc_id, "_version": 1, "result": "deleted" if found else "not_found",
                             "_shards": _shards(), "status": 200 if found else 404})
            else:
                status, result = index_doc(dd, engine, index, doc_id, source, op)
                item = result
                item["status"] = status
        except OSError_ as e:
            errors = True
            item.update({"_id": doc_id, "status": e.status, "error": e.render()})
        items.append({op: item})
    return jresp(200, {"took": int((time.time() - started) * 1000), "errors": errors, "items": items})


# --------------------------------------------------------------------------------------------
# Dashboards / Kibana saved objects
# --------------------------------------------------------------------------------------------

# migrationVersion of the types the stand-in accepts: the newest migration of each type in
# OpenSearch Dashboards / Kibana 7.10 (index-pattern: "7.6.0", index_pattern_migrations.ts;
# others UNCONFIRMED).
SAVED_TYPES = {"index-pattern": "7.6.0", "visualization": "7.10.0", "dashboard": "7.9.3",
               "search": "7.9.3", "config": "7.9.0"}


def _boom(status: int, message: str) -> Resp:
    # Hapi's Boom error payload: {"statusCode", "error", "message"}.
    phrase = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}[status]
    raw = json.dumps({"statusCode": status, "error": phrase, "message": message}).encode()
    return Resp(status, [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(raw)))], raw)


def _so_version(obj: dict) -> str:
    # encodeHitVersion: base64 of JSON [seq_no, primary_term] (src/core/server/saved_objects/version).
    return base64.b64encode(json.dumps([obj["_seq_no"], 1], separators=(",", ":")).encode()).decode()


def _so_render(obj: dict) -> dict:
    # getSavedObjectFromSource (src/core/server/saved_objects/service/lib/repository.ts)
    return {"id": obj["id"], "type": obj["type"], "namespaces": ["default"], "updated_at": obj["updated_at"],
            "version": _so_version(obj), "attributes": copy.deepcopy(obj["attributes"]),
            "references": copy.deepcopy(obj["references"]), "migrationVersion": dict(obj["migrationVersion"])}


def _so_payload(body: bytes) -> Any:
    """A saved-object write's body (create and update validate it alike: routes/create.ts,
    update.ts): the parsed JSON, or the 400 to answer."""
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return _boom(400, "Invalid request payload JSON format")
    if not isinstance(payload, dict) or not isinstance(payload.get("attributes"), dict):
        got = "undefined" if not isinstance(payload, dict) or "attributes" not in payload else type(payload["attributes"]).__name__
        return _boom(400, f"[request body.attributes]: expected value of type [object] but got [{got}]")
    return payload


def saved_objects(dd: DomainData, engine: Engine, method: str, rest: str, query: dict, headers: dict, body: bytes) -> Resp:
    """POST/GET/PUT/DELETE <dashboards>/api/saved_objects/<type>/<id> (OpenSearch Dashboards
    src/core/server/saved_objects/routes/{create,get,update,delete}.ts; SavedObjectsErrorHelpers:
    "Saved object [type/id] not found" 404, "Saved object [type/id] conflict" 409)."""
    parts = [p for p in rest.split("/") if p]  # dpath is already decoded
    if method not in ("GET", "HEAD"):
        xsrf, version = engine.xsrf_headers
        if xsrf not in headers and version not in headers:
            return _boom(400, f"Request must contain a {xsrf} header.")
    if not parts or parts[0] not in SAVED_TYPES:
        if parts and not parts[0].startswith("_") and method in ("POST", "PUT"):
            # SavedObjectsErrorHelpers.createUnsupportedTypeError (Boom message "<reason>: Bad Request")
            return _boom(400, f"Unsupported saved object type: '{parts[0]}': Bad Request")
        return _boom(404, "Not Found")  # _find, _import, ... are not emulated
    stype = parts[0]
    sid = parts[1] if len(parts) > 1 else None
    key = (stype, sid or "")
    if method == "POST":
        if len(parts) > 2:
            return _boom(404, "Not Found")
        payload = _so_payload(body)
        if isinstance(payload, Resp):
            return payload
        if sid is None:
            sid = str(uuid.uuid1())
            key = (stype, sid)
        overwrite = query.get("overwrite", "false") in ("true", "")
        if key in dd.saved and not overwrite:
            return _boom(409, f"Saved object [{stype}/{sid}] conflict")
        dd.kibana_seq += 1
        obj = {"id": sid, "type": stype, "attributes": copy.deepcopy(payload["attributes"]),
               "references": copy.deepcopy(payload.get("references") or []),
               "migrationVersion": payload.get("migrationVersion") or {stype: SAVED_TYPES[stype]},
               "updated_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
               "_seq_no": dd.kibana_seq}
        dd.saved[key] = obj
        # create() answers _rawToSavedObject: type, id, attributes, references, migrationVersion,
        # updated_at, version, namespaces ["default"] for single-namespace types.
        out = {"type": stype, "id": sid, "attributes": copy.deepcopy(obj["attributes"]),
               "references": copy.deepcopy(obj["references"]), "migrationVersion": dict(obj["migrationVersion"]),
               "updated_at": obj["updated_at"], "version": _so_version(obj), "namespaces": ["default"]}
        return jresp(200, out)
    if sid is None or len(parts) > 2:
        return _boom(404, "Not Found")
    if method in ("GET", "HEAD"):
        obj = dd.saved.get(key)
        if obj is None:
            return _boom(404, f"Saved object [{stype}/{sid}] not found")
        return jresp(200, _so_render(obj), head=method == "HEAD")
    if method == "DELETE":
        if key not in dd.saved:
            return _boom(404, f"Saved object [{stype}/{sid}] not found")
        del dd.saved[key]
        return jresp(200, {})
    if method == "PUT":
        # The update API (routes/update.ts, repository.update): a partial update of an existing
        # object (the given attributes replace theirs, the others stay); 404 when it is missing.
        obj = dd.saved.get(key)
        if obj is None:
            return _boom(404, f"Saved object [{stype}/{sid}] not found")
        payload = _so_payload(body)
        if isinstance(payload, Resp):
            return payload
        dd.kibana_seq += 1
        obj["attributes"].update(copy.deepcopy(payload["attributes"]))
        if "references" in payload:
            obj["references"] = copy.deepcopy(payload["references"] or [])
        obj["updated_at"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        obj["_seq_no"] = dd.kibana_seq
        out = {"id": sid, "type": stype, "updated_at": obj["updated_at"], "version": _so_version(obj),
               "namespaces": ["default"], "references": copy.deepcopy(obj["references"]),
               "attributes": copy.deepcopy(payload["attributes"])}
        return jresp(200, out)
    return _boom(404, "Not Found")


# --------------------------------------------------------------------------------------------
# Stand-in state: data per domain instance, faults, log
# --------------------------------------------------------------------------------------------

class _Standin:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data: dict[int, tuple[Any, DomainData]] = {}  # id(moto domain) -> (domain, data)
        self.log: list[dict] = []
        self.status_fault: int | None = None
        self.status_times = 0
        self.lost_reply = 0
        self.fault_path: str | None = None
        self.stale_policy = 0
        self.client_ip: str | None = None

    def domain_data(self, domain: Any) -> DomainData:
        # Keyed on the moto domain OBJECT (held here, so its id cannot be reused): a domain
        # deleted and created again with the same name (same DomainId and ARN in moto) is a new
        # object and starts empty, like a new domain on AWS.
        entry = self.data.get(id(domain))
        if entry is None or entry[0] is not domain:
            entry = (domain, DomainData())
            self.data[id(domain)] = entry
        return entry[1]


STANDIN = _Standin()


def reset() -> None:
    """POST /_pipectl/reset: faults, the client-ip override and the log (not the data)."""
    with STANDIN.lock:
        STANDIN.log.clear()
        STANDIN.status_fault, STANDIN.status_times, STANDIN.lost_reply = None, 0, 0
        STANDIN.fault_path = None
        STANDIN.stale_policy = 0
        STANDIN.client_ip = None


def faults_view() -> dict:
    with STANDIN.lock:
        return {"status": STANDIN.status_fault, "times": STANDIN.status_times,
                "lost_reply": STANDIN.lost_reply, "path": STANDIN.fault_path, "stale_policy": STANDIN.stale_policy,
                "client_ip": STANDIN.client_ip or START_CLIENT_IP}


def arm(value: Any) -> str | None:
    """Arms the "search" faults; returns an error message or None."""
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        if not isinstance(entry, dict):
            return "search fault must be an object"
        unknown = set(entry) - {"status", "times", "lost_reply", "client_ip", "path", "stale_policy"}
        if unknown:
            return f"unknown search fault field(s): {sorted(unknown)}"
        if "status" in entry:
            status = entry["status"]
            if not isinstance(status, int) or not (status == 429 or 500 <= status <= 599):
                return "search status fault must be 429 or 5xx"
            times = entry.get("times", 1)
            if not isinstance(times, int) or times < 0:
                return "search fault times must be a non-negative integer"
        for k in ("lost_reply", "stale_policy"):
            if k in entry and (not isinstance(entry[k], int) or entry[k] < 0):
                return f"search {k} must be a non-negative integer"
        if entry.get("client_ip") is not None:
            try:
                ipaddress.ip_address(str(entry["client_ip"]))
            except ValueError:
                return f"search client_ip is not an IP address: {entry['client_ip']!r}"
    with STANDIN.lock:
        for entry in entries:
            if "status" in entry:
                STANDIN.status_fault = entry["status"]
                STANDIN.status_times = entry.get("times", 1)
            if "lost_reply" in entry:
                STANDIN.lost_reply = entry["lost_reply"]
            if "client_ip" in entry:
                STANDIN.client_ip = entry["client_ip"]
            if "stale_policy" in entry:
                STANDIN.stale_policy = entry["stale_policy"]
            if "status" in entry or "lost_reply" in entry:
                STANDIN.fault_path = entry.get("path")
    return None


_HTML_5XX = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}


def fault_response(status: int, engine: Engine | None) -> Resp:
    """The body each armed status is answered with.
    429: the engine's rejection (AWS knowledge center "How do I resolve search or write
      rejections in OpenSearch Service?": es_rejected_execution_exception on Elasticsearch; on
      OpenSearch the class is OpenSearchRejectedExecutionException, rendered
      "rejected_execution_exception" because OpenSearchException.getExceptionName strips the
      "OpenSearch" prefix).  The reason text is a paraphrase.
    502/504: the load balancer in front of the domain answers an HTML page (UNCONFIRMED: the
      default error page of a load balancer, reproduced in nginx's format).
    503: the engine without an elected cluster manager (master_not_discovered_exception on
      Elasticsearch, cluster_manager_not_discovered_exception on OpenSearch 2.x), UNCONFIRMED as
      what a domain answers in a given outage.
    500 and other 5xx: a generic engine exception (type "exception"), UNCONFIRMED."""
    os_engine = engine is None or engine.opensearch
    if status == 429:
        etype = "rejected_execution_exception" if os_engine else "es_rejected_execution_exception"
        reason = ("rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, "
                  "all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]"
                  if os_engine else
                  "rejected execution of org.elasticsearch.transport.TransportService$7@1 on "
                  "EsThreadPoolExecutor[name = node/write, queue capacity = 200, active threads = 2, queued tasks = 200]")
        return OSError_(etype, reason, 429).resp()
    if status in _HTML_5XX:
        title = _HTML_5XX[status]
        raw = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
               "</body>\r\n</html>\r\n").encode()
        return Resp(status, [("Content-Type", "text/html"), ("Content-Length", str(len(raw)))], raw)
    if status == 503:
        etype = "cluster_manager_not_discovered_exception" if os_engine and (engine is None or engine.major >= 2) \
            else "master_not_discovered_exception"
        return OSError_(etype, None, 503).resp()
    return OSError_("exception", f"stand-in fault: HTTP {status}", status).resp()


# --------------------------------------------------------------------------------------------
# Domains (moto's opensearch backend, all accounts and regions)
# --------------------------------------------------------------------------------------------

class DomainInfo:
    def __init__(self, account: str, region: str, domain: Any):
        self.account, self.region, self.domain = account, region, domain
        self.name = domain.domain_name
        version = domain.engine_version.options if getattr(domain, "engine_version", None) else ""
        if getattr(domain, "is_es", False) and getattr(domain, "elasticsearch_version", None):
            version = f"Elasticsearch_{domain.elasticsearch_version}"
        self.engine = Engine(version)
        self.policy = domain.access_policies or ""


def all_domains() -> list[DomainInfo]:
    from moto.opensearch.models import opensearch_backends
    out = []
    for account, acct in list(dict.items(opensearch_backends)):
        for region, backend in list(dict.items(acct)):
            for domain in list(backend.domains.values()):
                out.append(DomainInfo(account, region, domain))
    return out


def _transition(region: str, name: str) -> str | None:
    """aws_like's asynchronous state of the domain ("creating", "updating", "deleting")."""
    try:
        import aws_like
    except ImportError:
        return None
    with aws_like.STATE.lock:
        st = aws_like.STATE.domains.get((region, name))
        return st.status if st is not None else None


def resolve(rest: str) -> tuple[DomainInfo | None, str, Resp | None]:
    """(domain, domain path, refusal)."""
    explicit = None
    if rest.startswith("/domain/"):
        tail = rest[len("/domain/"):]
        explicit, _, sub = tail.partition("/")
        explicit = urllib.parse.unquote(explicit)
        rest = "/" + sub
    domains = all_domains()
    if explicit is not None:
        domains = [d for d in domains if d.name == explicit]
    if not domains:
        return None, rest, aws_message(503, "stand-in: no domain" + (f" named {explicit}" if explicit else ""))
    if len(domains) > 1:
        names = ", ".join(sorted(f"{d.name} ({d.region})" for d in domains))
        how = ("the name is used in several regions or accounts" if explicit else
               f"name one with {PREFIX}/domain/<domain-name>/<path>")
        return None, rest, aws_message(400, f"stand-in: {len(domains)} OpenSearch domains exist ({names}); {how}")
    info = domains[0]
    state = _transition(info.region, info.name)
    # While a domain is being created it has no endpoint yet (API_DomainStatus.html: Endpoint is
    # absent until creation completes; aws_like drops it while "creating"); a deleted domain's
    # endpoint stops answering.  Neither would answer on AWS, so the stand-in says 503.
    if state == "creating":
        return info, rest, aws_message(503, f"stand-in: domain {info.name} is being created (no endpoint yet)")
    if state == "deleting" or getattr(info.domain, "deleted", False):
        return info, rest, aws_message(503, f"stand-in: domain {info.name} is being deleted")
    return info, rest, None


def state_view() -> dict:
    out: dict = {}
    with STANDIN.lock:
        live = {id(d.domain): d for d in all_domains()}
        for key in list(STANDIN.data):
            if key not in live or STANDIN.data[key][0] is not live[key].domain:
                del STANDIN.data[key]  # the domain is gone: forget its data
        for key, info in live.items():
            dd = STANDIN.domain_data(info.domain)
            out[info.name] = {
                "templates": {n: copy.deepcopy(t["stored"]) for n, t in sorted(dd.templates.items())},
                "indices": {n: {"mappings": render_mapping(i.mapping), "docs": len(i.docs)} for n, i in sorted(dd.indices.items())},
                "saved_objects": {f"{t}/{i}": _so_render(o) for (t, i), o in sorted(dd.saved.items())},
            }
    return out


# --------------------------------------------------------------------------------------------
# REST routing
# --------------------------------------------------------------------------------------------

GLOBAL_PARAMS = {"pretty", "human", "error_trace", "filter_path", "format", "source", "source_content_type"}


def check_params(dpath: str, query: dict, allowed: set[str]) -> None:
    """BaseRestHandler.unrecognized: "request [path] contains unrecognized parameter(s): [x]"
    (with " -> did you mean [y]?" for candidates more than 0.5 similar)."""
    bad = [k for k in query if k not in allowed and k not in GLOBAL_PARAMS]
    if not bad:
        return
    candidates = sorted(allowed | GLOBAL_PARAMS)
    pieces = []
    for k in bad:
        keys = _suggest(k, candidates, 0.5)
        piece = f"[{k}]"
        if keys:
            piece += f" -> did you mean [{keys[0]}]?" if len(keys) == 1 else f" -> did you mean any of [{', '.join(keys)}]?"
        pieces.append(piece)
    raise illegal_arg(f"request [{dpath}] contains unrecognized parameter{'s' if len(bad) > 1 else ''}: {', '.join(pieces)}")


def _bool_param(query: dict, name: str, default: bool) -> bool:
    if name not in query:
        return default
    v = query[name]
    if v in ("", "true"):
        return True
    if v == "false":
        return False
    raise illegal_arg(f"Failed to parse value [{v}] as only [true] or [false] are allowed.")


def _json_body(body: bytes, required: bool) -> Any:
    if not body.strip():
        if required:
            raise body_required()
        return None
    try:
        return _plain(parse_json(body))
    except JsonError as e:
        raise json_parse_error(e)


MASTER = {"master_timeout", "cluster_manager_timeout", "timeout"}


def route(info: DomainInfo, dd: DomainData, method: str, dpath: str, raw_query: str, query: dict,
          headers: dict, body: bytes) -> Resp:
    engine = info.engine
    head = method == "HEAD"
    uri = dpath + (f"?{raw_query}" if raw_query else "")
    dash = engine.dashboards_prefix
    if dpath == dash or dpath.startswith(dash + "/"):
        sub = dpath[len(dash):]
        if sub.startswith("/api/saved_objects/"):
            return saved_objects(dd, engine, method, sub[len("/api/saved_objects/"):], query, headers, body)
        return _boom(404, "Not Found")
    if body:
        ctype = headers.get("content-type")
        media = (ctype or "").split(";")[0].strip().lower()
        if media not in ("application/json", "application/x-ndjson", "application/smile", "application/yaml",
                         "application/cbor", "application/vnd.opensearch+json", "application/vnd.elasticsearch+json"):
            # RestController.dispatchRequest -> sendContentTypeErrorMessage: a body needs a
            # supported Content-Type; 406 {"error": "Content-Type header is missing" / "Content-Type
            # header [x] is not supported", "status": 406} (wording reconstructed from the source).
            message = "Content-Type header is missing" if ctype is None else f"Content-Type header [{ctype}] is not supported"
            return jresp(406, {"error": message, "status": 406})
    segs = [s for s in dpath.split("/") if s]
    if not segs:
        if method in ("GET", "HEAD"):
            # GET / (RestMainAction): name, cluster_name, cluster_uuid, version, tagline.
            number = f"{engine.major}.{engine.minor}.0"
            version = {"number": number, "build_type": "tar", "lucene_version": "9.7.0" if engine.opensearch else "8.7.0"}
            if engine.opensearch:
                version = {"distribution": "opensearch", **version}
            return jresp(200, {"name": "stand-in", "cluster_name": f"{info.account}:{info.name}",
                               "cluster_uuid": "stand-in", "version": version,
                               "tagline": "The OpenSearch Project: https://opensearch.org/" if engine.opensearch
                               else "You Know, for Search"}, head=head)
        return incorrect_method(uri, method, ["HEAD", "GET"])
    first = segs[0]
    if first == "_index_template":
        if not engine.composable_templates:
            return _pre_78_index_template(dd, engine, method, segs, uri)
        if len(segs) == 1:
            if method in ("GET", "HEAD"):
                check_params(dpath, query, {"local", "flat_settings"} | MASTER)
                return get_templates(dd, None, head)
            return incorrect_method(uri, method, ["GET"])
        if len(segs) == 2:
            name = segs[1]
            if method in ("PUT", "POST"):
                check_params(dpath, query, {"create", "cause"} | MASTER)
                return put_template(dd, engine, name, body, query)
            if method in ("GET", "HEAD"):
                check_params(dpath, query, {"local", "flat_settings"} | MASTER)
                return get_templates(dd, name, head)
            if method == "DELETE":
                check_params(dpath, query, MASTER)
                return delete_template(dd, name)
            return incorrect_method(uri, method, ["POST", "PUT", "GET", "HEAD", "DELETE"])
        return no_handler(method, uri)
    if first == "_bulk" and len(segs) == 1:
        if method in ("POST", "PUT"):
            check_params(dpath, query, {"refresh", "routing", "timeout", "pipeline", "wait_for_active_shards",
                                        "require_alias", "_source", "_source_includes", "_source_excludes"})
            return bulk(dd, engine, None, body)
        return incorrect_method(uri, method, ["POST", "PUT"])
    if first == "_mapping" and len(segs) == 1:
        return get_mapping(dd, engine, "_all", method, dpath, query, body)
    if first.startswith("_"):
        return no_handler(method, uri)
    index = first
    if len(segs) == 1:
        if method == "PUT":
            check_params(dpath, query, {"wait_for_active_shards", "include_type_name"} | MASTER)
            create_index(dd, engine, index, _json_body(body, False))
            return jresp(200, {"acknowledged": True, "shards_acknowledged": True, "index": index})
        if method == "DELETE":
            check_params(dpath, query, {"ignore_unavailable", "allow_no_indices", "expand_wildcards"} | MASTER)
            # DeleteIndexRequest's default IndicesOptions: ignore_unavailable=false,
            # allow_no_indices=true.
            names = resolve_indices(dd, index, _bool_param(query, "ignore_unavailable", False),
                                    _bool_param(query, "allow_no_indices", True))
            for n in names:
                del dd.indices[n]
            return jresp(200, {"acknowledged": True})
        if method in ("GET", "HEAD"):
            try:
                names = resolve_indices(dd, index, _bool_param(query, "ignore_unavailable", False),
                                        _bool_param(query, "allow_no_indices", True))
            except OSError_ as e:
                if head:
                    return jresp(404, None, head=True)
                raise e
            if head:
                return jresp(200 if names else 404, None, head=True)
            out = {}
            for n in names:
                i = dd.indices[n]
                settings = dict(i.settings)
                settings.update({"index.provided_name": n, "index.creation_date": str(i.created),
                                 "index.uuid": i.uuid, "index.version.created": "136217827"})
                out[n] = {"aliases": {}, "mappings": render_mapping(i.mapping), "settings": nest_settings(settings)}
            return jresp(200, out)
        return incorrect_method(uri, method, ["HEAD", "DELETE", "PUT", "GET"])
    second = segs[1]
    doc_params = {"refresh", "routing", "timeout", "version", "version_type", "op_type", "pipeline",
                  "if_seq_no", "if_primary_term", "require_alias", "wait_for_active_shards"}
    if second == "_doc" and len(segs) == 2:
        if method == "POST":
            check_params(dpath, query, doc_params)
            status, result = index_doc(dd, engine, index, None, _json_body(body, True), "index")
            return jresp(status, result)
        return incorrect_method(uri, method, ["POST"])
    if second in ("_doc", "_create") and len(segs) == 3:
        doc_id = segs[2]
        if method in ("PUT", "POST"):
            check_params(dpath, query, doc_params)
            op = "create" if second == "_create" or query.get("op_type") == "create" else "index"
            status, result = index_doc(dd, engine, index, doc_id, _json_body(body, True), op)
            return jresp(status, result)
        if second == "_doc" and method in ("GET", "HEAD"):
            idx = dd.indices.get(index)
            if idx is None:
                raise index_not_found(index)
            doc = idx.docs.get(doc_id)
            base = {"_index": index}
            if engine.doc_type_in_responses:
                base["_type"] = "_doc"
            base["_id"] = doc_id
            if doc is None:
                return jresp(404, {**base, "found": False}, head=head)
            return jresp(200, {**base, "_version": doc["_version"], "_seq_no": doc["_seq_no"], "_primary_term": 1,
                               "found": True, "_source": doc["_source"]}, head=head)
        if second == "_doc" and method == "DELETE":
            idx = dd.indices.get(index)
            if idx is None:
                raise index_not_found(index)
            found = idx.docs.pop(doc_id, None)
            base = {"_index": index, "_id": doc_id, "_version": (found or {}).get("_version", 0) + 1,
                    "result": "deleted" if found else "not_found", "_shards": _shards(),
                    "_seq_no": idx.seq_no + 1, "_primary_term": 1}
            idx.seq_no += 1
            return jresp(200 if found else 404, base)
        return incorrect_method(uri, method, ["PUT", "POST", "GET", "HEAD", "DELETE"])
    if second == "_mapping" and len(segs) == 2:
        return get_mapping(dd, engine, index, method, dpath, query, body)
    if second == "_bulk" and len(segs) == 2:
        if method in ("POST", "PUT"):
            return bulk(dd, engine, index, body)
        return incorrect_method(uri, method, ["POST", "PUT"])
    if second == "_count" and len(segs) == 2 and method in ("GET", "POST"):
        names = resolve_indices(dd, index, _bool_param(query, "ignore_unavailable", False),
                                _bool_param(query, "allow_no_indices", True))
        return jresp(200, {"count": sum(len(dd.indices[n].docs) for n in names),
                           "_shards": {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0}})
    if second == "_search" and len(segs) == 2 and method in ("GET", "POST"):
        return search(dd, index, query, body)
    if second == "_refresh" and len(segs) == 2 and method in ("GET", "POST"):
        names = resolve_indices(dd, index, False, True)
        return jresp(200, {"_shards": {"total": 2 * len(names), "successful": len(names), "failed": 0}})
    return no_handler(method, uri)


def search(dd: DomainData, expr: str, query: dict, body: bytes) -> Resp:
    """<expr>/_search with no query or match_all only (the stand-in does not evaluate queries):
    the response shape of SearchResponse (took, timed_out, _shards, hits.total {value,
    relation}, hits.hits with _index, _id, _score, _source)."""
    names = resolve_indices(dd, expr, _bool_param(query, "ignore_unavailable", False),
                            _bool_param(query, "allow_no_indices", True))
    req = _json_body(body, False) or {}
    if not isinstance(req, dict) or set(req.get("query", {"match_all": {}})) - {"match_all"} or set(req) - {"query", "size", "from"}:
        raise illegal_arg("stand-in: only match_all searches (with size/from) are emulated")
    size = int(query.get("size", req.get("size", 10)))
    start = int(query.get("from", req.get("from", 0)))
    hits = [{"_index": n, "_id": i, "_score": 1.0, "_source": d["_source"]}
            for n in names for i, d in dd.indices[n].docs.items()]
    return jresp(200, {"took": 1, "timed_out": False,
                       "_shards": {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0},
                       "hits": {"total": {"value": len(hits), "relation": "eq"}, "max_score": 1.0 if hits else None,
                                "hits": hits[start:start + size]}})


def get_mapping(dd: DomainData, engine: Engine, expr: str, method: str, dpath: str, query: dict, body: bytes) -> Resp:
    """GET <expr>/_mapping (RestGetMappingAction, IndicesOptions.strictExpandOpen: a missing
    concrete index is an error unless ignore_unavailable=true, wildcards may match nothing unless
    allow_no_indices=false): {"<index>": {"mappings": {...}}}."""
    if method == "PUT" or method == "POST":
        return put_mapping(dd, engine, expr, dpath, query, body)
    if method not in ("GET", "HEAD"):
        return incorrect_method(dpath, method, ["GET", "PUT", "POST"])
    check_params(dpath, query, {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "local",
                                "include_type_name"} | MASTER)
    names = resolve_indices(dd, expr, _bool_param(query, "ignore_unavailable", False),
                            _bool_param(query, "allow_no_indices", True))
    return jresp(200, {n: {"mappings": render_mapping(dd.indices[n].mapping)} for n in names}, head=method == "HEAD")


def put_mapping(dd: DomainData, engine: Engine, expr: str, dpath: str, query: dict, body: bytes) -> Resp:
    """PUT <index>/_mapping: merged into the index mapping (MergeReason.MAPPING_UPDATE; the
    stand-in does not refuse incompatible changes of an existing field)."""
    check_params(dpath, query, {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "write_index_only",
                                "include_type_name"} | MASTER)
    mapping = _json_body(body, True)
    names = resolve_indices(dd, expr, False, True)
    for n in names:
        idx = dd.indices[n]
        merged = merge_mappings(idx.mapping, mapping if isinstance(mapping, dict) else {})
        try:
            validate_mapping(merged, engine)
        except OSError_ as inner:
            raise mapper_parsing(f"Failed to parse mapping [_doc]: {inner.reason}", inner)
        idx.mapping = merged
    return jresp(200, {"acknowledged": True})


def _pre_78_index_template(dd: DomainData, engine: Engine, method: str, segs: list[str], uri: str) -> Resp:
    """Elasticsearch before 7.8 has no _index_template route: the path falls to the generic
    index routes.  /_index_template/<name> matches only "POST /{index}/{type}" (index a document
    with a generated id), so other methods answer 405 "allowed: [POST]" (the same happens to
    /_component_template on clusters without it, elastic/elasticsearch-js#1632) and POST tries
    to index into "_index_template", an invalid index name.  Reconstructed from the route tables,
    UNCONFIRMED against a real 7.7 domain."""
    if len(segs) == 2:
        if method == "POST":
            validate_index_name(segs[0])
        return incorrect_method(uri, method, ["POST"])
    if len(segs) == 1:
        if method == "PUT":
            validate_index_name(segs[0])
        if method == "HEAD":
            return jresp(404, None, head=True)
        raise index_not_found(segs[0])
    return no_handler(method, uri)


# --------------------------------------------------------------------------------------------
# Entry point (called by aws_like.AwsLike for the paths `owns` accepts)
# --------------------------------------------------------------------------------------------

def _read_body(environ: dict) -> bytes:
    stream = environ.get("wsgi.input")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if stream is None:
        return b""
    if length > 0:
        return stream.read(length)
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    return b""


MUTATING = {"PUT", "POST", "DELETE", "PATCH"}


def handle(environ: dict) -> Resp:
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = environ.get("PATH_INFO", "")
    body = _read_body(environ)
    if path == LOG_PATH:
        with STANDIN.lock:
            return jresp(200, copy.deepcopy(STANDIN.log))
    if path == STATE_PATH:
        return jresp(200, state_view())
    rest = path[len(PREFIX):] or "/"
    info, dpath, refusal = resolve(rest)
    raw_query = environ.get("QUERY_STRING", "")
    query = dict(urllib.parse.parse_qsl(raw_query, keep_blank_values=True))
    with STANDIN.lock:
        client_ip = STANDIN.client_ip or START_CLIENT_IP or environ.get("REMOTE_ADDR", "")
    entry = {"method": method, "domain": info.name if info else None, "path": dpath, "query": raw_query,
             "status": 0, "signed": False, "signature_ok": False, "principal": None, "client_ip": client_ip}

    def done(resp: Resp) -> Resp:
        entry["status"] = resp.status
        with STANDIN.lock:
            STANDIN.log.append(entry)
        return resp

    if refusal is not None:
        return done(refusal)
    assert info is not None
    auth = verify_sigv4(environ, body, info.region)
    entry["signed"], entry["signature_ok"] = auth.signed, auth.ok
    if auth.error is not None:
        return done(auth.error)
    entry["principal"] = auth.caller.arn if auth.caller else "anonymous"
    # Action es:ESHttp<Method>, resource arn:aws:es:REGION:ACCOUNT:domain/NAME/<path> (ac.html:
    # "the trailing /* ... indicates that resource-based policies only apply to the domain's
    # subresources"; es:* is equivalent to es:ESHttp* in these policies).
    action = "es:ESHttp" + method.capitalize()
    resource = f"arn:aws:es:{info.region}:{info.account}:domain/{info.name}/{dpath.lstrip('/')}"
    policy = info.policy
    with STANDIN.lock:
        # The stale_policy fault: after the domain's policy changed, the next N requests are
        # still judged by the previous one (a policy change not yet in effect everywhere).
        dd = STANDIN.domain_data(info.domain)
        if dd.last_policy is not None and dd.last_policy != policy and STANDIN.stale_policy > 0:
            STANDIN.stale_policy -= 1
            policy = dd.last_policy
        else:
            dd.last_policy = policy
    verdict = evaluate_policy(policy, auth.caller, action, resource, client_ip)
    if verdict != "allow":
        return done(denial(auth.caller, action, explicit=verdict == "deny"))
    with STANDIN.lock:
        # Test-only scoping of the armed faults to some paths (see the module docstring).
        in_scope = STANDIN.fault_path is None or STANDIN.fault_path in dpath
        if in_scope and STANDIN.status_fault is not None and STANDIN.status_times > 0:
            STANDIN.status_times -= 1
            status = STANDIN.status_fault
            if STANDIN.status_times == 0:
                STANDIN.status_fault = None
            return done(fault_response(status, info.engine))
        lose = False
        if in_scope and method in MUTATING and STANDIN.lost_reply > 0:
            STANDIN.lost_reply -= 1
            lose = True
        dd = STANDIN.domain_data(info.domain)
        headers = _headers(environ)
        try:
            resp = route(info, dd, method, dpath, raw_query, query, headers, body)
        except OSError_ as e:
            resp = e.resp(head=method == "HEAD")
        except Exception as e:  # noqa: BLE001 - an emulator bug answers 500, like a server bug
            resp = OSError_("exception", f"stand-in error: {type(e).__name__}: {e}", 500).resp()
        if lose:
            # The domain applied the request; its reply is lost on the way (504 from the front end).
            resp = fault_response(504, info.engine)
    return done(resp)
