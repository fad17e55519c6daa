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
    let class = classify(&code, &message, status);
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

/// The classification table. Codes are the services' documented error codes.
pub fn classify(code: &str, message: &str, status: Option<u16>) -> ErrorClass {
    let msg = message.to_ascii_lowercase();
    match code {
        // Kinesis, Firehose, Lambda, OpenSearch; IAM; S3.
        "ResourceNotFoundException" | "NoSuchEntity" | "NoSuchBucket" | "NotFound" => ErrorClass::NotFound,
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "ProvisionedThroughputExceededException"
        | "SlowDown"
        | "LimitExceededException" => {
            // Kinesis reports control-plane rate limits as LimitExceededException; a quota
            // (e.g. shard limit) uses the same code with "limit" wording and is not transient.
            if code == "LimitExceededException" && (msg.contains("quota") || msg.contains("shard limit")) {
                ErrorClass::Fatal
            } else {
                ErrorClass::Throttled
            }
        }
        // Lambda: a role created seconds ago "cannot be assumed by Lambda" until IAM has
        // propagated it (minutes at most).
        "InvalidParameterValueException" if msg.contains("cannot be assumed") => ErrorClass::NotYetPropagated,
        // Firehose: "Firehose is unable to assume role ..." / "... is not authorized to
        // perform ..." while a new role or inline policy propagates.
        "InvalidArgumentException" | "InvalidArgument"
            if msg.contains("assume role") || msg.contains("not authorized") || msg.contains("unable to assume") =>
        {
            ErrorClass::NotYetPropagated
        }
        // OpenSearch rejects an access policy naming a role IAM does not show yet.
        "ValidationException" | "InvalidTypeException" if msg.contains("principal") => ErrorClass::NotYetPropagated,
        "MalformedPolicyDocument" if msg.contains("invalid principal") => ErrorClass::NotYetPropagated,
        // Another update is still running on the resource.
        "ResourceInUseException"
        | "ResourceConflictException"
        | "ConcurrentModificationException"
        | "OperationAbortedException" => ErrorClass::Busy,
        "HTTP500"
        | "HTTP502"
        | "HTTP503"
        | "HTTP504"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "InternalServerError"
        | "ServiceUnavailableException"
        | "InternalException" => {
            // moto returns a bare 500 for operations it does not implement; those are not
            // transient. Real AWS 5xx are retried by the SDK before they get here.
            ErrorClass::Fatal
        }
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
        for (code, msg, status, want) in [
            ("ResourceNotFoundException", "Stream x not found", Some(400), NotFound),
            ("NoSuchEntity", "The role with name x cannot be found.", Some(404), NotFound),
            ("NoSuchBucket", "", Some(404), NotFound),
            ("NotFound", "", Some(404), NotFound),
            ("ThrottlingException", "Rate exceeded", Some(400), Throttled),
            ("Throttling", "Rate exceeded", Some(400), Throttled),
            ("LimitExceededException", "Rate exceeded for stream", Some(400), Throttled),
            ("LimitExceededException", "This request would exceed the shard limit for the account", Some(400), Fatal),
            (
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
                Some(400),
                NotYetPropagated,
            ),
            ("InvalidParameterValueException", "Memory must be 128..10240", Some(400), Fatal),
            (
                "InvalidArgumentException",
                "Firehose is unable to assume role arn:aws:iam::1:role/r",
                Some(400),
                NotYetPropagated,
            ),
            (
                "InvalidArgumentException",
                "Exactly one destination configuration is supported for a Firehose",
                Some(400),
                Fatal,
            ),
            ("ResourceInUseException", "Stream is being updated", Some(400), Busy),
            ("ResourceConflictException", "An update is in progress", Some(409), Busy),
            ("ConcurrentModificationException", "version mismatch", Some(400), Busy),
            ("HTTP500", "", Some(500), Fatal),
            ("AccessDeniedException", "no", Some(403), Fatal),
        ] {
            assert_eq!(classify(code, msg, status), want, "{code}: {msg}");
        }
    }
}
