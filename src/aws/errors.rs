//! Classifying SDK errors. Every match on an AWS error code or message lives here, each with
//! the reason, so the rest of pipectl asks only "not found? transient? propagating?".

use std::error::Error as StdError;
use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The resource does not exist.
    NotFound,
    /// AWS asked us to slow down.
    Throttled,
    /// A just-created IAM role or policy is not yet visible to the calling service.
    NotYetPropagated,
    /// Another change to the resource is in progress; trying again later works.
    Busy,
    /// A server-side failure or timeout that AWS says to retry (5xx with an error code).
    Transient,
    /// The caller may not do or see this (another account's or another team's resource).
    Denied,
    /// Anything else: retrying will not help.
    Fatal,
}

/// An AWS call that failed: which call, on which resource, AWS's code and message.
#[derive(Debug)]
pub struct AwsError {
    pub op: String,
    pub resource: String,
    pub code: String,
    pub message: String,
    pub status: Option<u16>,
    pub class: ErrorClass,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {} failed: {}", self.op, self.resource, self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        Ok(())
    }
}

impl StdError for AwsError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn StdError + 'static))
    }
}

impl AwsError {
    pub fn is(&self, class: ErrorClass) -> bool {
        self.class == class
    }

    /// Worth another attempt: throttling, IAM propagation, busy, or a transient AWS failure.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.class,
            ErrorClass::Throttled | ErrorClass::NotYetPropagated | ErrorClass::Busy | ErrorClass::Transient
        )
    }

    /// A failed request to a domain's REST endpoint (see `search`), classified by the caller.
    pub fn http(
        op: &str,
        resource: &str,
        code: &str,
        message: String,
        status: Option<u16>,
        class: ErrorClass,
    ) -> AwsError {
        AwsError { op: op.into(), resource: resource.into(), code: code.into(), message, status, class, source: None }
    }

    /// The same error in another class (a local "not found", say).
    pub fn with_class(mut self, class: ErrorClass) -> AwsError {
        self.class = class;
        self
    }

    /// An error raised by pipectl itself about a resource (not an SDK failure).
    pub fn local(op: &str, resource: &str, code: &str, message: impl Into<String>) -> AwsError {
        AwsError {
            op: op.into(),
            resource: resource.into(),
            code: code.into(),
            message: message.into(),
            status: None,
            class: ErrorClass::Fatal,
            source: None,
        }
    }
}

/// A delete that finds the resource already gone has done its job.
pub fn gone_ok<T>(r: Result<T, AwsError>) -> Result<(), AwsError> {
    match r {
        Err(e) if !e.is(ErrorClass::NotFound) => Err(e),
        _ => Ok(()),
    }
}

/// Converts an SDK error, keeping code, message and HTTP status, and classifies it.
pub fn from_sdk<E>(op: &str, resource: &str, err: SdkError<E, HttpResponse>) -> AwsError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let (code, message) = match &err {
        SdkError::ServiceError(_) => (err.code().unwrap_or("").to_string(), err.message().unwrap_or("").to_string()),
        SdkError::TimeoutError(_) => ("Timeout".to_string(), String::new()),
        SdkError::DispatchFailure(_) => ("DispatchFailure".to_string(), "could not reach the endpoint".to_string()),
        SdkError::ResponseError(_) => ("ResponseError".to_string(), "unreadable response".to_string()),
        _ => ("Error".to_string(), String::new()),
    };
    let code = if code.is_empty() {
        // moto answers unimplemented operations and its own crashes with a bare HTTP 500
        // and an HTML body; S3 HeadBucket answers a missing bucket with a bare 404.
        match status {
            Some(404) => "NotFound".to_string(),
            Some(s) => format!("HTTP{s}"),
            None => "Unknown".to_string(),
        }
    } else {
        code
    };
    let class = classify(op, &code, &message, status);
    AwsError {
        op: op.into(),
        resource: resource.into(),
        code,
        message,
        status,
        class,
        source: match &err {
            // A service error is fully described by its code and message.
            SdkError::ServiceError(_) => None,
            // Otherwise the chain (e.g. "connection refused") is the useful part.
            _ => Some(Box::new(Cause(aws_smithy_types::error::display::DisplayErrorContext(&err).to_string()))),
        },
    }
}

#[derive(Debug)]
struct Cause(String);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Cause {}

/// The classification table. `op` is `service:Action`: some codes mean different things in
/// different services. Codes are the services' documented error codes; message matching is
/// used only where AWS gives one code to a transient and a permanent condition.
pub fn classify(op: &str, code: &str, message: &str, status: Option<u16>) -> ErrorClass {
    let msg = message.to_ascii_lowercase();
    let service = op.split(':').next().unwrap_or("");
    match code {
        // Kinesis, Firehose, Lambda, OpenSearch; IAM; S3 (HeadBucket: a bare 404).
        "ResourceNotFoundException" | "NoSuchEntity" | "NoSuchBucket" | "NotFound" => ErrorClass::NotFound,
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "ProvisionedThroughputExceededException"
        | "SlowDown" => ErrorClass::Throttled,
        // Kinesis and Firehose answer both their API rate limits ("Rate exceeded for stream
        // ...", e.g. ListTagsForStream's 5 calls/s per account) and hard quotas with
        // LimitExceededException: the account's shard quota ("exceed the shard limit for the
        // account"), UpdateShardCount's 10 scalings per rolling 24 hours and its x2 / half
        // bounds (Kinesis API reference, UpdateShardCount), Firehose's delivery-stream quota.
        // Retrying a quota only burns time, so like terraform-provider-aws (kinesis stream
        // retry predicates) only the rate wording, and Kinesis's "simultaneously be in CREATING
        // or DELETING" (a bounded number of streams changing at once), count as throttling.
        "LimitExceededException" if matches!(service, "kinesis" | "firehose") => {
            if msg.contains("rate exceeded") || msg.contains("simultaneously") {
                ErrorClass::Throttled
            } else {
                ErrorClass::Fatal
            }
        }
        // OpenSearch (domains/instances per account), Lambda and IAM use LimitExceeded(Exception)
        // for quotas only; their rate limits are ThrottlingException/Throttling.
        "LimitExceededException" | "LimitExceeded" => ErrorClass::Fatal,
        // Lambda: a role created seconds ago "cannot be assumed by Lambda" until IAM has
        // propagated it; a policy just put on it may not apply yet either (terraform-provider-aws
        // retries CreateFunction on both messages).
        "InvalidParameterValueException"
            if service == "lambda"
                && (msg.contains("cannot be assumed") || msg.contains("execution role does not have permissions")) =>
        {
            ErrorClass::NotYetPropagated
        }
        // Firehose: "Firehose is unable to assume role ..." and "Verify that the IAM role has
        // access to the ... domain" while a new role or its inline policy propagates
        // (terraform-provider-aws retries CreateDeliveryStream/UpdateDestination on these).
        "InvalidArgumentException" | "InvalidArgument"
            if service == "firehose"
                && (msg.contains("assume role")
                    || msg.contains("unable to assume")
                    || msg.contains("not authorized")
                    || msg.contains("verify that the iam role has access")) =>
        {
            ErrorClass::NotYetPropagated
        }
        // OpenSearch rejects an access policy naming a role IAM does not show yet.
        "ValidationException" | "InvalidTypeException" if service == "opensearch" && msg.contains("principal") => {
            ErrorClass::NotYetPropagated
        }
        "MalformedPolicyDocument" if msg.contains("invalid principal") => ErrorClass::NotYetPropagated,
        // OpenSearch: one configuration change at a time ("A change/update is in progress"),
        // and a name stays taken while its previous domain is still being deleted.
        _ if service == "opensearch" && (msg.contains("in progress") || msg.contains("still being deleted")) => {
            ErrorClass::Busy
        }
        // "Already exists" shares its code with "busy" in Kinesis/Firehose (ResourceInUse) and
        // Lambda (ResourceConflict); retrying a name clash never helps.
        "ResourceInUseException" | "ResourceConflictException" if msg.contains("already exist") => ErrorClass::Fatal,
        // Another update is still running on the resource.
        "ResourceInUseException" | "ResourceConflictException" | "OperationAbortedException" => ErrorClass::Busy,
        // Firehose: the version id the plan read is stale; only a new plan helps. IAM uses the
        // same code for concurrent writes to one entity, which do clear.
        "ConcurrentModificationException" if service == "firehose" => ErrorClass::Fatal,
        "ConcurrentModification" | "ConcurrentModificationException" => ErrorClass::Busy,
        // Server-side failures AWS documents as retryable, and client timeouts.
        "InternalFailure"
        | "InternalError"
        | "InternalServerError"
        | "InternalServerException"
        | "InternalException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "ServiceFailure"
        | "HTTP502"
        | "HTTP503"
        | "HTTP504"
        | "Timeout" => ErrorClass::Transient,
        // A bare 500 without an error code: moto's answer to operations it does not implement
        // (deterministic). AWS always names its 500s (InternalFailure), handled above.
        "HTTP500" => ErrorClass::Fatal,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "HTTP403" => ErrorClass::Denied,
        _ if status == Some(404) && code.is_empty() => ErrorClass::NotFound,
        _ => ErrorClass::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        use ErrorClass::*;
        for (op, code, msg, status, want) in [
            ("kinesis:DescribeStreamSummary", "ResourceNotFoundException", "Stream x not found", Some(400), NotFound),
            ("iam:GetRole", "NoSuchEntity", "The role with name x cannot be found.", Some(404), NotFound),
            ("s3:HeadBucket", "NoSuchBucket", "", Some(404), NotFound),
            ("s3:HeadBucket", "NotFound", "", Some(404), NotFound),
            ("lambda:GetFunction", "ThrottlingException", "Rate exceeded", Some(429), Throttled),
            ("iam:GetRole", "Throttling", "Rate exceeded", Some(400), Throttled),
            ("kinesis:ListTagsForStream", "LimitExceededException", "Rate exceeded for stream x", Some(400), Throttled),
            (
                "kinesis:CreateStream",
                "LimitExceededException",
                "Only 5 streams can simultaneously be in CREATING or DELETING state",
                Some(400),
                Throttled,
            ),
            (
                "firehose:ListTagsForDeliveryStream",
                "LimitExceededException",
                "Rate exceeded for ListTagsForDeliveryStream",
                Some(400),
                Throttled,
            ),
            // Hard quotas are not throttling: retrying them only burns time.
            (
                "kinesis:CreateStream",
                "LimitExceededException",
                "This request would exceed the shard limit for the account",
                Some(400),
                Fatal,
            ),
            (
                "kinesis:UpdateShardCount",
                "LimitExceededException",
                "Stream s has exceeded the number of UpdateShardCount calls allowed in a rolling 24 hour period",
                Some(400),
                Fatal,
            ),
            ("opensearch:CreateDomain", "LimitExceededException", "domain limit reached", Some(409), Fatal),
            ("iam:CreateRole", "LimitExceeded", "Cannot exceed quota for RolesPerAccount", Some(409), Fatal),
            (
                "lambda:CreateFunction",
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
                Some(400),
                NotYetPropagated,
            ),
            ("lambda:CreateFunction", "InvalidParameterValueException", "Memory must be 128..10240", Some(400), Fatal),
            (
                "firehose:CreateDeliveryStream",
                "InvalidArgumentException",
                "Firehose is unable to assume role arn:aws:iam::1:role/r. Please check the role provided.",
                Some(400),
                NotYetPropagated,
            ),
            (
                "firehose:CreateDeliveryStream",
                "InvalidArgumentException",
                "Verify that the IAM role has access to the OpenSearch domain.",
                Some(400),
                NotYetPropagated,
            ),
            (
                "firehose:CreateDeliveryStream",
                "InvalidArgumentException",
                "Exactly one destination configuration is supported for a Firehose",
                Some(400),
                Fatal,
            ),
            ("kinesis:UpdateShardCount", "ResourceInUseException", "Stream s is being updated", Some(400), Busy),
            (
                "kinesis:CreateStream",
                "ResourceInUseException",
                "Stream s under account 1 already exists.",
                Some(400),
                Fatal,
            ),
            (
                "lambda:UpdateFunctionCode",
                "ResourceConflictException",
                "An update is in progress for resource: arn",
                Some(409),
                Busy,
            ),
            ("lambda:CreateFunction", "ResourceConflictException", "Function already exist: f", Some(409), Fatal),
            (
                "opensearch:UpdateDomainConfig",
                "ValidationException",
                "A change/update is in progress. Please wait for it to complete before requesting another change.",
                Some(400),
                Busy,
            ),
            (
                "opensearch:CreateDomain",
                "ResourceAlreadyExistsException",
                "Domain is still being deleted",
                Some(409),
                Busy,
            ),
            ("opensearch:CreateDomain", "ResourceAlreadyExistsException", "domain exists", Some(409), Fatal),
            ("firehose:UpdateDestination", "ConcurrentModificationException", "stale version", Some(400), Fatal),
            ("iam:PutRolePolicy", "ConcurrentModification", "concurrent", Some(409), Busy),
            ("kinesis:ListStreams", "InternalFailure", "", Some(500), Transient),
            ("s3:PutBucketTagging", "HTTP503", "", Some(503), Transient),
            // moto's unimplemented operations: a bare 500, deterministic.
            ("kinesis:TagResource", "HTTP500", "", Some(500), Fatal),
            ("lambda:ListTags", "AccessDeniedException", "no", Some(403), Denied),
            ("s3:GetBucketTagging", "AccessDenied", "Access Denied", Some(403), Denied),
            ("s3:HeadBucket", "HTTP403", "", Some(403), Denied),
        ] {
            assert_eq!(classify(op, code, msg, status), want, "{op} {code}: {msg}");
        }
    }
}
