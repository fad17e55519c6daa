//! What `status` knows about one pipeline (its facts) and the verdict drawn from them: healthy,
//! no data in the window, or the first stage where data stops or fails, with the evidence in
//! one line and the likely fix where it is knowable. Pure: no AWS call, no clock.

use serde::{Serialize, Serializer};

/// One reading: a value, no datapoint in the window, or unknown (not allowed to read it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    Known(Option<f64>),
    Unknown,
}

impl Val {
    /// The value, with "no datapoint" as 0 (CloudWatch publishes no count for an idle
    /// resource); `None` when unknown.
    pub fn count(self) -> Option<f64> {
        match self {
            Val::Known(v) => Some(v.unwrap_or(0.0)),
            Val::Unknown => None,
        }
    }

    /// The value when there is one.
    pub fn value(self) -> Option<f64> {
        match self {
            Val::Known(v) => v,
            Val::Unknown => None,
        }
    }
}

impl Serialize for Val {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Known(Some(v)) => s.serialize_f64(*v),
            Val::Known(None) => s.serialize_none(),
            Val::Unknown => s.serialize_str("unknown"),
        }
    }
}

/// A resource's state as its own describe call reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Res {
    /// AWS's status word (ACTIVE, Active, Failed, …).
    Found(String),
    Missing,
    /// Not allowed to read it (the reason).
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamFacts {
    pub name: String,
    pub status: Res,
    pub shards: Option<u32>,
    pub incoming_records: Val,
    pub incoming_bytes: Val,
    pub throttled_writes: Val,
    /// GetRecords.IteratorAgeMilliseconds, maximum: how far the delivery stream's reads lag.
    pub read_lag_ms_max: Val,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransformFacts {
    pub name: String,
    pub status: Res,
    pub timeout_s: u32,
    pub invocations: Val,
    pub errors: Val,
    pub throttles: Val,
    pub duration_ms_avg: Val,
    pub duration_ms_max: Val,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryFacts {
    pub name: String,
    pub status: Res,
    pub buffer_s: u32,
    pub read_records: Val,
    pub processed_records: Val,
    /// ExecuteProcessing.Success, Sum / SampleCount.
    pub processing_success: Val,
    pub delivered_records: Val,
    pub delivered_bytes: Val,
    /// Delivery…Success, Sum / SampleCount.
    pub success_ratio: Val,
    pub freshness_s_max: Val,
}

/// One failed record as Firehose wrote it to S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedRecord {
    pub error_code: String,
    pub error_message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LatestFailed {
    pub key: String,
    pub last_modified: String,
    /// Processing failures (`processing-failed/`) versus indexing failures.
    pub processing: bool,
    /// The first few records of the object, never the payload.
    pub records: Vec<FailedRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFacts {
    pub bucket: String,
    pub prefix: String,
    /// Objects written in the window; `None`: unknown (not allowed to list).
    pub objects: Option<u64>,
    /// Of those, the Lambda's processing failures.
    pub processing_objects: u64,
    /// The listing stopped at its page limit: there are at least `objects`.
    pub truncated: bool,
    pub latest: Option<LatestFailed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DomainFacts {
    pub name: String,
    pub status: Res,
    pub processing: Option<bool>,
    pub red: Val,
    pub yellow: Val,
    pub free_storage_mb_min: Val,
    pub jvm_pressure_max: Val,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub period_s: i64,
    pub incoming: Vec<Option<f64>>,
    pub delivered: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineFacts {
    pub name: String,
    pub stream: StreamFacts,
    pub transform: TransformFacts,
    pub delivery: DeliveryFacts,
    pub failed: FailedFacts,
    pub domain: DomainFacts,
    pub series: Series,
    /// Why the metrics are unknown, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_unknown: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    /// Nothing came in and nothing failed: nothing to judge (e.g. the local emulator).
    NoData,
    Degraded,
    /// The metrics that decide could not be read.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Stream,
    Transform,
    Delivery,
    Domain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub state: State,
    pub stage: Option<Stage>,
    pub evidence: String,
    pub fix: Option<String>,
    /// Warnings that do not stop data (throttled writes, a duration near the timeout, …).
    pub notes: Vec<String>,
}

/// "7,584".
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// The likely fix for a failed record's error, where the error names it. Codes and messages
/// are OpenSearch's (security_exception, mapper_parsing_exception, cluster_block_exception,
/// es_rejected_execution_exception) and Firehose's processing errors (`Lambda.*`, Firehose
/// developer guide, "Handle data delivery failures" and "Data transformation failure
/// handling").
pub fn likely_fix(r: &FailedRecord, firehose_role: &str) -> Option<String> {
    let code = r.error_code.to_ascii_lowercase();
    let msg = r.error_message.to_ascii_lowercase();
    let has = |needle: &str| code.contains(needle) || msg.contains(needle);
    if code == "403" || has("not authorized") || has("security_exception") || has("accessdenied") || has("forbidden") {
        if has("index_create_block") || has("cluster_block") {
            return Some("the domain blocks writes (storage full?): add storage (search.volume_gb) and apply".into());
        }
        return Some(format!(
            "the domain's access policy (or its fine-grained access control) must admit the Firehose role \
             {firehose_role}: `pipectl plan` shows policy drift, `pipectl apply` restores it"
        ));
    }
    if has("mapper_parsing_exception")
        || has("strict_dynamic_mapping")
        || has("illegal_argument_exception")
        || has("mapping")
    {
        return Some(
            "mapping conflict: the index's mapping disagrees with the documents; compare it with \
             `pipectl invoke --mapping`, then fix the schema or reindex into a new index"
                .into(),
        );
    }
    if has("cluster_block_exception") {
        return Some("the domain blocks writes (storage full?): add storage (search.volume_gb) and apply".into());
    }
    if has("es_rejected_execution_exception") || code == "429" {
        return Some("the domain rejects writes under load: more or larger nodes, or larger Firehose buffers".into());
    }
    if code.starts_with("lambda.") {
        if has("timeout") || has("timed out") {
            return Some("the transform hits its timeout: raise transform.timeout_s (or memory_mb) and apply".into());
        }
        return Some("the transform fails: `pipectl invoke --csv FILE` shows the failing rows and why".into());
    }
    None
}

fn ratio_pct(v: f64) -> String {
    let p = v * 100.0;
    if p >= 99.95 || p == 0.0 {
        format!("{p:.0}%")
    } else {
        format!("{p:.1}%")
    }
}

struct Judge<'a> {
    f: &'a PipelineFacts,
    window: &'a str,
    firehose_role: &'a str,
    notes: Vec<String>,
}

impl Judge<'_> {
    fn degraded(&mut self, stage: Stage, evidence: String, fix: Option<String>) -> Verdict {
        Verdict { state: State::Degraded, stage: Some(stage), evidence, fix, notes: std::mem::take(&mut self.notes) }
    }

    fn failed_evidence(&self) -> String {
        let fd = &self.f.failed;
        let Some(n) = fd.objects else { return "failed documents unknown".into() };
        let mut s =
            format!("{}{} failed document object(s)", if fd.truncated { "at least " } else { "" }, thousands(n as f64));
        if let Some(r) = fd.latest.as_ref().and_then(|l| l.records.first()) {
            s.push_str(&format!(", latest: {} {}", r.error_code, clip(&r.error_message, 120)));
        }
        s
    }

    fn failed_fix(&self) -> Option<String> {
        let r = self.f.failed.latest.as_ref()?.records.first()?;
        likely_fix(r, self.firehose_role)
    }

    fn resource(&mut self) -> Option<Verdict> {
        let f = self.f;
        let apply = || Some("run `pipectl plan` and `pipectl apply`".to_string());
        match &f.stream.status {
            Res::Missing => {
                return Some(self.degraded(Stage::Stream, format!("stream: {} does not exist", f.stream.name), apply()))
            }
            Res::Found(s) if s == "CREATING" || s == "DELETING" => {
                return Some(self.degraded(Stage::Stream, format!("stream: {} is {s}", f.stream.name), None))
            }
            _ => {}
        }
        match &f.transform.status {
            Res::Missing => {
                return Some(self.degraded(
                    Stage::Transform,
                    format!("transform: function {} does not exist", f.transform.name),
                    apply(),
                ))
            }
            Res::Found(s) if s == "Failed" || s == "Inactive" => {
                return Some(self.degraded(
                    Stage::Transform,
                    format!("transform: function {} is {s}", f.transform.name),
                    if s == "Failed" { apply() } else { None },
                ))
            }
            _ => {}
        }
        match &f.delivery.status {
            Res::Missing => {
                return Some(self.degraded(
                    Stage::Delivery,
                    format!("delivery: delivery stream {} does not exist", f.delivery.name),
                    apply(),
                ))
            }
            Res::Found(s) if s != "ACTIVE" => {
                return Some(self.degraded(
                    Stage::Delivery,
                    format!("delivery: delivery stream {} is {s}", f.delivery.name),
                    s.ends_with("FAILED").then(|| "`pipectl plan` shows the replacement; `pipectl apply`".into()),
                ))
            }
            _ => {}
        }
        if f.domain.status == Res::Missing {
            return Some(self.degraded(Stage::Domain, format!("domain: {} does not exist", f.domain.name), apply()));
        }
        None
    }

    fn notes(&mut self) {
        let f = self.f;
        if let Some(t) = f.stream.throttled_writes.value().filter(|t| *t > 0.0) {
            self.notes.push(format!(
                "stream: {} writes throttled (the producer retries them); `pipectl estimate` says how many shards the load needs",
                thousands(t)
            ));
        }
        if let Some(lag) = f.stream.read_lag_ms_max.value().filter(|l| *l >= 300_000.0) {
            self.notes.push(format!("stream: the delivery stream's reads lag up to {:.0} s behind", lag / 1000.0));
        }
        let timeout_ms = f.transform.timeout_s as f64 * 1000.0;
        if let Some(d) = f.transform.duration_ms_max.value().filter(|d| timeout_ms > 0.0 && *d >= 0.8 * timeout_ms) {
            self.notes.push(format!(
                "transform: maximum duration {:.1} s is {:.0}% of the {} s timeout",
                d / 1000.0,
                d / timeout_ms * 100.0,
                f.transform.timeout_s
            ));
        }
        if let Some(fr) = f.delivery.freshness_s_max.value().filter(|s| *s > (f.delivery.buffer_s as f64 + 900.0)) {
            self.notes.push(format!("delivery: the oldest undelivered record was up to {} s old", thousands(fr)));
        }
        if f.domain.yellow.value().is_some_and(|y| y > 0.0) {
            self.notes
                .push("domain: cluster status yellow (replica shards unassigned; a one-node domain always is)".into());
        }
        if let Some(j) = f.domain.jvm_pressure_max.value().filter(|j| *j >= 80.0) {
            self.notes.push(format!("domain: JVM memory pressure up to {j:.0}%"));
        }
        if let Some(m) = f.domain.free_storage_mb_min.value().filter(|m| *m < 1024.0) {
            self.notes.push(format!("domain: free storage down to {} MB", thousands(m)));
        }
        if f.domain.processing == Some(true) {
            self.notes.push("domain: a configuration change is being processed".into());
        }
    }

    fn judge(mut self) -> Verdict {
        let f = self.f;
        let w = self.window;
        self.notes();
        if let Some(v) = self.resource() {
            return v;
        }
        let failed = f.failed.objects.unwrap_or(0);
        let processing_failed = f.failed.processing_objects;
        let delivery_failed = failed.saturating_sub(processing_failed);
        let Some(incoming) = f.stream.incoming_records.count() else {
            let reason = f.metrics_unknown.clone().unwrap_or_else(|| "not readable".into());
            if failed > 0 {
                return self.degraded(
                    if delivery_failed > 0 { Stage::Delivery } else { Stage::Transform },
                    format!("metrics unknown ({reason}); {}", self.failed_evidence()),
                    self.failed_fix(),
                );
            }
            return Verdict {
                state: State::Unknown,
                stage: None,
                evidence: format!("unknown: the metrics could not be read ({reason})"),
                fix: Some("allow cloudwatch:GetMetricData to the caller".into()),
                notes: self.notes,
            };
        };
        let delivered = f.delivery.delivered_records.count();
        let invocations = f.transform.invocations.count();
        if incoming == 0.0 && failed == 0 && delivered.unwrap_or(0.0) == 0.0 && invocations.unwrap_or(0.0) == 0.0 {
            return Verdict {
                state: State::NoData,
                stage: None,
                evidence: format!("no data in the window: nothing was written to stream {} in {w}", f.stream.name),
                fix: Some("send rows with `pipectl produce`".into()),
                notes: self.notes,
            };
        }
        let inc = thousands(incoming);
        // Records came in but nothing downstream published a single datapoint, not even a
        // zero: the delivery stream and the function have not reported yet (CloudWatch metrics
        // arrive minutes late) or nothing publishes them (the local emulator publishes only
        // the stream's). A stall is called only on a published zero or on failed documents.
        let downstream = [
            f.delivery.read_records,
            f.delivery.processed_records,
            f.delivery.processing_success,
            f.delivery.delivered_records,
            f.delivery.success_ratio,
            f.delivery.freshness_s_max,
            f.transform.invocations,
            f.transform.errors,
            f.transform.throttles,
        ];
        if incoming > 0.0 && failed == 0 && downstream.iter().all(|v| *v == Val::Known(None)) {
            return Verdict {
                state: State::NoData,
                stage: None,
                evidence: format!(
                    "no delivery data in the window: {inc} records came into stream {} in {w}, but neither \
                     {} nor {} published a metric",
                    f.stream.name, f.delivery.name, f.transform.name
                ),
                fix: Some(
                    "on AWS, look again in a few minutes (metrics arrive late); the local emulator publishes \
                     only the stream's metrics"
                        .into(),
                ),
                notes: self.notes,
            };
        }
        if incoming > 0.0 {
            if f.delivery.read_records.count() == Some(0.0) {
                return self.degraded(
                    Stage::Delivery,
                    format!(
                        "delivery: {} read 0 of {inc} records from stream {} in {w}",
                        f.delivery.name, f.stream.name
                    ),
                    Some(format!(
                        "the Firehose role {} must read the stream (kinesis:GetRecords, and kms:Decrypt for an encrypted stream): `pipectl plan` shows role drift",
                        self.firehose_role
                    )),
                );
            }
            if invocations == Some(0.0) {
                return self.degraded(
                    Stage::Transform,
                    format!("transform: {} was not invoked while {inc} records came in ({w})", f.transform.name),
                    Some(format!(
                        "the Firehose role {} must invoke the function (lambda:InvokeFunction): `pipectl plan` shows role drift",
                        self.firehose_role
                    )),
                );
            }
        }
        let errors = f.transform.errors.count().unwrap_or(0.0);
        if errors > 0.0 {
            let timeout_ms = f.transform.timeout_s as f64 * 1000.0;
            let max = f.transform.duration_ms_max.value();
            let at_timeout = max.is_some_and(|d| timeout_ms > 0.0 && d >= 0.95 * timeout_ms);
            let mut evidence = format!(
                "transform: {} of {} invocations failed in {w}",
                thousands(errors),
                invocations.map(thousands).unwrap_or_else(|| "unknown".into())
            );
            if let Some(d) = max {
                evidence.push_str(&format!(
                    "; maximum duration {:.1} s of the {} s timeout",
                    d / 1000.0,
                    f.transform.timeout_s
                ));
            }
            let fix = if at_timeout {
                "the function hits its timeout: raise transform.timeout_s (or memory_mb, which brings CPU) and apply"
                    .to_string()
            } else {
                format!(
                    "read the function's log group /aws/lambda/{}; `pipectl invoke --csv FILE` runs the transform locally",
                    f.transform.name
                )
            };
            return self.degraded(Stage::Transform, evidence, Some(fix));
        }
        if let Some(t) = f.transform.throttles.value().filter(|t| *t > 0.0) {
            return self.degraded(
                Stage::Transform,
                format!("transform: {} invocations throttled in {w}", thousands(t)),
                Some("the account's Lambda concurrency is exhausted: raise the quota or reserve concurrency for the function".into()),
            );
        }
        if processing_failed > 0 {
            return self.degraded(
                Stage::Transform,
                format!("transform: records failed processing in {w}; {}", self.failed_evidence()),
                self.failed_fix().or_else(|| Some("`pipectl invoke --csv FILE` shows the failing rows and why".into())),
            );
        }
        if let Some(r) = f.delivery.processing_success.value().filter(|r| *r < 1.0) {
            return self.degraded(
                Stage::Transform,
                format!("transform: {} of Firehose's calls to {} succeeded in {w}", ratio_pct(r), f.transform.name),
                Some(format!("read the function's log group /aws/lambda/{}", f.transform.name)),
            );
        }
        let delivered_s = delivered.map(thousands).unwrap_or_else(|| "unknown".into());
        let red = f.domain.red.value().is_some_and(|r| r > 0.0);
        let red_fix = || {
            Some("the domain's cluster is red (a primary shard is unassigned): free storage or add nodes, then check the index".to_string())
        };
        if delivered == Some(0.0) && incoming > 0.0 {
            return self.degraded(
                Stage::Delivery,
                format!("delivery: 0 of {inc} records delivered in {w}; {}", self.failed_evidence()),
                if red { red_fix() } else { self.failed_fix() },
            );
        }
        if delivery_failed > 0 {
            return self.degraded(
                Stage::Delivery,
                format!("delivery: {delivered_s} of {inc} records delivered in {w}; {}", self.failed_evidence()),
                if red { red_fix() } else { self.failed_fix() },
            );
        }
        if let Some(r) = f.delivery.success_ratio.value().filter(|r| *r < 1.0) {
            return self.degraded(
                Stage::Delivery,
                format!(
                    "delivery: {} of indexing requests succeeded in {w} ({delivered_s} of {inc} records delivered)",
                    ratio_pct(r)
                ),
                if red { red_fix() } else { None },
            );
        }
        if red {
            return self.degraded(
                Stage::Domain,
                format!("domain: {} cluster status red in {w}", f.domain.name),
                red_fix(),
            );
        }
        Verdict {
            state: State::Healthy,
            stage: None,
            evidence: format!("healthy: {delivered_s} of {inc} records delivered in {w}"),
            fix: None,
            notes: self.notes,
        }
    }
}

/// The verdict for one pipeline. `window` reads like "the last hour".
pub fn verdict(f: &PipelineFacts, window: &str, firehose_role: &str) -> Verdict {
    Judge { f, window, firehose_role, notes: Vec::new() }.judge()
}

/// "the last hour", "the last 30 minutes", "the last 2 days".
pub fn window_label(since_s: i64) -> String {
    let plural = |n: i64, unit: &str| if n == 1 { format!("the last {unit}") } else { format!("the last {n} {unit}s") };
    if since_s % 86_400 == 0 {
        plural(since_s / 86_400, "day")
    } else if since_s % 3600 == 0 {
        plural(since_s / 3600, "hour")
    } else if since_s % 60 == 0 {
        plural(since_s / 60, "minute")
    } else {
        plural(since_s, "second")
    }
}

#[cfg(test)]
mod tests;
