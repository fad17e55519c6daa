//! IAM role (the Lambda execution role, the Firehose role): trust policy, inline policies and
//! tags, compared by meaning after URL-decoding. Roles live under the path `/pipectl/`, which
//! makes discovery one ListRoles call.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_iam::types::Tag;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::normalize::{canonical, policy};
use super::{cmp, found, tag_change, Change, TagUpdate, Tags};
use crate::aws::errors::gone_ok;
use crate::aws::wait::Ctx;
use crate::aws::{Aws, AwsError, ErrorClass};

pub const PATH: &str = "/pipectl/";
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    pub name: String,
    pub path: String,
    pub description: String,
    pub trust: Value,
    /// Inline policies by name.
    pub inline: BTreeMap<String, Value>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Live {
    pub name: String,
    pub arn: String,
    pub path: String,
    /// Canonical form (decoded from IAM's URL encoding).
    pub trust: Value,
    pub inline: BTreeMap<String, Value>,
    /// Attached managed policy ARNs (pipectl attaches none; any found is drift).
    pub managed: Vec<String>,
    pub created: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Op {
    Create(Desired),
    Update(Update),
    /// Inline policies are deleted and managed ones detached first: IAM refuses otherwise.
    Delete {
        name: String,
        inline: Vec<String>,
        managed: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub name: String,
    pub trust: Option<Value>,
    pub put_inline: BTreeMap<String, Value>,
    pub delete_inline: Vec<String>,
    pub detach: Vec<String>,
    pub tags: TagUpdate,
}

pub async fn read(aws: &Aws, name: &str) -> Result<Option<Live>, AwsError> {
    let iam = &aws.iam;
    let Some(out) = found(aws.call("iam:GetRole", name, || iam.get_role().role_name(name).send()).await)? else {
        return Ok(None);
    };
    let Some(role) = out.role() else { return Ok(None) };
    let mut inline = BTreeMap::new();
    let names = aws.call("iam:ListRolePolicies", name, || iam.list_role_policies().role_name(name).send()).await?;
    for p in names.policy_names() {
        let doc =
            aws.call("iam:GetRolePolicy", name, || iam.get_role_policy().role_name(name).policy_name(p).send()).await?;
        // IAM returns the document URL-encoded.
        inline.insert(p.clone(), policy(doc.policy_document()));
    }
    let attached = aws
        .call("iam:ListAttachedRolePolicies", name, || iam.list_attached_role_policies().role_name(name).send())
        .await?;
    let mut managed: Vec<String> =
        attached.attached_policies().iter().filter_map(|p| p.policy_arn().map(str::to_string)).collect();
    managed.sort();
    Ok(Some(Live {
        name: name.to_string(),
        arn: role.arn().to_string(),
        path: role.path().to_string(),
        trust: role.assume_role_policy_document().map(policy).unwrap_or(Value::Null),
        inline,
        managed,
        created: Some(role.create_date().to_string()),
        tags: role.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect(),
    }))
}

/// The role's tags (the execution-time ownership check).
pub async fn read_tags(aws: &Aws, name: &str) -> Result<Tags, AwsError> {
    let out = aws.call("iam:ListRoleTags", name, || aws.iam.list_role_tags().role_name(name).send()).await?;
    Ok(out.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect())
}

/// The Tagging API does not cover IAM roles, so roles are found by pipectl's path: one
/// ListRoles page per 100 pipectl roles, and one ListRoleTags per pipectl role. Roles of
/// other tools and people are never listed; a role whose tags we may not read is not ours.
pub async fn discover(aws: &Aws, stack: &str) -> Result<Vec<String>, AwsError> {
    let mut owned = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = aws
            .call("iam:ListRoles", PATH, || aws.iam.list_roles().path_prefix(PATH).set_marker(marker.clone()).send())
            .await?;
        for r in out.roles() {
            match read_tags(aws, r.role_name()).await {
                Ok(tags) if super::owned_by(&tags, stack) => owned.push(r.role_name().to_string()),
                Ok(_) => {}
                Err(e) if e.is(ErrorClass::NotFound) || e.is(ErrorClass::Denied) => {}
                Err(e) => return Err(e),
            }
        }
        marker = out.marker().map(str::to_string);
        if !out.is_truncated() || marker.is_none() {
            break;
        }
    }
    owned.sort();
    Ok(owned)
}

pub fn diff(want: &Desired, have: &Live) -> Vec<Change> {
    let mut out = Vec::new();
    if want.path != have.path {
        out.push(Change::new("path", &have.path, &want.path).replacing());
    }
    cmp(&mut out, "assume_role_policy", &have.trust, &canonical(&want.trust));
    let names: std::collections::BTreeSet<&String> = want.inline.keys().chain(have.inline.keys()).collect();
    for n in names {
        let w = want.inline.get(n).map(canonical);
        let h = have.inline.get(n).cloned();
        cmp(&mut out, &format!("inline_policy.{n}"), h, w);
    }
    // pipectl attaches no managed policy: each one found (on an adopted role, or attached in the
    // console) is shown, and detached, one by one.
    for arn in &have.managed {
        out.push(Change::new(&format!("managed_policy.{arn}"), "attached", "detached"));
    }
    tag_change(&mut out, &want.tags, &have.tags);
    out
}

pub fn update_op(want: &Desired, have: &Live) -> Op {
    let put_inline = want
        .inline
        .iter()
        .filter(|(n, doc)| have.inline.get(*n) != Some(&canonical(doc)))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect();
    let delete_inline = have.inline.keys().filter(|n| !want.inline.contains_key(*n)).cloned().collect();
    Op::Update(Update {
        name: want.name.clone(),
        trust: (have.trust != canonical(&want.trust)).then(|| want.trust.clone()),
        put_inline,
        delete_inline,
        detach: have.managed.clone(),
        tags: TagUpdate::between(&want.tags, &have.tags),
    })
}

async fn put_inline(ctx: &Ctx<'_>, role: &str, policies: &BTreeMap<String, Value>) -> Result<(), AwsError> {
    for (name, doc) in policies {
        let text = doc.to_string();
        ctx.call("iam:PutRolePolicy", role, || {
            ctx.aws.iam.put_role_policy().role_name(role).policy_name(name).policy_document(&text).send()
        })
        .await?;
    }
    Ok(())
}

fn iam_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("key and value set")).collect()
}

pub async fn execute(ctx: &Ctx<'_>, op: &Op) -> Result<(), AwsError> {
    let iam = &ctx.aws.iam;
    match op {
        Op::Create(d) => {
            let name = d.name.as_str();
            let trust = d.trust.to_string();
            ctx.call("iam:CreateRole", name, || {
                iam.create_role()
                    .role_name(name)
                    .path(&d.path)
                    .description(&d.description)
                    .assume_role_policy_document(&trust)
                    .set_tags(Some(iam_tags(&d.tags)))
                    .send()
            })
            .await?;
            put_inline(ctx, name, &d.inline).await?;
            // IAM is eventually consistent: wait until the role reads back.
            ctx.wait_until("role visible", TIMEOUT, || async {
                match found(ctx.aws.call("iam:GetRole", name, || iam.get_role().role_name(name).send()).await)? {
                    Some(_) => Ok(None),
                    None => Ok(Some("not visible yet".into())),
                }
            })
            .await
        }
        Op::Update(u) => {
            let name = u.name.as_str();
            if !u.tags.set.is_empty() {
                ctx.call("iam:TagRole", name, || {
                    iam.tag_role().role_name(name).set_tags(Some(iam_tags(&u.tags.set))).send()
                })
                .await?;
            }
            if !u.tags.remove.is_empty() {
                ctx.call("iam:UntagRole", name, || {
                    iam.untag_role().role_name(name).set_tag_keys(Some(u.tags.remove.clone())).send()
                })
                .await?;
            }
            if let Some(trust) = &u.trust {
                let text = trust.to_string();
                ctx.call("iam:UpdateAssumeRolePolicy", name, || {
                    iam.update_assume_role_policy().role_name(name).policy_document(&text).send()
                })
                .await?;
            }
            put_inline(ctx, name, &u.put_inline).await?;
            for p in &u.delete_inline {
                ctx.call("iam:DeleteRolePolicy", name, || {
                    iam.delete_role_policy().role_name(name).policy_name(p).send()
                })
                .await?;
            }
            for arn in &u.detach {
                ctx.call("iam:DetachRolePolicy", name, || {
                    iam.detach_role_policy().role_name(name).policy_arn(arn).send()
                })
                .await?;
            }
            Ok(())
        }
        Op::Delete { name, inline, managed } => {
            let name = name.as_str();
            for arn in managed {
                ctx.call("iam:DetachRolePolicy", name, || {
                    iam.detach_role_policy().role_name(name).policy_arn(arn).send()
                })
                .await?;
            }
            for p in inline {
                ctx.call("iam:DeleteRolePolicy", name, || {
                    iam.delete_role_policy().role_name(name).policy_name(p).send()
                })
                .await?;
            }
            gone_ok(ctx.call("iam:DeleteRole", name, || iam.delete_role().role_name(name).send()).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn want() -> Desired {
        Desired {
            name: "s-lambda".into(),
            path: PATH.into(),
            description: "d".into(),
            trust: json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}),
            inline: [("logs".to_string(), json!({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:PutLogEvents","logs:CreateLogStream"],"Resource":["a","b"]}]}))].into(),
            tags: [("pipectl:stack".to_string(), "s".to_string())].into(),
        }
    }

    fn live() -> Live {
        let w = want();
        Live {
            name: w.name.clone(),
            arn: "arn:aws:iam::123456789012:role/pipectl/s-lambda".into(),
            path: PATH.into(),
            // As IAM returns them: URL-encoded, pretty-printed, reordered.
            trust: policy("%7B%0A%20%20%22Statement%22%3A%20%5B%7B%22Action%22%3A%20%5B%22sts%3AAssumeRole%22%5D%2C%20%22Principal%22%3A%20%7B%22Service%22%3A%20%22lambda.amazonaws.com%22%7D%2C%20%22Effect%22%3A%20%22Allow%22%7D%5D%2C%20%22Version%22%3A%20%222012-10-17%22%7D"),
            inline: [("logs".to_string(), policy(&serde_json::to_string_pretty(&w.inline["logs"]).unwrap()))].into(),
            managed: vec![],
            created: None,
            tags: w.tags.clone(),
        }
    }

    #[test]
    fn diff_table() {
        type Case = (&'static str, fn(&mut Live), &'static [&'static str]);
        let cases: &[Case] = &[
            // Regression: URL-encoded, reordered, scalar-vs-list documents are not a change.
            ("nothing to do", |_| {}, &[]),
            ("trust edited", |l| l.trust = json!({"Statement": []}), &["assume_role_policy"]),
            (
                "inline policy edited",
                |l| {
                    l.inline.insert("logs".into(), json!({}));
                },
                &["inline_policy.logs"],
            ),
            (
                "extra inline policy",
                |l| {
                    l.inline.insert("admin".into(), json!({}));
                },
                &["inline_policy.admin"],
            ),
            (
                "inline policy removed",
                |l| {
                    l.inline.clear();
                },
                &["inline_policy.logs"],
            ),
            (
                "managed policy attached",
                |l| l.managed = vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()],
                &["managed_policy.arn:aws:iam::aws:policy/AdministratorAccess"],
            ),
            ("moved path", |l| l.path = "/".into(), &["path"]),
        ];
        for (name, f, attrs) in cases {
            let mut l = live();
            f(&mut l);
            let got: Vec<_> = diff(&want(), &l).into_iter().map(|c| c.attr).collect();
            assert_eq!(got, *attrs, "{name}");
        }
        assert!(
            diff(&want(), &{
                let mut l = live();
                l.path = "/".into();
                l
            })[0]
                .forces_replace
        );
    }

    #[test]
    fn update_op_lists_exact_calls() {
        let mut l = live();
        l.inline.insert("admin".into(), json!({}));
        l.managed = vec!["arn:m".into()];
        let Op::Update(u) = update_op(&want(), &l) else { panic!() };
        assert!(u.trust.is_none());
        assert!(u.put_inline.is_empty());
        assert_eq!(u.delete_inline, vec!["admin".to_string()]);
        assert_eq!(u.detach, vec!["arn:m".to_string()]);
    }
}
