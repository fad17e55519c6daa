//! Normalisation before comparison: policy documents by meaning (IAM returns them URL-encoded,
//! OpenSearch may reorder them), tag sets by key, and the policy templates in `policies/`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// IAM returns policy documents percent-encoded (`%7B%22Version%22…`, spaces as `%20`, never
/// `+`). A document that is already plain JSON is returned unchanged.
pub fn url_decode(s: &str) -> String {
    if s.trim_start().starts_with('{') {
        return s.to_string();
    }
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// The canonical form of a policy: keys sorted, every list sorted and de-duplicated, and a
/// one-element list equal to its element (IAM treats `"Action": "x"` and `["x"]` alike).
/// Statement order carries no meaning either, so it is sorted too.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> = m.iter().map(|(k, v)| (k, canonical(v))).collect();
            let mut out = Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_key(|a| a.to_string());
            items.dedup();
            if items.len() == 1 {
                items.pop().unwrap_or(Value::Null)
            } else {
                Value::Array(items)
            }
        }
        other => other.clone(),
    }
}

/// Parses a policy as AWS returns it (maybe URL-encoded) into its canonical form. A document
/// that is not JSON is kept as a string so it still compares unequal to a real policy.
pub fn policy(text: &str) -> Value {
    let decoded = url_decode(text);
    match serde_json::from_str::<Value>(&decoded) {
        Ok(v) => canonical(&v),
        Err(_) => Value::String(decoded),
    }
}

/// Fills a template from `policies/`: a string that is exactly `${name}` becomes the value
/// (possibly a list); `${name}` inside a longer string is replaced by the value's text.
pub fn fill(template: &str, vars: &BTreeMap<&str, Value>) -> Value {
    let v: Value = serde_json::from_str(template).expect("policy templates are valid JSON (tested)");
    fill_value(&v, vars)
}

fn fill_value(v: &Value, vars: &BTreeMap<&str, Value>) -> Value {
    match v {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
                if let Some(val) = vars.get(name) {
                    return val.clone();
                }
            }
            let mut out = s.clone();
            for (k, val) in vars {
                if let Value::String(text) = val {
                    out = out.replace(&format!("${{{k}}}"), text);
                }
            }
            Value::String(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| fill_value(x, vars)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), fill_value(x, vars))).collect()),
        other => other.clone(),
    }
}

pub const LAMBDA_TRUST: &str = include_str!("../../policies/lambda-trust.json");
pub const LAMBDA_LOGS: &str = include_str!("../../policies/lambda-logs.json");
pub const FIREHOSE_TRUST: &str = include_str!("../../policies/firehose-trust.json");
pub const FIREHOSE_DELIVERY: &str = include_str!("../../policies/firehose-delivery.json");
pub const DOMAIN_ACCESS: &str = include_str!("../../policies/domain-access.json");

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn url_encoded_iam_documents_decode() {
        // As IAM (and moto) return an AssumeRolePolicyDocument.
        let enc = "%7B%0A%20%20%22Version%22%3A%20%222012-10-17%22%2C%20%22Statement%22%3A%20%5B%5D%7D";
        assert_eq!(policy(enc), json!({"Statement": [], "Version": "2012-10-17"}));
        // '+' is literal in IAM's encoding.
        assert_eq!(url_decode("a+b%20c"), "a+b c");
        assert_eq!(url_decode("{\"a\":1}"), "{\"a\":1}");
    }

    #[test]
    fn policies_compare_by_meaning() {
        let a = json!({"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":["es:ESHttpPut","es:ESHttpGet"],"Resource":"r"},
            {"Effect":"Allow","Action":"es:*","Principal":{"AWS":["arn:x"]},"Resource":["r"]}]});
        let b = json!({"Statement":[
            {"Resource":"r","Principal":{"AWS":"arn:x"},"Action":["es:*"],"Effect":"Allow"},
            {"Action":["es:ESHttpGet","es:ESHttpPut","es:ESHttpGet"],"Effect":"Allow","Resource":"r"}],
            "Version":"2012-10-17"});
        assert_eq!(canonical(&a), canonical(&b));
        let c = json!({"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"es:*","Resource":"r"}]});
        assert_ne!(canonical(&a), canonical(&c));
        // Pretty-printed vs compact text: equal.
        assert_eq!(policy(&serde_json::to_string_pretty(&a).unwrap()), policy(&b.to_string()));
    }

    #[test]
    fn templates_are_valid_and_fill() {
        for t in [LAMBDA_TRUST, LAMBDA_LOGS, FIREHOSE_TRUST, FIREHOSE_DELIVERY, DOMAIN_ACCESS] {
            serde_json::from_str::<Value>(t).unwrap();
        }
        let vars = BTreeMap::from([
            ("account", json!("123456789012")),
            ("partition", json!("aws")),
            ("domain_arn", json!("arn:aws:es:eu-west-1:123456789012:domain/kinesis")),
            ("firehose_role_arn", json!("arn:aws:iam::123456789012:role/pipectl/x")),
            ("allow_ips", json!(["1.1.1.1/32", "10.0.0.0/8"])),
        ]);
        let v = fill(DOMAIN_ACCESS, &vars);
        let s = v.to_string();
        assert!(!s.contains("${"), "{s}");
        assert_eq!(v["Statement"][0]["Principal"]["AWS"], "arn:aws:iam::123456789012:root");
        assert_eq!(v["Statement"][2]["Condition"]["IpAddress"]["aws:SourceIp"], json!(["1.1.1.1/32", "10.0.0.0/8"]));
        assert_eq!(v["Statement"][1]["Resource"], "arn:aws:es:eu-west-1:123456789012:domain/kinesis/*");
    }
}
