//! One place that builds the SDK clients: the standard credential/region chain, with the
//! `--region`/`--profile`/`--endpoint-url` overrides, a call counter for every attempt, and
//! S3 path-style addressing when an endpoint is overridden (moto and most emulators need it).

pub mod errors;
pub mod wait;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

pub use errors::{AwsError, ErrorClass};

/// How to reach AWS.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// SDK attempts per call (throttling and transient errors are retried by the SDK).
    pub max_attempts: Option<u32>,
}

/// Counts every HTTP attempt, for the "API calls" figure of plan/apply.
#[derive(Debug, Clone, Default)]
pub struct CallCounter(pub Arc<AtomicU64>);

impl CallCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "pipectl-call-counter"
    }
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Every client pipectl uses, built from one SDK config.
#[derive(Debug, Clone)]
pub struct Aws {
    pub kinesis: aws_sdk_kinesis::Client,
    pub firehose: aws_sdk_firehose::Client,
    pub opensearch: aws_sdk_opensearch::Client,
    pub iam: aws_sdk_iam::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub region: String,
    pub calls: CallCounter,
}

#[derive(Debug, thiserror::Error)]
#[error("no AWS region: pass --region, set `region` in the spec, or configure AWS_REGION / a profile")]
pub struct NoRegion;

/// Loads the SDK config: explicit overrides first, then the spec's region, then the chain.
pub async fn sdk_config(t: &Target, spec_region: Option<&str>) -> Result<aws_config::SdkConfig, NoRegion> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(t.max_attempts.unwrap_or(5)));
    if let Some(p) = &t.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = t.region.as_deref().or(spec_region) {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(e) = &t.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let cfg = loader.load().await;
    if cfg.region().is_none() {
        return Err(NoRegion);
    }
    Ok(cfg)
}

impl Aws {
    pub async fn connect(t: &Target, spec_region: Option<&str>) -> Result<Aws, NoRegion> {
        let cfg = sdk_config(t, spec_region).await?;
        Ok(Aws::from_config(&cfg, t.endpoint_url.is_some()))
    }

    pub fn from_config(cfg: &aws_config::SdkConfig, custom_endpoint: bool) -> Aws {
        let calls = CallCounter::default();
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf($krate::config::Builder::from(cfg).interceptor(calls.clone()).build())
            };
        }
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(cfg).interceptor(calls.clone()).force_path_style(custom_endpoint).build(),
        );
        Aws {
            kinesis: client!(aws_sdk_kinesis),
            firehose: client!(aws_sdk_firehose),
            opensearch: client!(aws_sdk_opensearch),
            iam: client!(aws_sdk_iam),
            lambda: client!(aws_sdk_lambda),
            s3,
            sts: client!(aws_sdk_sts),
            region: cfg.region().map(|r| r.to_string()).unwrap_or_default(),
            calls,
        }
    }

    /// The account id of the caller (STS GetCallerIdentity; aws-config already depends on STS).
    pub async fn account_id(&self) -> Result<String, AwsError> {
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| errors::from_sdk("sts:GetCallerIdentity", "caller", e))?;
        Ok(out.account().unwrap_or_default().to_string())
    }
}
