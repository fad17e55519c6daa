//! One lane's PutRecords loop: sends a batch, retries exactly the records Kinesis reports as
//! failed (with backoff, within a budget), paces to the shard limits once throttled, and settles
//! every record as delivered or undelivered, marking those whose outcome was unknown.
//!
//! What is known after a call (Kinesis API reference, PutRecords): a 200 answer lists one result
//! per request record, in order; a record with an `ErrorCode` was not stored, the others were.
//! An error answer below 500 means the request was refused as a whole. Anything else (a timeout,
//! a connection lost after the request went out, a 5xx, an unreadable answer) leaves the outcome
//! unknown: the records may be stored. They are resent (at least once), and their rows are
//! counted as "possibly duplicated".

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use tokio::sync::{watch, Mutex};

use super::failures::FailureSink;
use super::pack::Unit;
use crate::aws::{errors::from_sdk, ErrorClass};

/// Per-shard write limits (Kinesis Data Streams quotas): 1,000 records/s and 1 MiB/s, data plus
/// partition keys. An aggregated record counts as one record, so for aggregates the bytes bind.
pub const SHARD_RECORDS_PER_SEC: f64 = 1000.0;
pub const SHARD_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;

/// Where the run is: sending; draining (no new calls, no retries: what is not delivered goes
/// to the file); aborting (the drain deadline passed: calls in flight are abandoned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Draining,
    Abort,
}

/// A token bucket over records and bytes per second, enabled after the first throttling.
pub struct Pacer {
    records_per_sec: f64,
    bytes_per_sec: f64,
    state: Mutex<(bool, Instant)>,
}

impl Pacer {
    pub fn new(shards: usize) -> Pacer {
        Pacer {
            records_per_sec: SHARD_RECORDS_PER_SEC * shards as f64,
            bytes_per_sec: SHARD_BYTES_PER_SEC * shards as f64,
            state: Mutex::new((false, Instant::now())),
        }
    }
    pub async fn throttled(&self) {
        self.state.lock().await.0 = true;
    }
    /// Reserves room for a call of `records` Kinesis records and `bytes` bytes; sleeps so the
    /// rate stays within the shard limits. Whichever limit the call uses up more of binds.
    pub async fn pace(&self, records: usize, bytes: usize) {
        let wait = {
            let mut st = self.state.lock().await;
            if !st.0 {
                return;
            }
            let cost = (records as f64 / self.records_per_sec).max(bytes as f64 / self.bytes_per_sec);
            let now = Instant::now();
            let start = st.1.max(now);
            st.1 = start + Duration::from_secs_f64(cost);
            start - now
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Counters and settings shared by the lanes.
pub struct Shared {
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
    pub max_retries: u32,
    pub retry_base: Duration,
    pub sink: FailureSink,
    pub retries: AtomicU64,
    pub delivered_rows: AtomicU64,
    pub delivered_records: AtomicU64,
    pub undelivered_rows: AtomicU64,
    pub possibly_duplicated: AtomicU64,
    pub unknown_outcomes: AtomicU64,
    pub calls: AtomicU64,
}

impl Shared {
    fn delivered(&self, u: &Unit) {
        self.delivered_rows.fetch_add(u.rows.len() as u64, Ordering::Relaxed);
        self.delivered_records.fetch_add(1, Ordering::Relaxed);
        if u.unknown {
            self.possibly_duplicated.fetch_add(u.rows.len() as u64, Ordering::Relaxed);
        }
    }
    /// Rows never sent (read after an interrupt): to the undelivered file.
    pub fn unsent(&self, rows: &[super::pack::Row]) {
        self.undelivered_rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
        self.sink.write(rows);
    }

    /// Not known to be delivered: to the undelivered file, now.
    pub fn undelivered(&self, units: impl IntoIterator<Item = Unit>) {
        for u in units {
            self.undelivered_rows.fetch_add(u.rows.len() as u64, Ordering::Relaxed);
            if u.unknown {
                // In the file and perhaps in the stream too: resending the file may duplicate.
                self.possibly_duplicated.fetch_add(u.rows.len() as u64, Ordering::Relaxed);
            }
            self.sink.write(&u.rows);
        }
    }
}

/// What a failed call tells about its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// Refused as a whole, or never sent: nothing stored.
    NotStored,
    /// Maybe stored.
    Unknown,
}

/// Classifies a failed PutRecords call (see the module header).
pub fn classify<E>(e: &SdkError<E, HttpResponse>) -> CallFailure {
    match e {
        SdkError::ConstructionFailure(_) => CallFailure::NotStored,
        SdkError::ServiceError(s) if s.raw().status().as_u16() < 500 => CallFailure::NotStored,
        SdkError::DispatchFailure(d) if d.as_connector_error().is_some_and(|c| connection_refused(c)) => {
            CallFailure::NotStored
        }
        _ => CallFailure::Unknown,
    }
}

/// A refused connection sent nothing. Other I/O errors may come after the request went out.
fn connection_refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = c.source();
    }
    false
}

/// Sends one batch until every record is settled.
pub async fn send_batch(sh: &Shared, pacer: &Pacer, mut pending: Vec<Unit>, phase: &mut watch::Receiver<Phase>) {
    let aborted = |p: &Phase| *p == Phase::Abort;
    while !pending.is_empty() {
        if *phase.borrow() != Phase::Running {
            sh.undelivered(pending);
            return;
        }
        let bytes: usize = pending.iter().map(Unit::size).sum();
        tokio::select! {
            _ = pacer.pace(pending.len(), bytes) => {}
            _ = phase.wait_for(|p| *p != Phase::Running) => {
                sh.undelivered(pending);
                return;
            }
        }
        let entries: Vec<PutRecordsRequestEntry> = pending
            .iter()
            .map(|r| {
                PutRecordsRequestEntry::builder()
                    .data(Blob::new(r.data.clone()))
                    .partition_key(r.key.clone())
                    .set_explicit_hash_key(r.hash.clone())
                    .build()
                    .expect("data and partition key are set")
            })
            .collect();
        sh.calls.fetch_add(1, Ordering::Relaxed);
        let call = sh.client.put_records().stream_name(&sh.stream).set_records(Some(entries)).send();
        let result = tokio::select! {
            r = call => r,
            _ = phase.wait_for(aborted) => {
                // Abandoned in flight: the records may or may not be stored.
                for u in &mut pending {
                    u.unknown = true;
                }
                sh.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
                sh.undelivered(pending);
                return;
            }
        };
        let mut retry = Vec::new();
        let mut throttled = false;
        match result {
            Ok(out) => {
                let answers = out.records();
                for (i, mut u) in pending.into_iter().enumerate() {
                    match answers.get(i) {
                        Some(a) if a.error_code().is_none() => sh.delivered(&u),
                        Some(a) => {
                            throttled |= a.error_code() == Some("ProvisionedThroughputExceededException");
                            retry.push(u);
                        }
                        // Kinesis answers every record; a short answer is an unknown outcome.
                        None => {
                            u.unknown = true;
                            retry.push(u);
                        }
                    }
                }
            }
            Err(e) => {
                let failure = classify(&e);
                let e = from_sdk("kinesis:PutRecords", &sh.stream, e);
                throttled |= e.is(ErrorClass::Throttled);
                if failure == CallFailure::Unknown {
                    sh.unknown_outcomes.fetch_add(1, Ordering::Relaxed);
                    for u in &mut pending {
                        u.unknown = true;
                    }
                }
                retry = pending;
            }
        }
        if throttled {
            pacer.throttled().await;
        }
        let mut next = Vec::new();
        let mut spent = Vec::new();
        let mut max_attempt = 0;
        for mut u in retry {
            u.attempts += 1;
            if u.attempts > sh.max_retries {
                spent.push(u);
            } else {
                max_attempt = max_attempt.max(u.attempts);
                next.push(u);
            }
        }
        sh.undelivered(spent);
        if !next.is_empty() {
            sh.retries.fetch_add(next.len() as u64, Ordering::Relaxed);
            let cap = sh.retry_base.saturating_mul(1 << max_attempt.min(16)).min(Duration::from_secs(5));
            tokio::select! {
                _ = tokio::time::sleep(cap.mul_f64(0.5 + fastrand::f64() / 2.0)) => {}
                _ = phase.wait_for(|p| *p != Phase::Running) => {}
            }
        }
        pending = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pacing_starts_after_throttling_and_holds_the_shard_limits() {
        let p = Pacer::new(1);
        let t = Instant::now();
        for _ in 0..10 {
            p.pace(500, 100_000).await;
        }
        // Paced, these 5,000 records would take 4.5 s.
        assert!(t.elapsed() < Duration::from_secs(1), "no pacing before any throttling");
        p.throttled().await;
        let t = Instant::now();
        // 3 x 100 records at 1,000 records/s on one shard: the 2nd and 3rd wait 0.1 s each.
        for _ in 0..3 {
            p.pace(100, 100).await;
        }
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(190), "{e:?}");
        // Bytes bind for few large records (aggregates): 512 KiB at 1 MiB/s takes 0.5 s.
        let p = Pacer::new(1);
        p.throttled().await;
        let t = Instant::now();
        p.pace(8, 512 * 1024).await;
        p.pace(8, 512 * 1024).await;
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(490), "{e:?}");
    }

    #[test]
    fn refused_connections_are_known_not_to_be_sent() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(connection_refused(&refused));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!connection_refused(&reset));
    }
}
