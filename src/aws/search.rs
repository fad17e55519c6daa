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
    /// `--search-endpoint-url` / `PIPECTL_SEARCH_ENDPOINT_URL` (see `set_endpoint`).
    endpoint_override: Option<String>,
    /// An `https://` override: where the tunnel's local end listens.
    tunnel: Option<Tunnel>,
    calls: CallCounter,
}

/// An `https://HOST:PORT` endpoint override is the local end of a tunnel to the domain (an SSH
/// port forward through a bastion, the usual way into a VPC domain): requests connect there,
/// while TLS (the certificate is the domain's), the Host header and the signature keep the
/// domain's own name, as AWS checks them against it.
#[derive(Clone, Debug)]
struct Tunnel {
    port: u16,
    connector: Arc<aws_smithy_http_client::Connector>,
}

/// Resolves every name to the tunnel's local host.
#[derive(Debug, Clone)]
struct ToTunnel {
    host: String,
}

impl aws_smithy_runtime_api::client::dns::ResolveDns for ToTunnel {
    fn resolve_dns<'a>(&'a self, _name: &'a str) -> aws_smithy_runtime_api::client::dns::DnsFuture<'a> {
        aws_smithy_runtime_api::client::dns::DnsFuture::new(async move {
            let addrs = tokio::net::lookup_host((self.host.as_str(), 0))
                .await
                .map_err(aws_smithy_runtime_api::client::dns::ResolveDnsError::new)?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// The SDK's HTTP client (hyper, rustls with the platform's roots) with bounded timeouts;
/// through a tunnel, every name resolves to the tunnel's host.
fn connector(tunnel_host: Option<String>) -> aws_smithy_http_client::Connector {
    let b = aws_smithy_http_client::Connector::builder()
        .connector_settings(
            HttpConnectorSettings::builder().connect_timeout(CONNECT_TIMEOUT).read_timeout(READ_TIMEOUT).build(),
        )
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
    match tunnel_host {
        Some(host) => b.build_with_resolver(ToTunnel { host }),
        None => b.build(),
    }
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
        Search {
            connector: Arc::new(connector(None)),
            credentials: cfg.credentials_provider(),
            region: cfg.region().map(|r| r.to_string()).unwrap_or_default(),
            endpoint_override: None,
            tunnel: None,
            calls,
        }
    }

    /// Reaches domains at `url` instead of the endpoint DescribeDomain reports. `http://…` (a
    /// local stand-in, a plain proxy): requests go to that URL, path prefix included.
    /// `https://HOST:PORT`: the local end of a tunnel (see `Tunnel`).
    pub fn set_endpoint(&mut self, url: Option<String>) -> Result<(), String> {
        self.tunnel = None;
        if let Some(u) = url.as_deref().filter(|u| u.starts_with("https://")) {
            let uri: http::Uri = u.parse().map_err(|e| format!("--search-endpoint-url {u}: {e}"))?;
            let host = uri.host().ok_or_else(|| format!("--search-endpoint-url {u}: no host"))?.to_string();
            if uri.path() != "/" && !uri.path().is_empty() {
                return Err(format!("--search-endpoint-url {u}: a tunnel endpoint takes no path"));
            }
            let port = uri.port_u16().unwrap_or(443);
            self.tunnel = Some(Tunnel { port, connector: Arc::new(connector(Some(host))) });
        } else if let Some(u) = url.as_deref().filter(|u| !u.starts_with("http://")) {
            return Err(format!("--search-endpoint-url {u}: expected http://… or https://HOST:PORT"));
        }
        self.endpoint_override = url;
        Ok(())
    }

    /// The base URL of a domain whose endpoint DescribeDomain reports as `endpoint`.
    pub fn base_url(&self, endpoint: &str) -> String {
        match (&self.tunnel, &self.endpoint_override) {
            (Some(t), _) => format!("https://{endpoint}:{}", t.port),
            (None, Some(u)) => u.trim_end_matches('/').to_string(),
            (None, None) => format!("https://{endpoint}"),
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
            // Only the access policy's refusal is "denied" with the way in; a 403 for a bad
            // signature or a cluster block (low storage, JVM pressure) says what it says.
            let refusal = reply.status == 403 && is_policy_refusal(&message);
            // The AWS front end's answers carry no error type: name them by status.
            let code = match (code.as_str(), reply.status) {
                ("Error", 403) if refusal => "AccessDenied".to_string(),
                ("Error", 429) => "TooManyRequests".to_string(),
                ("Error", s) => format!("HTTP{s}"),
                _ => code,
            };
            if refusal {
                let message = refused(c.method, &url, &message);
                return Err(AwsError::http(c.op, c.resource, &code, message, Some(403), ErrorClass::Denied));
            }
            Err(error(&c, Some(reply.status), &code, message))
        })
        .await
    }

    async fn send_once(&self, c: &Call<'_>, url: &str, body: &[u8]) -> Result<Reply, AwsError> {
        let uri: http::Uri = url.parse().map_err(|e| error(c, None, "BadEndpoint", format!("{url}: {e}")))?;
        // Through a tunnel the Host (and so the signature) is the domain's name, not the port
        // the tunnel listens on: what the domain sees and checks.
        let authority = match &self.tunnel {
            Some(_) => uri.host().unwrap_or_default().to_string(),
            None => uri.authority().map(|a| a.as_str().to_string()).unwrap_or_default(),
        };
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
        let connector = self.tunnel.as_ref().map_or(&self.connector, |t| &t.connector);
        let resp = connector.call(req).await.map_err(|e| {
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
        // Dashboards (hapi/Boom): {"statusCode", "error": "Bad Request", "message": …}.
        if let (Some(phrase), Some(m)) = (e.as_str(), body.get("message").and_then(Value::as_str)) {
            return (phrase.replace(' ', ""), m.to_string());
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

/// Whether a 403's message is the access policy refusing the caller: "User: … is not
/// authorized to perform: es:ESHttp… because no resource-based policy allows …" / "… with an
/// explicit deny …" (AWS front end). A signature the domain could not verify ("The request
/// signature we calculated does not match …", "… security token … is invalid", "Signature
/// expired") and OpenSearch's cluster_block_exception are 403s too, for other reasons.
pub fn is_policy_refusal(message: &str) -> bool {
    message.contains("is not authorized to perform")
}

/// The classes of a domain's answers: 404 not found, 429 throttled (OpenSearch's
/// es_rejected_execution_exception, AWS's request rate limit), 5xx and no answer transient
/// (the domain restarting a node, a blue/green cut-over). A 403 is `Denied` only for the
/// access policy's refusal (decided on its message, see `is_policy_refusal`); other 403s are
/// fatal with their own message.
pub fn classify(status: Option<u16>, code: &str) -> ErrorClass {
    match status {
        Some(404) => ErrorClass::NotFound,
        Some(429) => ErrorClass::Throttled,
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
            (Some(403), "Error", ErrorClass::Fatal),
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
        assert!(is_policy_refusal(&describe(&front).1));
        let sig = json!({"message": "The request signature we calculated does not match the signature you provided."});
        assert!(!is_policy_refusal(&describe(&sig).1));
        let block = json!({"error": {"type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/8/index write (api)];"}, "status": 403});
        assert_eq!(describe(&block).0, "cluster_block_exception");
        assert!(!is_policy_refusal(&describe(&block).1));
        let boom =
            json!({"statusCode": 400, "error": "Bad Request", "message": "Request must contain a osd-xsrf header."});
        assert_eq!(describe(&boom), ("BadRequest".into(), "Request must contain a osd-xsrf header.".into()));
        assert_eq!(describe(&Value::Null).1, "");
    }

    fn search() -> Search {
        let creds = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let cfg = aws_config::SdkConfig::builder()
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .build();
        Search::new(&cfg, CallCounter::default())
    }

    #[test]
    fn endpoint_overrides() {
        let e = "search-kinesis-abc.eu-west-1.es.amazonaws.com";
        let mut s = search();
        assert_eq!(s.base_url(e), format!("https://{e}"));
        // A stand-in or plain proxy: requests go to that URL, its path included.
        s.set_endpoint(Some("http://127.0.0.1:9/_pipectl/search/".into())).unwrap();
        assert_eq!(s.base_url(e), "http://127.0.0.1:9/_pipectl/search");
        assert!(s.tunnel.is_none());
        // A tunnel: the domain's name on the tunnel's port (TLS, Host and signature keep the
        // name; the resolver sends the connection to the tunnel's host).
        s.set_endpoint(Some("https://localhost:9200".into())).unwrap();
        assert_eq!(s.base_url(e), format!("https://{e}:9200"));
        s.set_endpoint(Some("https://localhost".into())).unwrap();
        assert_eq!(s.base_url(e), format!("https://{e}:443"));
        assert!(s.set_endpoint(Some("https://localhost:9200/prefix".into())).is_err());
        assert!(s.set_endpoint(Some("localhost:9200".into())).is_err());
        s.set_endpoint(None).unwrap();
        assert_eq!(s.base_url(e), format!("https://{e}"));
    }

    #[tokio::test]
    async fn the_tunnel_resolver_answers_the_tunnels_host_for_any_name() {
        use aws_smithy_runtime_api::client::dns::ResolveDns;
        let r = ToTunnel { host: "127.0.0.1".into() };
        let ips = r.resolve_dns("search-kinesis-abc.eu-west-1.es.amazonaws.com").await.unwrap();
        assert_eq!(ips, vec![std::net::IpAddr::from([127, 0, 0, 1])]);
    }

    /// Through a tunnel the connection goes to the tunnel's local port, and TLS names the
    /// domain (its certificate is the domain's): the ClientHello's server name, read by a
    /// listener standing in for the tunnel's local end.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_tunnel_connects_locally_and_speaks_tls_for_the_domains_name() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hello = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = sock.read(&mut buf).await.unwrap();
            buf.truncate(n);
            buf
        });
        let mut s = search();
        s.set_endpoint(Some(format!("https://127.0.0.1:{port}"))).unwrap();
        let e = "search-kinesis-abc.eu-west-1.es.amazonaws.com";
        let timing = Timing { retry_attempts: 1, ..Timing::from_env() };
        let base = s.base_url(e);
        let call = Call::new("test:Get", "t", &base, "GET", "/");
        let (hello, r) = tokio::join!(
            tokio::time::timeout(std::time::Duration::from_secs(20), hello),
            tokio::time::timeout(std::time::Duration::from_secs(20), s.request(&timing, &|_, _, _| {}, call))
        );
        let hello = hello.expect("a connection to the tunnel").unwrap();
        let r = r.expect("the request ends when the tunnel closes");
        assert_eq!(hello.first(), Some(&0x16), "a TLS handshake record");
        assert!(hello.windows(e.len()).any(|w| w == e.as_bytes()), "SNI names the domain");
        let err = r.unwrap_err();
        assert!(err.is_transient(), "{err}");
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
