//! Signed HTTPS requests to an OpenSearch Service domain's REST endpoint (the data plane: index
//! templates, Dashboards saved objects), the way the SDK clients reach the control plane: the
//! same credential chain, SigV4 for service `es` in the stack's region, the SDK's own HTTP
//! client (hyper + rustls), bounded timeouts, and the same retry loop and call counter.
//!
//! A domain answers a request its access policy does not admit with 403; that error says who
//! was refused and how to fix it, instead of a bare status (see `refused`).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings};
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::byte_stream::ByteStream;
use serde_json::Value;

use super::errors::{AwsError, ErrorClass};
use super::wait::{retry_loop, Timing};
use super::CallCounter;

/// The SigV4 service name of OpenSearch Service domain endpoints (both engine families).
pub const SIGNING_SERVICE: &str = "es";
/// Connect and read timeouts of one request; a whole attempt is bounded by `ATTEMPT_TIMEOUT`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a path segment keeps unescaped: RFC 3986 unreserved characters (index and template
/// names are lowercase letters, digits, `-`, `_`, `.`, `+`).
pub const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A domain's answer: the status and the body (JSON when the domain sent JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// One request to a domain: what it is for (`op`, `resource`, for errors and retry reports),
/// where it goes, and what it carries.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub op: &'a str,
    pub resource: &'a str,
    /// The domain's base URL (`Search::base_url`).
    pub base: &'a str,
    pub method: &'a str,
    /// Starts with `/`; may carry a query.
    pub path: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Option<&'a Value>,
}

impl<'a> Call<'a> {
    pub fn new(op: &'a str, resource: &'a str, base: &'a str, method: &'a str, path: &'a str) -> Call<'a> {
        Call { op, resource, base, method, path, headers: &[], body: None }
    }
    pub fn body(self, body: &'a Value) -> Call<'a> {
        Call { body: Some(body), ..self }
    }
    pub fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Call<'a> {
        Call { headers, ..self }
    }
}

/// The client for domain endpoints. Cheap to clone.
#[derive(Clone)]
pub struct Search {
    connector: Arc<aws_smithy_http_client::Connector>,
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    /// `--search-endpoint-url` / `PIPECTL_SEARCH_ENDPOINT_URL`: used instead of the endpoint
    /// DescribeDomain reports (a tunnel, a proxy, a test stand-in).
    pub endpoint_override: Option<String>,
    calls: CallCounter,
}

impl std::fmt::Debug for Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Search")
            .field("region", &self.region)
            .field("endpoint_override", &self.endpoint_override)
            .finish()
    }
}

impl Search {
    pub fn new(cfg: &aws_config::SdkConfig, calls: CallCounter) -> Search {
        let connector = aws_smithy_http_client::Connector::builder()
            .connector_settings(
                HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build(),
            )
            .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
            .build();
        Search {
            connector: Arc::new(connector),
            credentials: cfg.credentials_provider(),
            region: cfg.region().map(|r| r.to_string()).unwrap_or_default(),
            endpoint_override: None,
            calls,
        }
    }

    /// The base URL of a domain: the override, else `https://` and DescribeDomain's endpoint.
    pub fn base_url(&self, endpoint: &str) -> String {
        match &self.endpoint_override {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("https://{endpoint}"),
        }
    }

    /// Sends one signed request, retrying what the domain says is transient (429, 5xx,
    /// timeouts, connection failures) like every AWS call. 2xx answers `Ok`; any other status
    /// is an error classified by `classify`.
    pub async fn request(
        &self,
        timing: &Timing,
        on_retry: &(dyn Fn(&AwsError, u32, Duration) + Sync),
        c: Call<'_>,
    ) -> Result<Reply, AwsError> {
        let url = format!("{}{}", c.base, c.path);
        let bytes = c.body.map(|b| serde_json::to_vec(b).expect("JSON serialises")).unwrap_or_default();
        retry_loop(timing, on_retry, || async {
            let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, self.send_once(&c, &url, &bytes));
            let reply = match sent.await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(error(
                        &c,
                        None,
                        "Timeout",
                        format!("no answer from {url} within {}s", ATTEMPT_TIMEOUT.as_secs()),
                    ))
                }
            };
            if (200..300).contains(&reply.status) {
                return Ok(reply);
            }
            let (code, message) = describe(&reply.body);
            // The AWS front end's answers carry no error type: name them by status.
            let code = match (code.as_str(), reply.status) {
                ("Error", 403) => "AccessDenied".to_string(),
                ("Error", 429) => "TooManyRequests".to_string(),
                ("Error", s) => format!("HTTP{s}"),
                _ => code,
            };
            let message = if reply.status == 403 { refused(c.method, &url, &message) } else { message };
            Err(error(&c, Some(reply.status), &code, message))
        })
        .await
    }

    async fn send_once(&self, c: &Call<'_>, url: &str, body: &[u8]) -> Result<Reply, AwsError> {
        let uri: http::Uri = url.parse().map_err(|e| error(c, None, "BadEndpoint", format!("{url}: {e}")))?;
        let authority = uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default();
        let mut builder = http::Request::builder()
            .method(c.method)
            .uri(uri)
            .header("host", &authority)
            .header("content-type", "application/json");
        for (k, v) in c.headers {
            builder = builder.header(*k, *v);
        }
        let mut req = builder.body(body.to_vec()).map_err(|e| error(c, None, "BadRequest", e.to_string()))?;
        self.sign(c, &mut req).await?;
        let req =
            HttpRequest::try_from(req.map(SdkBody::from)).map_err(|e| error(c, None, "BadRequest", e.to_string()))?;
        self.calls.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self.connector.call(req).await.map_err(|e| {
            let what = if e.is_timeout() { "Timeout" } else { "DispatchFailure" };
            error(
                c,
                None,
                what,
                format!("could not reach {url}: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)),
            )
        })?;
        let status = resp.status().as_u16();
        let bytes = ByteStream::new(resp.into_body())
            .collect()
            .await
            .map_err(|e| error(c, Some(status), "ResponseError", format!("reading the answer: {e}")))?
            .into_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body })
    }

    /// Adds the SigV4 headers (Authorization, X-Amz-Date, X-Amz-Security-Token) for `es`.
    async fn sign(&self, c: &Call<'_>, req: &mut http::Request<Vec<u8>>) -> Result<(), AwsError> {
        let Some(provider) = &self.credentials else {
            return Err(error(c, None, "NoCredentials", "no AWS credentials to sign the request with".into()));
        };
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| error(c, None, "NoCredentials", format!("loading AWS credentials: {e}")))?;
        let identity: Identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(SIGNING_SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| error(c, None, "SigningError", e.to_string()))?
            .into();
        let uri = req.uri().to_string();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            uri.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(req.body()),
        )
        .map_err(|e| error(c, None, "SigningError", e.to_string()))?;
        let (instructions, _) =
            sign(signable, &params).map_err(|e| error(c, None, "SigningError", e.to_string()))?.into_parts();
        instructions.apply_to_request_http1x(req);
        Ok(())
    }
}

fn error(c: &Call<'_>, status: Option<u16>, code: &str, message: String) -> AwsError {
    let class = classify(status, code);
    AwsError::http(c.op, c.resource, code, message, status, class)
}

/// A domain's error answer as (code, message). OpenSearch answers
/// `{"error":{"type","reason",…},"status"}`; the AWS front end (authorisation, throttling)
/// answers `{"Message": …}` or `{"message": …}`.
pub fn describe(body: &Value) -> (String, String) {
    if let Some(e) = body.get("error") {
        if let Some(t) = e.get("type").and_then(Value::as_str) {
            let reason = e.get("reason").and_then(Value::as_str).unwrap_or_default();
            return (t.to_string(), reason.to_string());
        }
        if let Some(s) = e.as_str() {
            return ("Error".into(), s.to_string());
        }
    }
    for key in ["Message", "message"] {
        if let Some(m) = body.get(key).and_then(Value::as_str) {
            return ("Error".into(), m.to_string());
        }
    }
    match body {
        Value::Null => ("Error".into(), String::new()),
        Value::String(s) => ("Error".into(), s.chars().take(300).collect()),
        other => ("Error".into(), other.to_string().chars().take(300).collect()),
    }
}

/// The classes of a domain's answers: 404 not found, 429 throttled (OpenSearch's
/// es_rejected_execution_exception, AWS's request rate limit), 5xx and no answer transient
/// (the domain restarting a node, a blue/green cut-over), 403 refused by the access policy.
pub fn classify(status: Option<u16>, code: &str) -> ErrorClass {
    match status {
        Some(404) => ErrorClass::NotFound,
        Some(429) => ErrorClass::Throttled,
        Some(403) => ErrorClass::Denied,
        Some(500..=599) => ErrorClass::Transient,
        None if matches!(code, "Timeout" | "DispatchFailure" | "ResponseError") => ErrorClass::Transient,
        _ => ErrorClass::Fatal,
    }
}

/// The message of a 403: who was refused, and the two ways in.
fn refused(method: &str, url: &str, aws_message: &str) -> String {
    let action = format!("es:ESHttp{}{}", &method[..1], method[1..].to_ascii_lowercase());
    format!(
        "the domain's access policy refused {method} {url} ({action}): {aws_message}. pipectl signs with your AWS \
         credentials; the domain admits a request when its policy allows the address it comes from or the \
         signing identity. Either add your public address (as the domain sees it) to search.access.allow_ips, \
         or set search.access.allow_account: true and sign as an identity of this account whose IAM policy \
         allows es:ESHttp* on the domain; then apply again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers_are_classified_and_described() {
        let cases = [
            (Some(404), "resource_not_found_exception", ErrorClass::NotFound),
            (Some(429), "Error", ErrorClass::Throttled),
            (Some(403), "Error", ErrorClass::Denied),
            (Some(503), "Error", ErrorClass::Transient),
            (Some(504), "Error", ErrorClass::Transient),
            (None, "Timeout", ErrorClass::Transient),
            (None, "DispatchFailure", ErrorClass::Transient),
            (Some(400), "mapper_parsing_exception", ErrorClass::Fatal),
            (None, "NoCredentials", ErrorClass::Fatal),
        ];
        for (status, code, want) in cases {
            assert_eq!(classify(status, code), want, "{status:?} {code}");
        }
        let os = json!({"error": {"root_cause": [], "type": "mapper_parsing_exception", "reason": "No handler for type [x] declared on field [y]"}, "status": 400});
        assert_eq!(
            describe(&os),
            ("mapper_parsing_exception".into(), "No handler for type [x] declared on field [y]".into())
        );
        let front = json!({"Message": "User: anonymous is not authorized to perform: es:ESHttpGet"});
        assert_eq!(describe(&front).1, "User: anonymous is not authorized to perform: es:ESHttpGet");
        assert_eq!(describe(&Value::Null).1, "");
    }

    #[test]
    fn a_refusal_says_who_and_how_to_fix_it() {
        let m = refused(
            "PUT",
            "https://search-x.eu-west-1.es.amazonaws.com/_index_template/t",
            "User: anonymous is not authorized",
        );
        assert!(m.contains("es:ESHttpPut"), "{m}");
        assert!(m.contains("User: anonymous"), "{m}");
        assert!(m.contains("allow_ips") && m.contains("allow_account: true") && m.contains("es:ESHttp*"), "{m}");
    }
}
