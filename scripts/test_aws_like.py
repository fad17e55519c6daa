#!/usr/bin/env python3
"""Checks scripts/aws_like.py: starts scripts/moto_shim.py on free ports, drives every
behaviour with boto3 and asserts it.

  .venv/bin/python scripts/test_aws_like.py            # prints "N passed, 0 failed"

Phase 1 runs the emulator with PIPECTL_AWS_LIKE=all (STEPS=2); phase 2 with the variable
unset, where moto must behave as before apart from the always-on gap fixes.  Exits non-zero
on any failure.  Needs only the venv (moto[server] brings boto3).
"""

from __future__ import annotations

import base64
import io
import json
import sys
import time
import uuid
import zipfile
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

sys.dont_write_bytecode = True  # before the import below: no scripts/__pycache__ in the work tree
from emulator_check import ACCOUNT, REGION, RESULTS, Server, check  # noqa: E402

STEPS = 2
CLIENT_CONFIG = {"retries": {"max_attempts": 1, "mode": "standard"}, "s3": {"addressing_style": "path"}}
TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com", "firehose.amazonaws.com"]},
    "Action": "sts:AssumeRole"}]})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "es:*", "Resource": "*"}]})


def error_of(fn: Callable[[], Any]) -> tuple[str, str, int]:
    try:
        fn()
    except ClientError as e:
        err = e.response.get("Error", {})
        return (err.get("Code", ""), err.get("Message", ""),
                e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    raise AssertionError("expected an error, the call succeeded")


def burst_until_refused(call: Callable[[], Any]) -> Callable[[], Any]:
    """For a 5 calls/s quota: a first call (which loads moto's code, slow on a fresh server),
    a pause that empties the window, then calls as fast as they go until one is refused. At
    least 5 pass and the refusal comes soon; how many pass depends on this machine's speed
    (the window slides), not on luck. Returns a callable that raises that refusal again, for
    expect_error (a new call could pass: the window keeps sliding)."""
    call()
    time.sleep(1.1)
    passed = 0
    while passed < 50:
        try:
            call()
        except ClientError as e:
            assert passed >= 5, f"refused after {passed} calls"
            refusal = e  # `e` itself is unbound when the except block ends

            def again() -> None:
                raise refusal

            return again
        passed += 1
    raise AssertionError(f"{passed} calls passed and none was refused")


def expect_error(fn: Callable[[], Any], code: str, status: int | None = None,
                 contains: str | None = None) -> str:
    got_code, message, got_status = error_of(fn)
    assert got_code == code, f"error {got_code!r} ({message!r}), wanted {code!r}"
    if status is not None:
        assert got_status == status, f"HTTP {got_status}, wanted {status}"
    if contains is not None:
        assert contains in message, f"message {message!r} lacks {contains!r}"
    return message


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\necho hi\n")
    return buf.getvalue()


def create_role(iam: Any, name: str) -> str:
    return iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]


def propagate_with_lambda(lam: Any, role_arn: str) -> None:
    """Uses up a fresh role's propagation: the next 2 CreateFunction calls with it fail."""
    for _ in range(2):
        expect_error(lambda: lam.create_function(
            FunctionName=uid("probe"), Runtime="provided.al2023", Role=role_arn,
            Handler="bootstrap", Code={"ZipFile": zip_bytes()}),
            "InvalidParameterValueException", 400,
            "The role defined for the function cannot be assumed by Lambda.")


def stream_status(kinesis: Any, name: str) -> str:
    return kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]


def wait_stream_active(kinesis: Any, name: str) -> None:
    for _ in range(STEPS + 1):
        if stream_status(kinesis, name) == "ACTIVE":
            return
    raise AssertionError(f"{name} never became ACTIVE")


# --------------------------------------------------------------------------------------------
# Phase 1: PIPECTL_AWS_LIKE=all
# --------------------------------------------------------------------------------------------

def phase_all(srv: Server) -> None:
    kinesis, firehose, lam = srv.client("kinesis"), srv.client("firehose"), srv.client("lambda")
    os_, s3, iam = srv.client("opensearch"), srv.client("s3"), srv.client("iam")
    tagging = srv.client("resourcegroupstaggingapi")

    # ---------------------------------------------------------------- control endpoint
    def control_endpoint() -> None:
        armed = srv.control("POST", "/_pipectl/faults", {"denied_tags": ["nothing-here"]})
        assert armed["inactive"] == [], armed
        assert armed["steps"] == STEPS and "async" in armed["behaviours"], armed
        srv.control("POST", "/_pipectl/reset", {})
        kinesis.list_streams()
        calls = srv.control("GET", "/_pipectl/calls")
        assert calls == {"kinesis:ListStreams": 1}, calls
    check("control: faults/reset/calls", control_endpoint)

    # ---------------------------------------------------------------- Kinesis
    def kinesis_create_async_and_tags() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"team": "data"})
        seen = [stream_status(kinesis, name) for _ in range(STEPS)]
        assert seen == ["CREATING"] * STEPS, seen
        assert kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamStatus"] == "ACTIVE"
        tags = kinesis.list_tags_for_stream(StreamName=name)["Tags"]
        assert tags == [{"Key": "team", "Value": "data"}], tags
    check("kinesis: CreateStream CREATING for STEPS describes; Tags honoured", kinesis_create_async_and_tags)

    def kinesis_busy_while_creating() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        expect_error(lambda: kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "b"}),
                     "ResourceInUseException", 400,
                     f"Stream {name} under account {ACCOUNT} not ACTIVE, instead in state CREATING")
        expect_error(lambda: kinesis.delete_stream(StreamName=name), "ResourceInUseException",
                     400, "Stream is being created")
        wait_stream_active(kinesis, name)
        kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "b"})
    check("kinesis busy: mutations/delete while CREATING -> ResourceInUseException", kinesis_busy_while_creating)

    def kinesis_updating_and_limits() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=2)
        wait_stream_active(kinesis, name)
        expect_error(lambda: kinesis.update_shard_count(StreamName=name, TargetShardCount=5,
                                                        ScalingType="UNIFORM_SCALING"),
                     "LimitExceededException", 400,
                     "UpdateShardCount cannot scale up over double your current open shard "
                     "count. Current open shard count: 2, Target shard count: 5")
        kinesis.update_shard_count(StreamName=name, TargetShardCount=4, ScalingType="UNIFORM_SCALING")
        assert stream_status(kinesis, name) == "UPDATING"
        expect_error(lambda: kinesis.increase_stream_retention_period(
            StreamName=name, RetentionPeriodHours=48), "ResourceInUseException", 400,
            "instead in state UPDATING")
        assert stream_status(kinesis, name) == "UPDATING"
        assert stream_status(kinesis, name) == "ACTIVE"
        expect_error(lambda: kinesis.update_shard_count(StreamName=name, TargetShardCount=1,
                                                        ScalingType="UNIFORM_SCALING"),
                     "LimitExceededException", 400,
                     "UpdateShardCount cannot scale down below half your current open shard "
                     "count. Current open shard count: 4, Target shard count: 1")
        kinesis.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId="alias/aws/kinesis")
        assert stream_status(kinesis, name) == "UPDATING"
    check("kinesis async+busy: UpdateShardCount UPDATING, 2x/half limits", kinesis_updating_and_limits)

    def kinesis_ten_reshards() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        wait_stream_active(kinesis, name)
        for i in range(10):
            kinesis.update_shard_count(StreamName=name, TargetShardCount=2 if i % 2 == 0 else 1,
                                       ScalingType="UNIFORM_SCALING")
            wait_stream_active(kinesis, name)
        expect_error(lambda: kinesis.update_shard_count(StreamName=name, TargetShardCount=2,
                                                        ScalingType="UNIFORM_SCALING"),
                     "LimitExceededException", 400, "rolling 24-hour period")
    check("kinesis busy: 11th UpdateShardCount in 24 h -> LimitExceededException", kinesis_ten_reshards)

    def kinesis_delete_async() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        wait_stream_active(kinesis, name)
        kinesis.delete_stream(StreamName=name)
        summaries = kinesis.list_streams()["StreamSummaries"]
        assert any(s["StreamName"] == name and s["StreamStatus"] == "DELETING" for s in summaries)
        assert [stream_status(kinesis, name) for _ in range(STEPS)] == ["DELETING"] * STEPS
        expect_error(lambda: kinesis.describe_stream_summary(StreamName=name),
                     "ResourceNotFoundException", 400)
        assert name not in kinesis.list_streams()["StreamNames"]
    check("kinesis async: DeleteStream DELETING for STEPS describes, then ResourceNotFound", kinesis_delete_async)

    def kinesis_quota_and_denied() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        refused = burst_until_refused(lambda: kinesis.list_tags_for_stream(StreamName=name))
        expect_error(refused,
                     "LimitExceededException", 400,
                     f"Rate exceeded for stream {name} under account {ACCOUNT}.")
        time.sleep(1.1)
        kinesis.list_tags_for_stream(StreamName=name)
        srv.control("POST", "/_pipectl/faults", {"denied_tags": [name]})
        time.sleep(1.1)
        expect_error(lambda: kinesis.list_tags_for_stream(StreamName=name),
                     "AccessDeniedException", 400, "kinesis:ListTagsForStream")
    check("kinesis quota: ListTagsForStream 5/s; foreign: denied tag read", kinesis_quota_and_denied)

    def kinesis_concurrent_describes() -> None:
        import concurrent.futures

        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        clients = [srv.client("kinesis") for _ in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(lambda c: stream_status(c, name), clients))
        assert sorted(seen) == ["ACTIVE"] * (8 - STEPS) + ["CREATING"] * STEPS, seen
    check("kinesis: concurrent describes see exactly STEPS transitional answers", kinesis_concurrent_describes)

    def kinesis_stuck() -> None:
        name = uid("ks")
        srv.control("POST", "/_pipectl/faults", {"stream_stuck": {"name": name}})
        kinesis.create_stream(StreamName=name, ShardCount=1)
        assert [stream_status(kinesis, name) for _ in range(STEPS + 3)] == ["CREATING"] * (STEPS + 3)
    check("kinesis failures: stream_stuck stays CREATING", kinesis_stuck)

    # ---------------------------------------------------------------- IAM propagation
    def iam_lambda() -> None:
        role = create_role(iam, uid("role"))
        propagate_with_lambda(lam, role)
        name = uid("fn")
        lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role,
                            Handler="bootstrap", Code={"ZipFile": zip_bytes()})
    check("iam: CreateFunction with a fresh role fails twice, then succeeds", iam_lambda)

    es_domain_arn = f"arn:aws:es:{REGION}:{ACCOUNT}:domain/some-domain"

    def es_destination(role: str, bucket_arn: str = "arn:aws:s3:::x") -> dict:
        return {"RoleARN": role, "DomainARN": es_domain_arn, "IndexName": "idx",
                "S3Configuration": {"RoleARN": role, "BucketARN": bucket_arn}}

    def iam_firehose() -> None:
        role_name = uid("role")
        role = create_role(iam, role_name)
        name = uid("fh")
        for _ in range(2):
            expect_error(lambda: firehose.create_delivery_stream(
                DeliveryStreamName=name, ElasticsearchDestinationConfiguration=es_destination(role)),
                "InvalidArgumentException", 400,
                f"Firehose is unable to assume role {role}. Please check the role provided.")
        firehose.create_delivery_stream(DeliveryStreamName=name,
                                        ElasticsearchDestinationConfiguration=es_destination(role))
        iam.put_role_policy(RoleName=role_name, PolicyName="es", PolicyDocument=POLICY)
        other = uid("fh")
        for _ in range(2):
            expect_error(lambda: firehose.create_delivery_stream(
                DeliveryStreamName=other, ElasticsearchDestinationConfiguration=es_destination(role)),
                "InvalidArgumentException", 400,
                "Verify that the IAM role has access to the Elasticsearch domain.")
        firehose.create_delivery_stream(DeliveryStreamName=other,
                                        ElasticsearchDestinationConfiguration=es_destination(role))
    check("iam: Firehose assume-role then domain-access propagation errors", iam_firehose)

    # a role every later test can use
    shared_role_name = uid("role")
    shared_role = create_role(iam, shared_role_name)
    propagate_with_lambda(lam, shared_role)

    # ---------------------------------------------------------------- Firehose
    def fh_create(name: str) -> None:
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            ExtendedS3DestinationConfiguration={"RoleARN": shared_role, "BucketARN": "arn:aws:s3:::b"})

    def fh_status(name: str) -> dict:
        return firehose.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]

    def firehose_async_busy() -> None:
        name = uid("fh")
        fh_create(name)
        desc = fh_status(name)
        assert desc["DeliveryStreamStatus"] == "CREATING", desc["DeliveryStreamStatus"]
        expect_error(lambda: firehose.tag_delivery_stream(
            DeliveryStreamName=name, Tags=[{"Key": "a", "Value": "b"}]), "ResourceInUseException", 400)
        expect_error(lambda: firehose.update_destination(
            DeliveryStreamName=name, CurrentDeliveryStreamVersionId=desc["VersionId"],
            DestinationId=desc["Destinations"][0]["DestinationId"],
            ExtendedS3DestinationUpdate={"Prefix": "p/"}), "ResourceInUseException", 400)
        expect_error(lambda: firehose.delete_delivery_stream(DeliveryStreamName=name),
                     "ResourceInUseException", 400, "CREATING")
        assert fh_status(name)["DeliveryStreamStatus"] == "CREATING"
        assert fh_status(name)["DeliveryStreamStatus"] == "ACTIVE"
        firehose.tag_delivery_stream(DeliveryStreamName=name, Tags=[{"Key": "a", "Value": "b"}])
        firehose.delete_delivery_stream(DeliveryStreamName=name)
        assert [fh_status(name)["DeliveryStreamStatus"] for _ in range(STEPS)] == ["DELETING"] * STEPS
        expect_error(lambda: fh_status(name), "ResourceNotFoundException", 400)
    check("firehose async+busy: CREATING, conflicts, DELETING, then gone", firehose_async_busy)

    def firehose_create_failed() -> None:
        name = uid("fh")
        srv.control("POST", "/_pipectl/faults", {"firehose_create_failed": {
            "name": name, "type": "KMS_ACCESS_DENIED", "details": "no access to the key"}})
        fh_create(name)
        assert [fh_status(name)["DeliveryStreamStatus"] for _ in range(STEPS)] == ["CREATING"] * STEPS
        for _ in range(3):
            desc = fh_status(name)
            assert desc["DeliveryStreamStatus"] == "CREATING_FAILED", desc["DeliveryStreamStatus"]
            assert desc["FailureDescription"] == {"Type": "KMS_ACCESS_DENIED",
                                                  "Details": "no access to the key"}
        firehose.delete_delivery_stream(DeliveryStreamName=name)
        for _ in range(STEPS):
            fh_status(name)
        expect_error(lambda: fh_status(name), "ResourceNotFoundException")
    check("firehose failures: firehose_create_failed -> CREATING_FAILED + FailureDescription", firehose_create_failed)

    def firehose_delete_failed() -> None:
        name = uid("fh")
        fh_create(name)
        for _ in range(STEPS):
            fh_status(name)
        srv.control("POST", "/_pipectl/faults", {"firehose_delete_failed": {"name": name}})
        firehose.delete_delivery_stream(DeliveryStreamName=name)
        assert [fh_status(name)["DeliveryStreamStatus"] for _ in range(STEPS)] == ["DELETING"] * STEPS
        desc = fh_status(name)
        assert desc["DeliveryStreamStatus"] == "DELETING_FAILED", desc
        assert desc["FailureDescription"]["Type"] == "RETIRE_KMS_GRANT_FAILED", desc
        firehose.delete_delivery_stream(DeliveryStreamName=name)  # without force: still failing
        for _ in range(STEPS + 1):
            assert fh_status(name)["DeliveryStreamStatus"] in ("DELETING", "DELETING_FAILED")
        assert fh_status(name)["DeliveryStreamStatus"] == "DELETING_FAILED"
        firehose.delete_delivery_stream(DeliveryStreamName=name, AllowForceDelete=True)
        assert [fh_status(name)["DeliveryStreamStatus"] for _ in range(STEPS)] == ["DELETING"] * STEPS
        expect_error(lambda: fh_status(name), "ResourceNotFoundException")
    check("firehose failures: firehose_delete_failed -> DELETING_FAILED until AllowForceDelete", firehose_delete_failed)

    def firehose_quota_denied() -> None:
        name = uid("fh")
        fh_create(name)
        refused = burst_until_refused(lambda: firehose.list_tags_for_delivery_stream(DeliveryStreamName=name))
        expect_error(refused,
                     "ThrottlingException", 400, "Max limit of 5 RPS")
        srv.control("POST", "/_pipectl/faults", {"denied_tags": [
            f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{name}"]})
        time.sleep(1.1)
        expect_error(lambda: firehose.list_tags_for_delivery_stream(DeliveryStreamName=name),
                     "AccessDeniedException", 400)
    check("firehose quota: ListTagsForDeliveryStream 5/s; denied tag read", firehose_quota_denied)

    # ---------------------------------------------------------------- Lambda
    def fn_create(name: str, env: dict | None = None) -> dict:
        kwargs: dict[str, Any] = {}
        if env is not None:
            kwargs["Environment"] = {"Variables": env}
        return lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=shared_role,
                                   Handler="bootstrap", Code={"ZipFile": zip_bytes()}, **kwargs)

    def lambda_async_busy() -> None:
        name = uid("fn")
        created = fn_create(name)
        assert created["State"] == "Pending" and created["StateReasonCode"] == "Creating", created
        expect_error(lambda: lam.update_function_configuration(FunctionName=name, Timeout=10),
                     "ResourceConflictException", 409,
                     "The operation cannot be performed at this time. The function is currently "
                     "in the following state: Pending")
        assert lam.get_function(FunctionName=name)["Configuration"]["State"] == "Pending"
        assert lam.get_function_configuration(FunctionName=name)["State"] == "Pending"
        assert lam.get_function_configuration(FunctionName=name)["State"] == "Active"
        updated = lam.update_function_configuration(FunctionName=name, Timeout=10)
        assert updated["LastUpdateStatus"] == "InProgress", updated
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        expect_error(lambda: lam.update_function_code(FunctionName=name, ZipFile=zip_bytes()),
                     "ResourceConflictException", 409,
                     "The operation cannot be performed at this time. An update is in progress "
                     f"for resource: {arn}")
        seen = [lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"]
                for _ in range(STEPS + 1)]
        assert seen == ["InProgress"] * STEPS + ["Successful"], seen
        lam.update_function_code(FunctionName=name, ZipFile=zip_bytes())
    check("lambda async+busy: Pending, InProgress, ResourceConflictException 409", lambda_async_busy)

    def lambda_env_quota() -> None:
        name = uid("fn")
        ok_env = {"A": "x" * (4096 - len('{"A":""}'))}
        assert len(json.dumps(ok_env, separators=(",", ":"))) == 4096
        fn_create(name, ok_env)
        too_big = {"A": "x" * 4089}
        message = expect_error(lambda: fn_create(uid("fn"), too_big), "InvalidParameterValueException",
                               400, "exceeded the 4KB limit. String measured: {\"A\":\"xxx")
        assert message.startswith("Lambda was unable to configure your environment variables "
                                  "because the environment variables you have provided exceeded "
                                  "the 4KB limit."), message
        for _ in range(STEPS):
            lam.get_function(FunctionName=name)
        expect_error(lambda: lam.update_function_configuration(
            FunctionName=name, Environment={"Variables": too_big}), "InvalidParameterValueException", 400)
    check("lambda quota: 4 KB environment measured as compact JSON", lambda_env_quota)

    def lambda_failed_and_denied() -> None:
        name = uid("fn")
        fn_create(name)
        srv.control("POST", "/_pipectl/faults", {"lambda_failed": {"name": name, "reason": "boom"}})
        for _ in range(STEPS + 1):
            conf = lam.get_function_configuration(FunctionName=name)
            assert (conf["State"], conf["StateReason"], conf["StateReasonCode"]) == (
                "Failed", "boom", "InternalError"), conf
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
        srv.control("POST", "/_pipectl/faults", {"denied_tags": [arn]})
        expect_error(lambda: lam.list_tags(Resource=arn), "AccessDeniedException", 403, "lambda:ListTags")
        lam.delete_function(FunctionName=name)  # the fault goes with the function
        fn_create(name)
        assert lam.get_function_configuration(FunctionName=name)["State"] == "Pending"
    check("lambda failures: lambda_failed -> State Failed; denied ListTags", lambda_failed_and_denied)

    # ---------------------------------------------------------------- OpenSearch
    def domain(name: str) -> dict:
        return os_.describe_domain(DomainName=name)["DomainStatus"]

    def domain_create(name: str) -> dict:
        return os_.create_domain(
            DomainName=name, EngineVersion="OpenSearch_2.11",
            ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 1},
            EBSOptions={"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 10},
            TagList=[{"Key": "stack", "Value": "probe"}])["DomainStatus"]

    def opensearch_create_async() -> None:
        name = uid("d")[:20]
        created = domain_create(name)
        assert created["Processing"] is True and "Endpoint" not in created, created
        for _ in range(STEPS):
            st = domain(name)
            assert st["Processing"] is True and "Endpoint" not in st and st["Created"] is False, st
        st = domain(name)
        assert st["Processing"] is False and st["Endpoint"], st
        expect_error(lambda: domain_create(name), "ResourceAlreadyExistsException", 409)
        many = os_.describe_domains(DomainNames=[name])["DomainStatusList"]
        assert many[0]["Processing"] is False
    check("opensearch async: CreateDomain Processing, no Endpoint; duplicate -> 409", opensearch_create_async)

    def opensearch_update_async_busy() -> None:
        name = uid("d")[:20]
        domain_create(name)
        expect_error(lambda: os_.update_domain_config(DomainName=name, ClusterConfig={
            "InstanceType": "t3.small.search", "InstanceCount": 2}), "ValidationException", 400,
            "A change/update is in progress. Please wait for it to complete before requesting "
            "another change.")
        for _ in range(STEPS):
            domain(name)
        out = os_.update_domain_config(DomainName=name, ClusterConfig={
            "InstanceType": "t3.small.search", "InstanceCount": 2})
        change_id = out["DomainConfig"]["ChangeProgressDetails"]["ChangeId"]
        assert uuid.UUID(change_id), change_id
        progress = os_.describe_domain_change_progress(DomainName=name)["ChangeProgressStatus"]
        assert progress["ChangeId"] == change_id and progress["Status"] == "PROCESSING", progress
        assert progress["PendingProperties"] == ["ClusterConfig"], progress
        assert progress["TotalNumberOfStages"] == len(progress["ChangeProgressStages"]) == 4, progress
        st = domain(name)
        assert st["Processing"] is True and st["ClusterConfig"]["InstanceCount"] == 2, st
        assert st["ChangeProgressDetails"]["ConfigChangeStatus"] == "ApplyingChanges", st
        assert domain(name)["Processing"] is False
        progress = os_.describe_domain_change_progress(DomainName=name, ChangeId=change_id)[
            "ChangeProgressStatus"]
        assert progress["Status"] == "COMPLETED" and progress["CompletedProperties"] == ["ClusterConfig"], progress
    check("opensearch async+busy: UpdateDomainConfig ChangeId, progress, in-progress conflict", opensearch_update_async_busy)

    def opensearch_dry_run() -> None:
        name = uid("d")[:20]
        domain_create(name)
        out = os_.update_domain_config(DomainName=name, DryRun=True, AccessPolicies=POLICY)
        assert out["DryRunResults"]["DeploymentType"] == "Undetermined", out["DryRunResults"]
        for _ in range(STEPS):
            domain(name)

        def dry(**kwargs: Any) -> str:
            result = os_.update_domain_config(DomainName=name, DryRun=True, DryRunMode="Verbose", **kwargs)
            assert result["DryRunProgressStatus"]["DryRunId"], result
            return result["DryRunResults"]["DeploymentType"]

        assert dry(AccessPolicies=POLICY) == "DynamicUpdate"
        assert dry(ClusterConfig={"InstanceType": "m6g.large.search", "InstanceCount": 1}) == "Blue/Green"
        assert dry(ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 3}) == "Blue/Green"
        assert dry(EBSOptions={"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 20}) == "DynamicUpdate"
        assert dry(EBSOptions={"EBSEnabled": True, "VolumeType": "gp3", "VolumeSize": 5}) == "Blue/Green"
        assert dry(NodeToNodeEncryptionOptions={"Enabled": True}) == "Blue/Green"
        assert dry(ClusterConfig={"InstanceType": "t3.small.search", "InstanceCount": 1}) == "None"
        st = domain(name)
        assert st["ClusterConfig"]["InstanceType"] == "t3.small.search" and not st.get("AccessPolicies"), st
        assert st["Processing"] is False
    check("opensearch async: DryRun Blue/Green | DynamicUpdate | None | Undetermined, nothing applied", opensearch_dry_run)

    def opensearch_change_fails() -> None:
        name = uid("d")[:20]
        domain_create(name)
        for _ in range(STEPS):
            domain(name)
        srv.control("POST", "/_pipectl/faults", {"domain_change_fails": {
            "name": name, "message": "Insufficient capacity for m6g"}})
        out = os_.update_domain_config(DomainName=name, ClusterConfig={
            "InstanceType": "m6g.large.search", "InstanceCount": 1})
        change_id = out["DomainConfig"]["ChangeProgressDetails"]["ChangeId"]
        for _ in range(STEPS):
            progress = os_.describe_domain_change_progress(DomainName=name)["ChangeProgressStatus"]
            assert progress["Status"] == "PROCESSING", progress
        progress = os_.describe_domain_change_progress(DomainName=name)["ChangeProgressStatus"]
        assert progress["ChangeId"] == change_id and progress["Status"] == "FAILED", progress
        assert progress["ConfigChangeStatus"] == "ValidationFailed", progress
        assert any(s["Status"] == "FAILED" and "Insufficient capacity" in s["Description"]
                   for s in progress["ChangeProgressStages"]), progress
        st = domain(name)
        assert st["ChangeProgressDetails"]["ConfigChangeStatus"] == "ValidationFailed", st
        assert st["ChangeProgressDetails"]["Message"] == "Insufficient capacity for m6g", st
        assert st["ClusterConfig"]["InstanceType"] == "t3.small.search", "the change was applied"
        assert st["Processing"] is False
    check("opensearch failures: domain_change_fails -> FAILED/ValidationFailed, not applied", opensearch_change_fails)

    def opensearch_delete_async_busy() -> None:
        name = uid("d")[:20]
        domain_create(name)
        for _ in range(STEPS):
            domain(name)
        deleted = os_.delete_domain(DomainName=name)["DomainStatus"]
        assert deleted["Deleted"] is True and deleted["Processing"] is True, deleted
        st = domain(name)
        assert st["Deleted"] is True and st["Processing"] is True, st
        expect_error(lambda: domain_create(name), "ValidationException", 400, "Domain is still being deleted")
        expect_error(lambda: domain(name), "ResourceNotFoundException", 409)
        for _ in range(STEPS):
            expect_error(lambda: domain_create(name), "ValidationException", 400,
                         "Domain is still being deleted")
        assert domain_create(name)["Processing"] is True
    check("opensearch async+busy: DeleteDomain Deleted/Processing, name held while deleting", opensearch_delete_async_busy)

    def opensearch_denied() -> None:
        name = uid("d")[:20]
        arn = domain_create(name)["ARN"]
        assert os_.list_tags(ARN=arn)["TagList"] == [{"Key": "stack", "Value": "probe"}]
        srv.control("POST", "/_pipectl/faults", {"denied_tags": [arn]})
        expect_error(lambda: os_.list_tags(ARN=arn), "AccessDeniedException", 403)
    check("opensearch foreign: denied ListTags -> AccessDeniedException 403", opensearch_denied)

    # ---------------------------------------------------------------- S3
    def s3_foreign() -> None:
        mine = uid("mine")
        s3.create_bucket(Bucket=mine, CreateBucketConfiguration={"LocationConstraint": REGION})
        srv.control("POST", "/_pipectl/faults", {"foreign_buckets": [
            {"name": "zz-redirect", "kind": "redirect"}, {"name": "zz-optin", "kind": "optin"},
            {"name": "zz-denied", "kind": "denied"}, {"name": "zz-taken", "kind": "taken"}]})
        listed = {b["Name"]: b.get("BucketRegion") for b in s3.list_buckets()["Buckets"]}
        assert listed["zz-redirect"] == "us-west-2" and listed["zz-optin"] == "ap-east-1", listed
        assert listed["zz-denied"] == "eu-west-1" and listed[mine] == REGION, listed
        assert "zz-taken" not in listed, listed
        code, _, status = error_of(lambda: s3.head_bucket(Bucket="zz-redirect"))
        assert status == 301, (code, status)
        try:
            s3.get_bucket_tagging(Bucket="zz-redirect")
            raise AssertionError("expected PermanentRedirect")
        except ClientError as e:
            assert e.response["Error"]["Code"] == "PermanentRedirect", e.response
            assert e.response["Error"]["Endpoint"] == "zz-redirect.s3.us-west-2.amazonaws.com", e.response
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 301
        expect_error(lambda: s3.get_bucket_tagging(Bucket="zz-optin"),
                     "IllegalLocationConstraintException", 400, "ap-east-1 location constraint")
        expect_error(lambda: s3.get_bucket_tagging(Bucket="zz-denied"), "AccessDenied", 403, "Access Denied")
        assert error_of(lambda: s3.head_bucket(Bucket="zz-denied"))[2] == 403
        assert error_of(lambda: s3.head_bucket(Bucket="zz-taken"))[2] == 403
        expect_error(lambda: s3.create_bucket(Bucket="zz-taken", CreateBucketConfiguration={
            "LocationConstraint": REGION}), "BucketAlreadyExists", 409)
        # answered without moto: the unread upload is drained, the kept-alive connection works on
        for _ in range(3):
            expect_error(lambda: s3.put_object(Bucket="zz-denied", Key="k", Body=b"y" * 200_000),
                         "AccessDenied", 403)
            assert s3.head_bucket(Bucket=mine)["ResponseMetadata"]["HTTPStatusCode"] == 200
    check("s3 foreign: redirect/optin/denied/taken buckets", s3_foreign)

    def s3_list_pagination() -> None:
        names = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
        page = s3.list_buckets(MaxBuckets=2)
        assert [b["Name"] for b in page["Buckets"]] == names[:2] and page["ContinuationToken"], page
        rest = s3.list_buckets(MaxBuckets=1000, ContinuationToken=page["ContinuationToken"])
        assert [b["Name"] for b in rest["Buckets"]] == names[2:] and "ContinuationToken" not in rest
        paged = [b["Name"] for p in s3.get_paginator("list_buckets").paginate(PaginationConfig={"PageSize": 1})
                 for b in p["Buckets"]]
        assert paged == names, (paged, names)
        assert [b["Name"] for b in s3.list_buckets(Prefix="zz-")["Buckets"]] == [
            "zz-denied", "zz-optin", "zz-redirect"]
        assert [b["Name"] for b in s3.list_buckets(BucketRegion="us-west-2")["Buckets"]] == ["zz-redirect"]
    check("s3: ListBuckets max-buckets/continuation-token/prefix/bucket-region", s3_list_pagination)

    def s3_delete_objects_and_denied() -> None:
        bucket = uid("b")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        for key in ("a", "b/c"):
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
        srv.control("POST", "/_pipectl/faults", {"delete_objects_errors": {
            "bucket": bucket, "code": "AccessDenied", "message": "Access Denied"}})
        out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b/c"}]})
        assert out.get("Deleted", []) == [] and sorted(e["Key"] for e in out["Errors"]) == ["a", "b/c"], out
        assert all(e["Code"] == "AccessDenied" and e["Message"] == "Access Denied" for e in out["Errors"])
        assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 2
        out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b/c"}]})
        assert len(out["Deleted"]) == 2 and not out.get("Errors"), out
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
        srv.control("POST", "/_pipectl/faults", {"denied_tags": [bucket]})
        expect_error(lambda: s3.get_bucket_tagging(Bucket=bucket), "AccessDenied", 403)
    check("s3 failures: delete_objects_errors per-key 200; denied GetBucketTagging", s3_delete_objects_and_denied)

    # ---------------------------------------------------------------- Tagging API
    def tagging_api() -> None:
        srv.control("POST", "/_pipectl/reset", {})
        tag = {"Key": "rgt", "Value": uid("v")}
        stream = uid("ks")
        kinesis.create_stream(StreamName=stream, ShardCount=1, Tags={tag["Key"]: tag["Value"], "kind": "stream"})
        dom = uid("d")[:20]
        os_.create_domain(DomainName=dom, TagList=[tag, {"Key": "kind", "Value": "domain"}])
        fn = uid("fn")
        lam.create_function(FunctionName=fn, Runtime="provided.al2023", Role=shared_role,
                            Handler="bootstrap", Code={"ZipFile": zip_bytes()},
                            Tags={tag["Key"]: tag["Value"], "kind": "function"})
        fh = uid("fh")
        firehose.create_delivery_stream(
            DeliveryStreamName=fh, Tags=[tag, {"Key": "kind", "Value": "firehose"}],
            ExtendedS3DestinationConfiguration={"RoleARN": shared_role, "BucketARN": "arn:aws:s3:::b"})
        bucket = uid("b")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [tag, {"Key": "kind", "Value": "bucket"}]})
        other_region = uid("b")
        s3_west = boto3.client("s3", region_name="us-west-2", endpoint_url=srv.url,
                               aws_access_key_id="testing", aws_secret_access_key="testing",
                               config=Config(s3={"addressing_style": "path"}))
        s3_west.create_bucket(Bucket=other_region, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        s3.put_bucket_tagging(Bucket=other_region, Tagging={"TagSet": [tag]})
        iam.tag_role(RoleName=shared_role_name, Tags=[tag])

        def arns(**kwargs: Any) -> set[str]:
            out: set[str] = set()
            for page in tagging.get_paginator("get_resources").paginate(**kwargs):
                out |= {r["ResourceARN"] for r in page["ResourceTagMappingList"]}
            return out

        everything = {
            f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}",
            f"arn:aws:es:{REGION}:{ACCOUNT}:domain/{dom}",
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{fn}",
            f"arn:aws:firehose:{REGION}:{ACCOUNT}:deliverystream/{fh}",
            f"arn:aws:s3:::{bucket}"}
        got = arns(TagFilters=[{"Key": tag["Key"], "Values": [tag["Value"]]}])
        assert got == everything, got ^ everything  # no role, no bucket of another region
        by_type = {
            "kinesis": "stream/", "kinesis:stream": "stream/", "es": "domain/", "es:domain": "domain/",
            "lambda": ":function:", "lambda:function": ":function:", "firehose": "deliverystream/",
            "firehose:deliverystream": "deliverystream/", "s3": ":::"}
        for rtype, marker in by_type.items():
            got = arns(TagFilters=[{"Key": tag["Key"], "Values": [tag["Value"]]}], ResourceTypeFilters=[rtype])
            assert len(got) == 1 and marker in got.pop(), (rtype, got)
        got = arns(TagFilters=[{"Key": tag["Key"], "Values": [tag["Value"]]},
                               {"Key": "kind", "Values": ["stream", "domain"]}])
        assert {a.rsplit("/", 1)[-1] for a in got} == {stream, dom}, got
        got = arns(TagFilters=[{"Key": tag["Key"], "Values": [tag["Value"]]}, {"Key": "absent"}])
        assert got == set(), got
        pages = list(tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": tag["Key"], "Values": [tag["Value"]]}], ResourcesPerPage=2))
        assert len(pages) == 3 and sum(len(p["ResourceTagMappingList"]) for p in pages) == 5, pages
        calls = srv.control("GET", "/_pipectl/calls")
        assert calls.get("tagging:GetResources", 0) >= 10 and calls.get("kinesis:CreateStream") == 1, calls
        assert calls.get("iam:TagRole") == 1 and calls.get("s3:PutBucketTagging") == 2, calls
        assert calls.get("opensearch:CreateDomain") == 1 and calls.get("lambda:CreateFunction") == 1, calls
    check("tagging API: streams and domains found; filters and pagination; no roles", tagging_api)


# --------------------------------------------------------------------------------------------
# Phase 2: PIPECTL_AWS_LIKE unset
# --------------------------------------------------------------------------------------------

def phase_plain(srv: Server) -> None:
    kinesis, firehose, lam = srv.client("kinesis"), srv.client("firehose"), srv.client("lambda")
    os_, s3, iam = srv.client("opensearch"), srv.client("s3"), srv.client("iam")
    tagging = srv.client("resourcegroupstaggingapi")

    def plain_kinesis() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1, Tags={"t": "1"})
        assert stream_status(kinesis, name) == "ACTIVE"
        kinesis.update_shard_count(StreamName=name, TargetShardCount=5, ScalingType="UNIFORM_SCALING")
        assert stream_status(kinesis, name) == "ACTIVE"
        for _ in range(8):
            kinesis.list_tags_for_stream(StreamName=name)  # no quota
        assert kinesis.list_tags_for_stream(StreamName=name)["Tags"] == [{"Key": "t", "Value": "1"}]
        kinesis.delete_stream(StreamName=name)
        expect_error(lambda: stream_status(kinesis, name), "ResourceNotFoundException")
        arns = {r["ResourceARN"] for r in tagging.get_resources(
            TagFilters=[{"Key": "t", "Values": ["1"]}])["ResourceTagMappingList"]}
        assert arns == set(), arns
        other = uid("ks")
        kinesis.create_stream(StreamName=other, ShardCount=1, Tags={"t": "2"})
        arns = {r["ResourceARN"] for r in tagging.get_resources(
            TagFilters=[{"Key": "t", "Values": ["2"]}])["ResourceTagMappingList"]}
        assert arns == {f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{other}"}, arns
    check("plain: Kinesis ACTIVE at once, no limits; Tags + GetResources fixes on", plain_kinesis)

    def plain_upgrades_and_bucket_tags() -> None:
        name = uid("up")[:20].lower()
        os_.create_domain(DomainName=name, EngineVersion="Elasticsearch_7.10")
        mine = os_.get_compatible_versions(DomainName=name)["CompatibleVersions"]
        assert mine == [{"SourceVersion": "Elasticsearch_7.10",
                         "TargetVersions": ["OpenSearch_1.0", "OpenSearch_1.1", "OpenSearch_1.2",
                                            "OpenSearch_1.3"]}], mine
        every = os_.get_compatible_versions()["CompatibleVersions"]
        assert any(m["SourceVersion"] == "OpenSearch_1.3" for m in every), every
        expect_error(lambda: os_.upgrade_domain(DomainName=name, TargetVersion="OpenSearch_2.13"),
                     "ValidationException")
        os_.upgrade_domain(DomainName=name, TargetVersion="OpenSearch_1.3")
        seen = []
        while True:
            st = os_.get_upgrade_status(DomainName=name)
            seen.append((st["UpgradeStep"], st["StepStatus"]))
            if st["UpgradeStep"] == "UPGRADE" and st["StepStatus"] == "SUCCEEDED":
                break
            assert len(seen) < 10, seen
        assert seen[0] == ("PRE_UPGRADE_CHECK", "SUCCEEDED"), seen
        version = os_.describe_domain(DomainName=name)["DomainStatus"]["EngineVersion"]
        assert version == "OpenSearch_1.3", version
        bucket = uid("tagged-bucket").lower()
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={
            "LocationConstraint": REGION, "Tags": [{"Key": "pipectl:stack", "Value": "s"}]})
        tags = s3.get_bucket_tagging(Bucket=bucket)["TagSet"]
        assert tags == [{"Key": "pipectl:stack", "Value": "s"}], tags
        s3.delete_bucket(Bucket=bucket)
        os_.delete_domain(DomainName=name)
        limits = os_.describe_instance_type_limits(EngineVersion="OpenSearch_2.13",
                                                   InstanceType="m5.large.search")["LimitsByRole"]["data"]
        gp3 = [t for t in limits["StorageTypes"] if t.get("StorageSubTypeName") == "gp3"][0]
        assert {"LimitName": "MaximumVolumeSize", "LimitValues": ["1024"]} in gp3["StorageTypeLimits"], gp3
    check("plain: UpgradeDomain/GetUpgradeStatus/GetCompatibleVersions; CreateBucket Tags; DescribeInstanceTypeLimits", plain_upgrades_and_bucket_tags)

    def plain_lambda_iam_firehose() -> None:
        role = create_role(iam, uid("role"))
        name = uid("fn")
        out = lam.create_function(FunctionName=name, Runtime="provided.al2023", Role=role,
                                  Handler="bootstrap", Code={"ZipFile": zip_bytes()},
                                  Environment={"Variables": {"A": "x" * 5000}})
        assert out["State"] == "Active", out
        lam.update_function_configuration(FunctionName=name, Timeout=10)
        lam.update_function_configuration(FunctionName=name, Timeout=11)
        assert lam.get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"] == "Successful"
        fh = uid("fh")
        firehose.create_delivery_stream(DeliveryStreamName=fh, ExtendedS3DestinationConfiguration={
            "RoleARN": role, "BucketARN": "arn:aws:s3:::b"})
        desc = firehose.describe_delivery_stream(DeliveryStreamName=fh)["DeliveryStreamDescription"]
        assert desc["DeliveryStreamStatus"] == "ACTIVE", desc
        firehose.delete_delivery_stream(DeliveryStreamName=fh)
        expect_error(lambda: firehose.describe_delivery_stream(DeliveryStreamName=fh), "ResourceNotFoundException")
    check("plain: Lambda Active at once, no IAM propagation, no env quota; Firehose ACTIVE", plain_lambda_iam_firehose)

    def plain_opensearch() -> None:
        name = uid("d")[:20]
        st = os_.create_domain(DomainName=name)["DomainStatus"]
        assert st["Processing"] is False and st["Endpoint"], st
        st = os_.describe_domain(DomainName=name)["DomainStatus"]
        assert st["Processing"] is False and "ChangeProgressDetails" not in st, st
        out = os_.update_domain_config(DomainName=name, AccessPolicies=POLICY)
        assert "ChangeProgressDetails" not in out["DomainConfig"], out
        os_.delete_domain(DomainName=name)
        expect_error(lambda: os_.describe_domain(DomainName=name), "ResourceNotFoundException", 409)
    check("plain: OpenSearch Processing false at once, update untouched", plain_opensearch)

    def plain_faults_inactive_and_s3() -> None:
        armed = srv.control("POST", "/_pipectl/faults", {"foreign_buckets": [{"name": "zz-x", "kind": "denied"}]})
        assert armed["inactive"] == ["foreign_buckets"] and armed["behaviours"] == [], armed
        bucket = uid("b")
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        listed = s3.list_buckets()["Buckets"]
        assert [b["Name"] for b in listed] == [bucket] and listed[0]["BucketRegion"] == REGION, listed
        expect_error(lambda: s3.head_bucket(Bucket="zz-x"), "404", 404)
        assert srv.control("GET", "/_pipectl/calls").get("s3:ListBuckets") == 1
    check("plain: faults inactive; ListBuckets has BucketRegion (gap fix)", plain_faults_inactive_and_s3)


# --------------------------------------------------------------------------------------------
# Phase 3: PIPECTL_AWS_LIKE=async (one behaviour alone)
# --------------------------------------------------------------------------------------------

def phase_async_only(srv: Server) -> None:
    kinesis, lam, iam = srv.client("kinesis"), srv.client("lambda"), srv.client("iam")

    def async_only() -> None:
        name = uid("ks")
        kinesis.create_stream(StreamName=name, ShardCount=1)
        kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "b"})  # no busy check
        kinesis.update_shard_count(StreamName=name, TargetShardCount=8, ScalingType="UNIFORM_SCALING")
        assert stream_status(kinesis, name) == "UPDATING"  # the update replaced CREATING
        for _ in range(8):
            kinesis.list_tags_for_stream(StreamName=name)  # no quota
        role = create_role(iam, uid("role"))  # no propagation
        fn = uid("fn")
        out = lam.create_function(FunctionName=fn, Runtime="provided.al2023", Role=role,
                                  Handler="bootstrap", Code={"ZipFile": zip_bytes()})
        assert out["State"] == "Pending", out
        lam.update_function_configuration(FunctionName=fn, Timeout=10)  # no conflict
        armed = srv.control("POST", "/_pipectl/faults", {"lambda_failed": {"name": fn}})
        assert armed["inactive"] == ["lambda_failed"], armed
        assert lam.get_function_configuration(FunctionName=fn)["State"] != "Failed"
    check("async only: transitions without busy/quota/iam/failures", async_only)


def main() -> int:
    for phase, setting in ((phase_all, "all"), (phase_plain, None), (phase_async_only, "async")):
        print(f"--- PIPECTL_AWS_LIKE={setting or '(unset)'}")
        srv = Server({"PIPECTL_AWS_LIKE": setting, "PIPECTL_AWS_LIKE_STEPS": str(STEPS)}, "aws-like-",
                     CLIENT_CONFIG)
        try:
            phase(srv)
        finally:
            srv.stop()
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
