//! Lambda transform function: the bundled zip (uploaded only when its base64 SHA-256 differs
//! from Lambda's CodeSha256), custom runtime, memory, timeout, the pipeline's schema in the
//! environment, tags. Everything changes in place.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, Environment, FunctionCode, Runtime};
use serde::{Deserialize, Serialize};

use super::{cmp, found, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError};

const TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub description: String,
    pub role_name: String,
    pub role_arn: String,
    pub runtime: String,
    pub handler: String,
    pub architecture: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub env: BTreeMap<String, String>,
    /// Base64 SHA-256 of the zip, as Lambda reports CodeSha256.
    pub code_sha256: String,
    pub zip_path: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub arn: String,
    pub role_arn: String,
    pub runtime: String,
    pub handler: String,
    pub architecture: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// Absent and empty are the same: Lambda drops an empty `Variables` map.
    pub env: BTreeMap<String, String>,
    pub code_sha256: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
    pub last_update_status: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create(Desired),
    Update(Update),
    Delete { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub name: String,
    pub arn: String,
    /// The complete configuration to write, if any part of it differs.
    pub config: Option<Config>,
    /// New code (zip path, its hash, architecture), if the hash differs.
    pub code: Option<(String, String, String)>,
    pub tags: TagUpdate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub role_arn: String,
    pub runtime: String,
    pub handler: String,
    pub memory_mb: u32,
    pub timeout_s: u32,
    pub env: BTreeMap<String, String>,
    pub description: String,
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let Some(out) =
        found(aws.call("lambda:GetFunction", name, || aws.lambda.get_function().function_name(name).send()).await)?
    else {
        return Ok(None);
    };
    let Some(c) = out.configuration() else { return Ok(None) };
    let env = c
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Some(Live {
        name: name.to_string(),
        arn: c.function_arn().unwrap_or_default().to_string(),
        role_arn: c.role().unwrap_or_default().to_string(),
        runtime: c.runtime().map(|r| r.as_str().to_string()).unwrap_or_default(),
        handler: c.handler().unwrap_or_default().to_string(),
        // Lambda's default architecture is x86_64 when none is listed.
        architecture: c.architectures().first().map(|a| a.as_str().to_string()).unwrap_or_else(|| "x86_64".into()),
        memory_mb: c.memory_size().unwrap_or(0).max(0) as u32,
        timeout_s: c.timeout().unwrap_or(0).max(0) as u32,
        env,
        code_sha256: c.code_sha256().unwrap_or_default().to_string(),
        state: c.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        state_reason: c.state_reason().or(c.last_update_status_reason()).map(str::to_string),
        last_update_status: c.last_update_status().map(|s| s.as_str().to_string()).unwrap_or_default(),
        tags: out.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
    }))
}

/// The function's tags (the execution-time ownership check).
pub async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    Ok(read(aws, name).await?.map(|l| l.tags).unwrap_or_default())
}

/// A function Lambda could not set up (`State: Failed`, e.g. its role or a layer went away)
/// answers every invocation with an error. Lambda cannot be told to retry the set-up, so the
/// plan replaces it (a function holds no data).
pub fn problem(have: &Live) -> Option<String> {
    (have.state == "Failed" || have.last_update_status == "Failed").then(|| {
        format!(
            "state {}, last update {}: {}",
            have.state,
            have.last_update_status,
            have.state_reason.as_deref().unwrap_or("no reason given")
        )
    })
}

fn config_differs(want: &Desired, have: &Live) -> bool {
    want.role_arn != have.role_arn
        || want.runtime != have.runtime
        || want.handler != have.handler
        || want.memory_mb != have.memory_mb
        || want.timeout_s != have.timeout_s
        || want.env != have.env
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    cmp(&mut out, "role", have.role_arn.as_str(), want.role_arn.as_str());
    cmp(&mut out, "runtime", have.runtime.as_str(), want.runtime.as_str());
    cmp(&mut out, "handler", have.handler.as_str(), want.handler.as_str());
    cmp(&mut out, "architecture", have.architecture.as_str(), want.architecture.as_str());
    cmp(&mut out, "memory_mb", have.memory_mb, want.memory_mb);
    cmp(&mut out, "timeout_s", have.timeout_s, want.timeout_s);
    let keys: std::collections::BTreeSet<&String> = want.env.keys().chain(have.env.keys()).collect();
    for k in keys {
        cmp(&mut out, &format!("environment.{k}"), have.env.get(k), want.env.get(k));
    }
    cmp(&mut out, "code_sha256", have.code_sha256.as_str(), want.code_sha256.as_str());
    tag_change(&mut out, &want.tags, &have.tags);
    if let Some(p) = problem(have) {
        out.push(Change::new("state", p, "Active").replacing());
    }
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    Op::Update(Update {
        name: want.name.clone(),
        arn: have.arn.clone(),
        config: config_differs(want, have).then(|| Config {
            role_arn: want.role_arn.clone(),
            runtime: want.runtime.clone(),
            handler: want.handler.clone(),
            memory_mb: want.memory_mb,
            timeout_s: want.timeout_s,
            env: want.env.clone(),
            description: want.description.clone(),
        }),
        code: (want.code_sha256 != have.code_sha256 || want.architecture != have.architecture)
            .then(|| (want.zip_path.clone(), want.code_sha256.clone(), want.architecture.clone())),
        tags: TagUpdate::between(&want.tags, &have.tags),
    })
}

/// Reads the zip and checks it is the one the plan was made with.
fn load_zip(name: &str, path: &str, sha: &str) -> Result<Vec<u8>, AwsError> {
    let bytes = std::fs::read(path)
        .map_err(|e| AwsError::local("lambda:code", name, "ZipUnreadable", format!("{path}: {e}")))?;
    let got = crate::bundle::code_sha256(&bytes);
    if got != sha {
        return Err(AwsError::local(
            "lambda:code",
            name,
            "ZipChanged",
            format!("{path} has CodeSha256 {got}, the plan was made for {sha}; run plan again"),
        ));
    }
    Ok(bytes)
}

fn environment(env: &BTreeMap<String, String>) -> Environment {
    Environment::builder()
        .set_variables(Some(env.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()))
        .build()
}

/// Waits until the function is Active and its last update finished.
async fn wait_ready(ctx: &Ctx<'_>, name: &str) -> Result<(), AwsError> {
    ctx.wait_until("function ready", TIMEOUT, || async {
        let c = ctx
            .aws
            .call("lambda:GetFunctionConfiguration", name, || {
                ctx.aws.lambda.get_function_configuration().function_name(name).send()
            })
            .await?;
        let state = c.state().map(|s| s.as_str()).unwrap_or("Active");
        let update = c.last_update_status().map(|s| s.as_str()).unwrap_or("Successful");
        match (state, update) {
            ("Active", "Successful") => Ok(None),
            ("Failed", _) | (_, "Failed") => Err(AwsError::local(
                "lambda:wait",
                name,
                "FunctionFailed",
                c.state_reason().or(c.last_update_status_reason()).unwrap_or("failed").to_string(),
            )),
            (s, u) => Ok(Some(format!("state {s}, last update {u}"))),
        }
    })
    .await
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let l = &ctx.aws.lambda;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            let zip = load_zip(name, &d.zip_path, &d.code_sha256)?;
            let tags: HashMap<String, String> = d.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            // A role created moments ago "cannot be assumed by Lambda" until IAM propagates
            // it: classified NotYetPropagated and retried with backoff.
            ctx.call("lambda:CreateFunction", name, || {
                l.create_function()
                    .function_name(name)
                    .description(&d.description)
                    .role(&d.role_arn)
                    .runtime(Runtime::from(d.runtime.as_str()))
                    .handler(&d.handler)
                    .architectures(Architecture::from(d.architecture.as_str()))
                    .memory_size(d.memory_mb as i32)
                    .timeout(d.timeout_s as i32)
                    .environment(environment(&d.env))
                    .code(FunctionCode::builder().zip_file(Blob::new(zip.clone())).build())
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
            wait_ready(ctx, name).await
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            if !u.tags.set.is_empty() {
                let tags: HashMap<String, String> = u.tags.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                ctx.call("lambda:TagResource", name, || {
                    l.tag_resource().resource(&u.arn).set_tags(Some(tags.clone())).send()
                })
                .await?;
            }
            if !u.tags.remove.is_empty() {
                ctx.call("lambda:UntagResource", name, || {
                    l.untag_resource().resource(&u.arn).set_tag_keys(Some(u.tags.remove.clone())).send()
                })
                .await?;
            }
            if let Some(c) = &u.config {
                ctx.call("lambda:UpdateFunctionConfiguration", name, || {
                    l.update_function_configuration()
                        .function_name(name)
                        .description(&c.description)
                        .role(&c.role_arn)
                        .runtime(Runtime::from(c.runtime.as_str()))
                        .handler(&c.handler)
                        .memory_size(c.memory_mb as i32)
                        .timeout(c.timeout_s as i32)
                        .environment(environment(&c.env))
                        .send()
                })
                .await?;
                // A second update while the first runs fails with ResourceConflictException.
                wait_ready(ctx, name).await?;
            }
            if let Some((path, sha, arch)) = &u.code {
                let zip = load_zip(name, path, sha)?;
                ctx.call("lambda:UpdateFunctionCode", name, || {
                    l.update_function_code()
                        .function_name(name)
                        .zip_file(Blob::new(zip.clone()))
                        .architectures(Architecture::from(arch.as_str()))
                        .send()
                })
                .await?;
                wait_ready(ctx, name).await?;
            }
            Ok(())
        }
        Op::Delete { name } => {
            let name = name.as_str();
            gone_ok(ctx.call("lambda:DeleteFunction", name, || l.delete_function().function_name(name).send()).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> Desired {
        Desired {
            name: "transform-firehose-data".into(),
            description: "d".into(),
            role_name: "s-lambda".into(),
            role_arn: "arn:aws:iam::1:role/pipectl/s-lambda".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architecture: "x86_64".into(),
            memory_mb: 128,
            timeout_s: 300,
            env: [("PIPECTL_SCHEMA".to_string(), "{}".to_string())].into(),
            code_sha256: "abc=".into(),
            zip_path: "/dist/transform.zip".into(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    fn live() -> Live {
        let w = want();
        Live {
            name: w.name,
            arn: "arn:aws:lambda:eu-west-1:1:function:transform-firehose-data".into(),
            role_arn: w.role_arn,
            runtime: w.runtime,
            handler: w.handler,
            architecture: w.architecture,
            memory_mb: 128,
            timeout_s: 300,
            env: w.env,
            code_sha256: "abc=".into(),
            state: "Active".into(),
            state_reason: None,
            last_update_status: "Successful".into(),
            tags: w.tags,
        }
    }

    #[test]
    fn diff_table() {
        type Case = (&'static str, fn(&mut Desired, &mut Live), &'static [&'static str]);
        let cases: &[Case] = &[
            ("nothing to do", |_, _| {}, &[]),
            ("state is not compared", |_, l| l.last_update_status = "InProgress".into(), &[]),
            ("memory", |w, _| w.memory_mb = 256, &["memory_mb"]),
            ("timeout", |_, l| l.timeout_s = 3, &["timeout_s"]),
            (
                "schema changed",
                |w, _| {
                    w.env.insert("PIPECTL_SCHEMA".into(), "{\"x\":1}".into());
                },
                &["environment.PIPECTL_SCHEMA"],
            ),
            // Lambda drops an empty Variables map: absent and empty compare equal.
            (
                "empty env both ways",
                |w, l| {
                    w.env.clear();
                    l.env.clear();
                },
                &[],
            ),
            ("new code", |w, _| w.code_sha256 = "def=".into(), &["code_sha256"]),
            ("role", |_, l| l.role_arn = "arn:other".into(), &["role"]),
            // A function Lambda could not set up is never "No changes.".
            (
                "state Failed",
                |_, l| {
                    l.state = "Failed".into();
                    l.state_reason = Some("The role is invalid".into());
                },
                &["state"],
            ),
            ("last update Failed", |_, l| l.last_update_status = "Failed".into(), &["state"]),
        ];
        for (name, f, attrs) in cases {
            let (mut w, mut l) = (want(), live());
            f(&mut w, &mut l);
            let got: Vec<_> = diff(&w, &l).into_iter().map(|c| c.attr).collect();
            assert_eq!(got, *attrs, "{name}");
        }
    }

    #[test]
    fn code_is_uploaded_only_when_the_hash_differs() {
        let mut w = want();
        w.memory_mb = 512;
        let Op::Update(u) = update_op(&w, &live()) else { panic!() };
        assert!(u.code.is_none());
        assert_eq!(u.config.unwrap().memory_mb, 512);
        w.code_sha256 = "new=".into();
        let Op::Update(u) = update_op(&w, &live()) else { panic!() };
        assert_eq!(u.code.unwrap().1, "new=");
    }
}
