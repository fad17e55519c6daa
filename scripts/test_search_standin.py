#!/usr/bin/env python3
"""Checks scripts/search_standin.py (the OpenSearch domain REST endpoint stand-in): starts a
private scripts/moto_shim.py on a free port, creates domains with boto3, then drives the
stand-in with botocore-signed requests (AWSRequest + SigV4Auth for service "es") sent with
http.client, and asserts each answer.

  .venv/bin/python scripts/test_search_standin.py      # prints "N passed, 0 failed"

The server runs with PIPECTL_AWS_LIKE=async (one describe per transition), so a domain being
created or deleted can be seen refusing with 503.  Exits non-zero on any failure.
"""

from __future__ import annotations

import datetime
import http.client
import json
import sys
from typing import Any
from unittest import mock

import botocore.auth
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.dont_write_bytecode = True  # before the import below: no scripts/__pycache__ in the work tree
from emulator_check import ACCOUNT, REGION, RESULTS, Server, check  # noqa: E402

START_IP = "203.0.113.9"
SEARCH = "/_pipectl/search"
SIG_MISMATCH = ("The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. Consult the service "
                "documentation for details.")


class Answer:
    def __init__(self, status: int, headers: dict, body: bytes):
        self.status, self.headers, self.raw = status, headers, body

    def json(self) -> Any:
        return json.loads(self.raw or b"null")

    def __repr__(self) -> str:
        return f"<{self.status} {self.raw[:400]!r}>"


SRV: Any = None  # the server of this run (set by main)


def send(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def signed(method: str, path: str, body: Any = b"", *, key: str = "testing", secret: str = "testing",
           token: str | None = None, service: str = "es", region: str = REGION, headers: dict | None = None,
           at: datetime.datetime | None = None, send_path: str | None = None, send_body: bytes | None = None) -> Answer:
    """Signs with botocore exactly like an SDK would, then sends (optionally something else than
    what was signed, to prove tampering is caught)."""
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    req = AWSRequest(method=method, url=SRV.url + path, data=body, headers=hdrs)
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    if at is not None:
        with mock.patch.object(botocore.auth, "get_current_datetime", lambda: at):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return send(method, send_path or path, send_body if send_body is not None else body, dict(req.headers.items()))


def control(method: str, path: str, body: Any = None) -> Any:
    ans = send(method, path, json.dumps(body).encode() if body is not None else b"")
    assert ans.status == 200, ans
    return ans.json()


def last_log() -> dict:
    return control("GET", "/_pipectl/search-log")[-1]


def error_of(ans: Answer) -> tuple[str, str]:
    err = ans.json()["error"]
    return err["type"], err["reason"]


def policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def arn(name: str) -> str:
    return f"arn:aws:es:{REGION}:{ACCOUNT}:domain/{name}/*"


def create_domain(os_: Any, name: str, access: str, version: str = "OpenSearch_2.11") -> None:
    os_.create_domain(DomainName=name, EngineVersion=version, AccessPolicies=access)
    os_.describe_domain(DomainName=name)  # one describe ends "creating" (STEPS=1)


def main() -> int:
    global SRV
    SRV = Server({"PIPECTL_AWS_LIKE": "async", "PIPECTL_AWS_LIKE_STEPS": "1",
                  "PIPECTL_SEARCH_CLIENT_IP": START_IP,
                  "PIPECTL_SEARCH_CREDENTIALS": "testing:testing,AKIDEXTRA:extra-secret",
                  "MOTO_ACCOUNT_ID": None}, "search-standin-")
    try:
        run()
    finally:
        SRV.stop()
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


def run() -> None:
    os_ = SRV.client("opensearch")
    crime = "crime"
    crime_policy = policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "es:*",
         "Resource": arn(crime)},
        {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "es:ESHttpDelete",
         "Resource": f"arn:aws:es:{REGION}:{ACCOUNT}:domain/{crime}/protected*"})

    def no_domain_and_creating() -> None:
        ans = send("GET", SEARCH + "/")
        assert ans.status == 503 and ans.json() == {"message": "stand-in: no domain"}, ans
        os_.create_domain(DomainName=crime, EngineVersion="OpenSearch_2.11", AccessPolicies=crime_policy)
        ans = signed("GET", SEARCH + "/")
        assert ans.status == 503 and "being created" in ans.json()["message"], ans
        os_.describe_domain(DomainName=crime)
        ans = signed("GET", SEARCH + "/")
        assert ans.status == 200 and ans.json()["version"]["distribution"] == "opensearch", ans
    check("no domain -> 503; a domain being created -> 503, then it answers", no_domain_and_creating)

    def signed_accepted() -> None:
        ans = signed("GET", SEARCH + "/_index_template")
        assert ans.status == 200 and ans.json() == {"index_templates": []}, ans
        log = last_log()
        assert log["signed"] and log["signature_ok"] and log["status"] == 200, log
        assert log["principal"] == f"arn:aws:iam::{ACCOUNT}:user/moto" and log["client_ip"] == START_IP, log
        assert log["path"] == "/_index_template" and log["domain"] == crime, log
        ans = signed("GET", SEARCH + "/_mapping?ignore_unavailable=true&allow_no_indices=true")
        assert ans.status == 200 and ans.json() == {}, ans  # query canonicalisation
        ans = signed("GET", SEARCH + "/", key="AKIDEXTRA", secret="extra-secret")
        assert ans.status == 200, ans  # a second PIPECTL_SEARCH_CREDENTIALS pair
    check("sigv4: a correctly signed request is accepted and logged", signed_accepted)

    def refused(ans: Answer, message: str) -> None:
        assert ans.status == 403 and ans.json() == {"message": message}, ans
        log = last_log()
        assert log["signed"] and not log["signature_ok"] and log["status"] == 403, log

    def bad_signatures() -> None:
        path = SEARCH + "/_index_template/one"
        body = {"index_patterns": ["one-*"]}
        refused(signed("PUT", path, body, secret="wrong"), SIG_MISMATCH)
        refused(signed("PUT", path, body, service="execute-api"),
                "Credential should be scoped to correct service: 'es'. ")
        refused(signed("PUT", path, body, region="us-east-1"),
                "Credential should be scoped to a valid region, not 'us-east-1'. ")
        refused(signed("PUT", path, body, send_body=json.dumps({"index_patterns": ["two-*"]}).encode()), SIG_MISMATCH)
        refused(signed("PUT", path, body, send_path=SEARCH + "/_index_template/two"), SIG_MISMATCH)
        refused(signed("GET", SEARCH + "/_mapping?ignore_unavailable=true",
                       send_path=SEARCH + "/_mapping?ignore_unavailable=false"), SIG_MISMATCH)
        old = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
        ans = signed("PUT", path, body, at=old)
        assert ans.status == 403 and ans.json()["message"].startswith(
            f"Signature expired: {old.strftime('%Y%m%dT%H%M%SZ')} is now earlier than ") \
            and ans.json()["message"].endswith(" - 15 min.)"), ans
        refused(signed("PUT", path, body, key="AKIDUNKNOWN"), "The security token included in the request is invalid.")
        refused(signed("PUT", path, body, headers={"X-Amz-Content-SHA256": "0" * 64}), SIG_MISMATCH)
        assert signed("GET", SEARCH + "/_index_template/one").status == 404  # nothing was stored
    check("sigv4: wrong secret/service/region, tampered body/path/query, expired, unknown key, "
          "bad payload hash -> 403 with AWS's messages, signature_ok=false", bad_signatures)

    def anonymous_denied() -> None:
        ans = send("GET", SEARCH + "/_index_template")
        assert ans.status == 403 and ans.json() == {"Message": "User: anonymous is not authorized to perform: "
                                                   "es:ESHttpGet because no resource-based policy allows the "
                                                   "es:ESHttpGet action"}, ans
        log = last_log()
        assert not log["signed"] and log["principal"] == "anonymous", log
        ans = signed("DELETE", SEARCH + "/protected-1")
        assert ans.status == 403 and ans.json() == {"Message": f"User: arn:aws:iam::{ACCOUNT}:user/moto is not "
                                                   "authorized to perform: es:ESHttpDelete with an explicit deny in "
                                                   "a resource-based policy"}, ans
    check("policy: account principal refuses unsigned requests; explicit Deny wins", anonymous_denied)

    # ---- templates -------------------------------------------------------------------------
    tpl_path = SEARCH + "/_index_template/crime-data"
    template = {"index_patterns": ["crime-data*"],
                "template": {"settings": {"number_of_shards": 1, "index": {"number_of_replicas": "0"}},
                             "mappings": {"dynamic": False, "properties": {
                                 "crime_time": {"type": "date", "format": "yyyy-MM-dd HH:mm:ss"},
                                 "location": {"type": "geo_point"}, "count": {"type": "long"},
                                 "kind": {"type": "keyword"}}}}}

    def template_crud() -> None:
        ans = signed("PUT", tpl_path, template)
        assert ans.status == 200 and ans.json() == {"acknowledged": True}, ans
        ans = signed("GET", tpl_path)
        assert ans.status == 200, ans
        got = ans.json()["index_templates"]
        assert [t["name"] for t in got] == ["crime-data"], got
        stored = got[0]["index_template"]
        assert stored == {"index_patterns": ["crime-data*"],
                          "template": {"settings": {"index": {"number_of_shards": "1", "number_of_replicas": "0"}},
                                       "mappings": template["template"]["mappings"]},
                          "composed_of": []}, stored
        assert stored["template"]["mappings"]["dynamic"] is False  # untouched in the template
        ans = signed("PUT", tpl_path + "?create=true", template)
        assert ans.status == 400 and error_of(ans) == ("illegal_argument_exception",
                                                      "index template [crime-data] already exists"), ans
        ans = signed("HEAD", tpl_path)
        assert ans.status == 200 and ans.raw == b"", ans
        ans = signed("HEAD", SEARCH + "/_index_template/nope")
        assert ans.status == 404 and ans.raw == b"", ans
        ans = signed("GET", SEARCH + "/_index_template/nope")
        assert ans.status == 404 and ans.json() == {
            "error": {"root_cause": [{"type": "resource_not_found_exception",
                                      "reason": "index template matching [nope] not found"}],
                      "type": "resource_not_found_exception", "reason": "index template matching [nope] not found"},
            "status": 404}, ans
        ans = signed("GET", SEARCH + "/_index_template/crime*")
        assert ans.status == 200 and len(ans.json()["index_templates"]) == 1, ans
        ans = signed("GET", SEARCH + "/_index_template/zzz*")
        assert ans.status == 404 and ans.json() == {"index_templates": []}, ans
        extra = {"index_patterns": "other-*", "priority": 7, "version": 3, "_meta": {"owner": "pipectl"}}
        assert signed("POST", SEARCH + "/_index_template/other", extra).status == 200
        stored = signed("GET", SEARCH + "/_index_template/other").json()["index_templates"][0]["index_template"]
        assert stored == {"index_patterns": ["other-*"], "priority": 7, "version": 3, "_meta": {"owner": "pipectl"}}, stored
        assert len(signed("GET", SEARCH + "/_index_template").json()["index_templates"]) == 2
        ans = signed("DELETE", SEARCH + "/_index_template/other")
        assert ans.status == 200 and ans.json() == {"acknowledged": True}, ans
        ans = signed("DELETE", SEARCH + "/_index_template/other")
        assert ans.status == 404 and error_of(ans) == ("index_template_missing_exception", "index_template [other] missing"), ans
        state = control("GET", "/_pipectl/search-state")[crime]["templates"]
        assert list(state) == ["crime-data"] and state["crime-data"] == stored_form(), state
    check("templates: PUT/GET/HEAD/DELETE shapes, create=true, 404s, wildcards, stored form", template_crud)

    def template_errors() -> None:
        def put(body: Any, name: str = "bad") -> Answer:
            return signed("PUT", SEARCH + f"/_index_template/{name}", body)
        raw = '{"index_patterns":["b-*"],"mappingz":{}}'
        ans = put(raw)
        assert ans.status == 400 and error_of(ans) == ("x_content_parse_exception",
                                                      "[1:27] [index_template] unknown field [mappingz]"), ans
        ans = put('{"index_pattern":["b-*"]}')
        assert error_of(ans)[1] == "[1:2] [index_template] unknown field [index_pattern] did you mean [index_patterns]?", ans
        ans = put({"index_patterns": ["b-*"], "template": {"mapping": {}}})
        body = ans.json()["error"]
        assert ans.status == 400 and body["type"] == "x_content_parse_exception" and \
            body["root_cause"][0]["reason"].endswith("[template] unknown field [mapping] did you mean [mappings]?"), ans
        ans = put({"template": {}})
        assert ans.status == 400 and error_of(ans) == ("illegal_argument_exception", "Required [index_patterns]"), ans
        ans = put({"index_patterns": ["b-*"], "template": {"mappings": {"properties": {"x": {"type": "strng"}}}}})
        err = ans.json()["error"]
        assert ans.status == 400 and err["type"] == "illegal_argument_exception" and \
            err["reason"] == "composable template [bad] template after composition is invalid", ans
        assert err["caused_by"]["reason"] == "invalid composite mappings for [bad]", ans
        assert err["caused_by"]["caused_by"]["caused_by"] == {"type": "mapper_parsing_exception",
                                                              "reason": "No handler for type [strng] declared on field [x]"}, ans
        ans = put({"index_patterns": ["b-*"], "template": {"mappings": {"dynamic": "sometimes"}}})
        inner = ans.json()["error"]["caused_by"]["caused_by"]["caused_by"]
        assert inner["reason"] == "Could not convert [dynamic.dynamic] to boolean", ans
        ans = put({"index_patterns": ["b-*"], "priority": -1})
        assert error_of(ans) == ("action_request_validation_exception",
                                 "Validation Failed: 1: index template priority must be >= 0;"), ans
        ans = put({"index_patterns": ["b-*"], "template": {"settings": {"number_of_shard": 1, "foo": "x"}}})
        assert error_of(ans) == ("invalid_index_template_exception",
                                 "index_template [bad] invalid, cause [Validation Failed: 1: unknown setting "
                                 "[index.foo] please check that any required plugins are installed, or check the "
                                 "breaking changes documentation for removed settings;2: unknown setting "
                                 "[index.number_of_shard] did you mean [index.number_of_shards]?;]"), ans
        ans = put({"index_patterns": ["b-*"], "template": {"settings": {"number_of_shards": "one"}}})
        assert error_of(ans)[1] == ("index_template [bad] invalid, cause [Validation Failed: 1: Failed to parse "
                                    "value [one] for setting [index.number_of_shards];]"), ans
        ans = put({"index_patterns": ["b-*"], "template": {"settings": {"number_of_replicas": 1.5}}})
        assert "Failed to parse value [1.5] for setting [index.number_of_replicas]" in error_of(ans)[1], ans
        ans = put({"index_patterns": ["crime-*"]}, name="overlap")
        assert error_of(ans) == ("illegal_argument_exception",
                                 "index template [overlap] has index patterns [crime-*] matching patterns from "
                                 "existing templates [crime-data] with patterns (crime-data => [crime-data*]) that "
                                 "have the same priority [0], multiple index templates may not match during index "
                                 "creation, please use a different priority"), ans
        assert put({"index_patterns": ["crime-*"], "priority": 1}, name="overlap").status == 200
        assert signed("DELETE", SEARCH + "/_index_template/overlap").status == 200
        ans = put("")
        assert error_of(ans) == ("parse_exception", "request body is required"), ans
        ans = signed("PUT", SEARCH + "/_index_template/bad", {"index_patterns": ["b-*"]},
                     headers={"Content-Type": "text/plain"})
        assert ans.status == 406 and ans.json() == {"error": "Content-Type header [text/plain] is not supported",
                                                   "status": 406}, ans
        ans = signed("PUT", SEARCH + "/_index_template/bad?creat=true", {"index_patterns": ["b-*"]})
        assert error_of(ans)[1] == ("request [/_index_template/bad] contains unrecognized parameter: "
                                    "[creat] -> did you mean [create]?"), ans
        assert signed("GET", SEARCH + "/_index_template/bad").status == 404  # nothing stored
    check("templates: unknown field, missing patterns, bad type/dynamic/priority/settings, "
          "same-priority overlap, empty body, content type, unknown parameter", template_errors)

    # ---- indices and documents ---------------------------------------------------------------
    def index_from_template() -> None:
        ans = signed("PUT", SEARCH + "/crime-data-2024", {"mappings": {"properties": {"note": {"type": "text"}}}})
        assert ans.status == 200 and ans.json() == {"acknowledged": True, "shards_acknowledged": True,
                                                    "index": "crime-data-2024"}, ans
        ans = signed("GET", SEARCH + "/crime-data-2024/_mapping")
        mapping = ans.json()["crime-data-2024"]["mappings"]
        assert mapping["dynamic"] == "false", mapping  # rendered as a string by the index
        assert list(mapping["properties"]) == ["count", "crime_time", "kind", "location", "note"], mapping
        assert mapping["properties"]["crime_time"] == {"type": "date", "format": "yyyy-MM-dd HH:mm:ss"}, mapping
        info = signed("GET", SEARCH + "/crime-data-2024").json()["crime-data-2024"]
        assert info["settings"]["index"]["number_of_shards"] == "1" and info["settings"]["index"]["number_of_replicas"] == "0", info
        ans = signed("PUT", SEARCH + "/crime-data-2024")
        assert ans.status == 400 and ans.json()["error"]["type"] == "resource_already_exists_exception", ans
        ans = signed("PUT", SEARCH + "/Crime")
        assert error_of(ans) == ("invalid_index_name_exception", "Invalid index name [Crime], must be lowercase"), ans
    check("indices: PUT applies the highest-priority template, merged with the body", index_from_template)

    def documents() -> None:
        doc = {"crime_time": "2024-05-01 10:20:30", "location": {"lat": 51.5, "lon": -0.12}, "count": "3",
               "kind": "theft", "unmapped": {"a": 1}}
        ans = signed("POST", SEARCH + "/crime-data-auto/_doc", doc)
        body = ans.json()
        assert ans.status == 201 and body["result"] == "created" and len(body["_id"]) == 20 and "_type" not in body, ans
        for loc in ("51.5,-0.12", [-0.12, 51.5], "gcpvj0duq", "POINT (-0.12 51.5)"):
            ans = signed("PUT", SEARCH + "/crime-data-auto/_doc/loc-" + str(len(str(loc))), {"location": loc})
            assert ans.status in (200, 201), (loc, ans)
        ans = signed("POST", SEARCH + "/crime-data-auto/_doc", {"crime_time": "01/05/2024"})
        err = ans.json()["error"]
        assert ans.status == 400 and err["type"] == "mapper_parsing_exception" and err["reason"].startswith(
            "failed to parse field [crime_time] of type [date] in document with id '"), ans
        assert err["caused_by"]["reason"] == "failed to parse date field [01/05/2024] with format [yyyy-MM-dd HH:mm:ss]", ans
        ans = signed("POST", SEARCH + "/crime-data-auto/_doc", {"count": "many"})
        err = ans.json()["error"]
        assert ans.status == 400 and "of type [long]" in err["reason"] and \
            err["caused_by"] == {"type": "illegal_argument_exception", "reason": 'For input string: "many"'}, ans
        ans = signed("POST", SEARCH + "/crime-data-auto/_doc", {"location": {"lat": 99, "lon": 0}})
        assert ans.status == 400 and error_of(ans)[1] == "failed to parse field [location] of type [geo_point]", ans
        ans = signed("GET", SEARCH + "/crime-data-auto/_search?size=2")
        assert ans.status == 200 and ans.json()["hits"]["total"] == {"value": 5, "relation": "eq"} and \
            len(ans.json()["hits"]["hits"]) == 2, ans
        state = control("GET", "/_pipectl/search-state")[crime]["indices"]["crime-data-auto"]
        assert state["docs"] == 5 and "unmapped" not in state["mappings"]["properties"], state
        ans = signed("POST", SEARCH + "/free-index/_doc", {"name": "x", "n": 1, "f": 1.5, "when": "2024-01-02T03:04:05Z",
                                                            "obj": {"flag": True}})
        assert ans.status == 201, ans
        props = signed("GET", SEARCH + "/free-index/_mapping").json()["free-index"]["mappings"]["properties"]
        assert props == {"f": {"type": "float"}, "n": {"type": "long"},
                         "name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                         "obj": {"properties": {"flag": {"type": "boolean"}}}, "when": {"type": "date"}}, props
        ndjson = ('{"index":{"_index":"crime-data-bulk"}}\n{"kind":"a","count":1}\n'
                  '{"create":{"_index":"crime-data-bulk","_id":"b2"}}\n{"count":"nope"}\n')
        ans = signed("POST", SEARCH + "/_bulk", ndjson, headers={"Content-Type": "application/x-ndjson"})
        body = ans.json()
        assert ans.status == 200 and body["errors"] is True and body["items"][0]["index"]["status"] == 201 and \
            body["items"][1]["create"]["status"] == 400, ans
    check("documents: auto-create from the template, geo_point forms, date format, long, dynamic "
          "mapping, _bulk", documents)

    def strict_dynamic() -> None:
        tpl = {"index_patterns": ["strict-*"], "priority": 5,
               "template": {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "keyword"}}}}}
        assert signed("PUT", SEARCH + "/_index_template/strict", tpl).status == 200
        ans = signed("POST", SEARCH + "/strict-1/_doc", {"a": "x", "b": 1})
        assert ans.status == 400 and ans.json() == {"error": {
            "root_cause": [{"type": "strict_dynamic_mapping_exception",
                            "reason": "mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed"}],
            "type": "strict_dynamic_mapping_exception",
            "reason": "mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed"}, "status": 400}, ans
        mapping = signed("GET", SEARCH + "/strict-1/_mapping").json()["strict-1"]["mappings"]
        assert mapping == {"dynamic": "strict", "properties": {"a": {"type": "keyword"}}}, mapping
    check("documents: dynamic strict refuses an unknown field", strict_dynamic)

    def get_mapping_options() -> None:
        ans = signed("GET", SEARCH + "/crime-data-2024,strict-*/_mapping")
        assert ans.status == 200 and sorted(ans.json()) == ["crime-data-2024", "strict-1"], ans
        ans = signed("GET", SEARCH + "/missing,strict-1/_mapping")
        assert ans.status == 404 and ans.json() == {"error": {
            "root_cause": [{"type": "index_not_found_exception", "reason": "no such index [missing]", "index": "missing",
                            "resource.id": "missing", "resource.type": "index_or_alias", "index_uuid": "_na_"}],
            "type": "index_not_found_exception", "reason": "no such index [missing]", "index": "missing",
            "resource.id": "missing", "resource.type": "index_or_alias", "index_uuid": "_na_"}, "status": 404}, ans
        ans = signed("GET", SEARCH + "/missing,strict-1/_mapping?ignore_unavailable=true")
        assert ans.status == 200 and list(ans.json()) == ["strict-1"], ans
        ans = signed("GET", SEARCH + "/nomatch-*/_mapping")
        assert ans.status == 200 and ans.json() == {}, ans
        ans = signed("GET", SEARCH + "/nomatch-*/_mapping?allow_no_indices=false")
        assert ans.status == 404 and error_of(ans)[1] == "no such index [nomatch-*]", ans
        assert signed("DELETE", SEARCH + "/strict-1").json() == {"acknowledged": True}
        assert signed("HEAD", SEARCH + "/strict-1").status == 404
    check("_mapping: names, wildcards, ignore_unavailable, allow_no_indices; DELETE index", get_mapping_options)

    # ---- faults and reset --------------------------------------------------------------------
    def faults() -> None:
        armed = control("POST", "/_pipectl/faults", {"search": {"status": 429, "times": 2}})
        assert armed["search"]["status"] == 429 and armed["search"]["times"] == 2, armed
        fault_tpl = {"index_patterns": ["fault-*"]}
        for _ in range(2):
            ans = signed("PUT", SEARCH + "/_index_template/fault", fault_tpl)
            assert ans.status == 429 and ans.json()["error"]["type"] == "rejected_execution_exception" and \
                ans.json()["status"] == 429, ans
        assert signed("GET", SEARCH + "/_index_template/fault").status == 404  # not applied
        control("POST", "/_pipectl/faults", {"search": {"status": 503, "times": 1}})
        ans = signed("GET", SEARCH + "/")
        assert ans.status == 503 and ans.json()["error"]["type"] == "cluster_manager_not_discovered_exception", ans
        control("POST", "/_pipectl/faults", {"search": {"lost_reply": 1}})
        assert signed("GET", SEARCH + "/_index_template/fault").status == 404  # reads do not lose replies
        ans = signed("PUT", SEARCH + "/_index_template/fault", fault_tpl)
        assert ans.status == 504 and b"504 Gateway Time-out" in ans.raw, ans
        ans = signed("GET", SEARCH + "/_index_template/fault")
        assert ans.status == 200, ans  # the domain stored it
        assert signed("DELETE", SEARCH + "/_index_template/fault").status == 200
        bad = send("POST", "/_pipectl/faults", json.dumps({"search": {"status": 404}}).encode())
        assert bad.status == 400, bad
        assert control("POST", "/_pipectl/reset")["reset"] is True
        assert control("GET", "/_pipectl/search-log") == []
        assert "crime-data" in control("GET", "/_pipectl/search-state")[crime]["templates"]  # data kept
    check("faults: status/times not applied, 503 body, lost_reply applied then 504; reset clears the log",
          faults)

    # ---- saved objects -----------------------------------------------------------------------
    def saved_objects() -> None:
        base = SEARCH + "/_dashboards/api/saved_objects/index-pattern/crime-data"
        pattern = {"attributes": {"title": "crime-data*", "timeFieldName": "crime_time"}}
        ans = signed("POST", base + "?overwrite=true", pattern)
        assert ans.status == 400 and ans.json() == {"statusCode": 400, "error": "Bad Request",
                                                   "message": "Request must contain a osd-xsrf header."}, ans
        xsrf = {"osd-xsrf": "true"}
        ans = signed("POST", base + "?overwrite=true", pattern, headers=xsrf)
        obj = ans.json()
        assert ans.status == 200 and obj["id"] == "crime-data" and obj["type"] == "index-pattern", ans
        assert obj["attributes"] == pattern["attributes"] and obj["references"] == [] and \
            obj["migrationVersion"] == {"index-pattern": "7.6.0"} and obj["namespaces"] == ["default"], obj
        assert obj["version"] == "WzAsMV0=" and obj["updated_at"].endswith("Z"), obj
        ans = signed("POST", base, pattern, headers=xsrf)
        assert ans.status == 409 and ans.json()["message"] == "Saved object [index-pattern/crime-data] conflict", ans
        ans = signed("POST", base + "?overwrite=true", pattern, headers=xsrf)
        assert ans.status == 200 and ans.json()["version"] == "WzEsMV0=", ans
        ans = signed("GET", base)
        assert ans.status == 200 and ans.json()["attributes"]["timeFieldName"] == "crime_time", ans
        # The update API: a partial update of an existing object; 404 when missing.
        ans = signed("PUT", base, {"attributes": {"timeFieldName": "load_time"}}, headers=xsrf)
        assert ans.status == 200 and ans.json()["attributes"] == {"timeFieldName": "load_time"}, ans
        got = signed("GET", base).json()["attributes"]
        assert got == {"title": "crime-data*", "timeFieldName": "load_time"}, got
        ans = signed("PUT", SEARCH + "/_dashboards/api/saved_objects/index-pattern/nope", pattern, headers=xsrf)
        assert ans.status == 404, ans
        missing = SEARCH + "/_dashboards/api/saved_objects/index-pattern/nope"
        ans = signed("GET", missing)
        assert ans.status == 404 and ans.json() == {"statusCode": 404, "error": "Not Found",
                                                   "message": "Saved object [index-pattern/nope] not found"}, ans
        state = control("GET", "/_pipectl/search-state")[crime]["saved_objects"]
        assert list(state) == ["index-pattern/crime-data"], state
        ans = signed("DELETE", base, headers=xsrf)
        assert ans.status == 200 and ans.json() == {}, ans
        assert signed("DELETE", base, headers=xsrf).status == 404
    check("saved objects: osd-xsrf required, create/overwrite/409, GET/404, PUT update/404, DELETE", saved_objects)

    # ---- identities --------------------------------------------------------------------------
    def moto_identities() -> None:
        iam, sts = SRV.client("iam"), SRV.client("sts")
        iam.create_user(UserName="loader")
        key = iam.create_access_key(UserName="loader")["AccessKey"]
        ans = signed("GET", SEARCH + "/", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
        assert ans.status == 200 and last_log()["principal"] == f"arn:aws:iam::{ACCOUNT}:user/loader", ans
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})
        role = iam.create_role(RoleName="firehose-loader", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        creds = sts.assume_role(RoleArn=role, RoleSessionName="s1")["Credentials"]
        ans = signed("GET", SEARCH + "/", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"],
                     token=creds["SessionToken"])
        assert ans.status == 200, ans
        assert last_log()["principal"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/firehose-loader/s1", last_log()
        ans = signed("GET", SEARCH + "/", key=creds["AccessKeyId"], secret=creds["SecretAccessKey"], token="bogus")
        assert ans.status == 403 and ans.json()["message"] == "The security token included in the request is invalid.", ans
    check("identities: moto IAM user keys and AssumeRole sessions sign as themselves", moto_identities)

    # ---- several domains, IP policy, engines -------------------------------------------------
    ipdom = "ipdom"

    def several_and_ip_policy() -> None:
        ip_policy = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*", "Resource": arn(ipdom),
                            "Condition": {"IpAddress": {"aws:SourceIp": ["198.51.100.0/24", "2001:db8::/32"]}}})
        create_domain(os_, ipdom, ip_policy)
        ans = signed("GET", SEARCH + "/")
        assert ans.status == 400 and "/_pipectl/search/domain/<domain-name>/<path>" in ans.json()["message"], ans
        path = SEARCH + f"/domain/{ipdom}/_index_template"
        ans = send("GET", path)
        assert ans.status == 403 and ans.json()["Message"].startswith("User: anonymous is not authorized"), ans
        ans = signed("GET", path)
        assert ans.status == 403 and ans.json() == {"Message": f"User: arn:aws:iam::{ACCOUNT}:user/moto is not "
                                                   "authorized to perform: es:ESHttpGet because no resource-based "
                                                   "policy allows the es:ESHttpGet action"}, ans
        control("POST", "/_pipectl/faults", {"search": {"client_ip": "198.51.100.7"}})
        ans = send("GET", path)
        assert ans.status == 200 and last_log()["client_ip"] == "198.51.100.7", ans
        assert signed("GET", path).status == 200
        control("POST", "/_pipectl/faults", {"search": {"client_ip": "2001:db8::5"}})
        assert send("GET", path).status == 200
        ans = signed("GET", SEARCH + f"/domain/{crime}/_index_template/crime-data")
        assert ans.status == 200, ans  # the explicit form reaches the other domain
        control("POST", "/_pipectl/reset")
        assert send("GET", path).status == 403  # back to PIPECTL_SEARCH_CLIENT_IP
        # stale_policy: after a policy change, the next N requests are judged by the old one.
        control("POST", "/_pipectl/faults", {"search": {"stale_policy": 2}})
        open_policy = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*", "Resource": arn(ipdom)})
        os_.update_domain_config(DomainName=ipdom, AccessPolicies=open_policy)
        assert [send("GET", path).status for _ in range(3)] == [403, 403, 200]
        assert send("GET", path).status == 200
        control("POST", "/_pipectl/reset")
    check("domains: several need the explicit form; IP policy refuses, then admits after client_ip; stale_policy",
          several_and_ip_policy)

    def recreated_domain_is_empty() -> None:
        before = control("GET", "/_pipectl/search-state")[crime]
        assert before["templates"] and before["indices"], before
        os_.delete_domain(DomainName=crime)
        ans = signed("GET", SEARCH + f"/domain/{crime}/")
        assert ans.status == 503 and "being deleted" in ans.json()["message"], ans
        os_.describe_domain(DomainName=crime)  # the deferred delete runs (STEPS=1)
        ans = signed("GET", SEARCH + f"/domain/{crime}/")
        assert ans.status == 503 and ans.json()["message"] == f"stand-in: no domain named {crime}", ans
        create_domain(os_, crime, crime_policy)
        ans = signed("GET", SEARCH + f"/domain/{crime}/_index_template/crime-data")
        assert ans.status == 404, ans
        after = control("GET", "/_pipectl/search-state")[crime]
        assert after == {"templates": {}, "indices": {}, "saved_objects": {}}, after
    check("domains: a domain deleted and created again starts empty", recreated_domain_is_empty)

    def elasticsearch_engines() -> None:
        open_policy = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*", "Resource": arn("old-es")})
        create_domain(os_, "old-es", open_policy, version="Elasticsearch_7.7")
        ans = signed("PUT", SEARCH + "/domain/old-es/_index_template/crime-data?create=true", template)
        assert ans.status == 405 and ans.json() == {
            "error": "Incorrect HTTP method for uri [/_index_template/crime-data?create=true] and method [PUT], "
                     "allowed: [POST]", "status": 405}, ans
        es_policy = policy({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "es:*", "Resource": arn("new-es")})
        create_domain(os_, "new-es", es_policy, version="Elasticsearch_7.10")
        assert signed("PUT", SEARCH + "/domain/new-es/_index_template/crime-data", template).status == 200
        ans = signed("POST", SEARCH + "/domain/new-es/crime-data-1/_doc", {"kind": "x"})
        assert ans.status == 201 and ans.json()["_type"] == "_doc", ans
        base = SEARCH + "/domain/new-es/_plugin/kibana/api/saved_objects/index-pattern/p1"
        pattern = {"attributes": {"title": "crime-data*"}}
        ans = signed("POST", base, pattern, headers={"osd-xsrf": "true"})
        assert ans.status == 400 and ans.json()["message"] == "Request must contain a kbn-xsrf header.", ans
        assert signed("POST", base, pattern, headers={"kbn-xsrf": "true"}).status == 200
    check("engines: Elasticsearch 7.7 has no _index_template (405); 7.10 answers _type and uses "
          "/_plugin/kibana with kbn-xsrf", elasticsearch_engines)


def stored_form() -> dict:
    return {"index_patterns": ["crime-data*"],
            "template": {"settings": {"index": {"number_of_shards": "1", "number_of_replicas": "0"}},
                         "mappings": {"dynamic": False, "properties": {
                             "crime_time": {"type": "date", "format": "yyyy-MM-dd HH:mm:ss"},
                             "location": {"type": "geo_point"}, "count": {"type": "long"},
                             "kind": {"type": "keyword"}}}},
            "composed_of": []}


if __name__ == "__main__":
    sys.exit(main())
