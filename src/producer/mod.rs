//! The producer: streams a CSV file (constant memory), encodes each row for its pipeline's
//! schema and delivers it to the Kinesis stream with PutRecords, retrying exactly the records
//! AWS reports as failed, with backoff, until a bounded budget is spent. Nothing is dropped
//! silently: undelivered and rejected rows are written to a CSV file named in the report.

pub mod encode;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use clap::Args;
use md5::{Digest, Md5};
use tokio::sync::{mpsc, Mutex};

use crate::aws::{errors::from_sdk, sdk_config, AwsError, ErrorClass, Target};
use crate::cli::{CliResult, Global, SpecArg};
use encode::{RowEncoder, RowError};

/// Kinesis PutRecords limits: 500 records and 5 MiB (data plus partition keys) per call.
pub const MAX_BATCH_RECORDS: usize = 500;
pub const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Per-shard write limits, applied once Kinesis has throttled us.
pub const SHARD_RECORDS_PER_SEC: f64 = 1000.0;
pub const SHARD_BYTES_PER_SEC: f64 = 1024.0 * 1024.0;

#[derive(Args, Debug, Clone)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// The pipeline whose stream and schema to use.
    #[arg(long)]
    pub pipeline: String,
    /// The CSV file (with a header row).
    #[arg(long)]
    pub csv: PathBuf,
    /// Key records by this CSV column (keeps per-key order) instead of spreading them evenly.
    #[arg(long, value_name = "COLUMN")]
    pub partition_key: Option<String>,
    /// Encode and count, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// PutRecords calls in flight at once (unkeyed mode; keyed mode uses one per shard).
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Retries per record before it counts as undelivered.
    #[arg(long, default_value_t = 10)]
    pub max_retries: u32,
    /// First retry delay in milliseconds (doubles per retry, with jitter, up to 5 s).
    #[arg(long, default_value_t = 100)]
    pub retry_base_ms: u64,
    /// Where undelivered and rejected rows go (default: <csv>.undelivered.csv).
    #[arg(long)]
    pub failed_out: Option<PathBuf>,
    /// Never show the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The outcome of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows_read: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub undelivered: u64,
    pub retries: u64,
    pub batches: u64,
    pub elapsed: Duration,
    pub failed_file: Option<PathBuf>,
    /// Peak resident memory of the process (Linux: VmHWM), in KiB.
    pub peak_rss_kib: Option<u64>,
}

/// The process's peak resident set size, where the OS reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        for (label, value) in [
            ("rows read:", self.rows_read),
            ("records delivered:", self.delivered),
            ("rows rejected:", self.rejected),
            ("undelivered:", self.undelivered),
            ("retries:", self.retries),
            ("PutRecords calls:", self.batches),
        ] {
            writeln!(f, "{label:<20}{value}")?;
        }
        write!(f, "elapsed:            {:.3} s ({:.0} rows/s)", secs, self.rows_read as f64 / secs)?;
        if let Some(kib) = self.peak_rss_kib {
            write!(f, "\npeak memory:        {:.1} MiB", kib as f64 / 1024.0)?;
        }
        if let Some(p) = &self.failed_file {
            write!(f, "\nundelivered/rejected rows written to {}", p.display())?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("no pipeline named {0:?} in the spec")]
    NoPipeline(String),
    #[error("reading {path}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Header(#[from] encode::HeaderError),
    #[error("looking up the shards of stream {stream}")]
    Shards {
        stream: String,
        #[source]
        source: Box<AwsError>,
    },
    #[error("stream {0} has no open shards")]
    NoShards(String),
    #[error("writing undelivered rows to {path}")]
    FailedOut {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One record on its way: the CSV row (for the failure file), the wire data and routing.
struct Rec {
    row: u64,
    raw: csv::ByteRecord,
    data: Vec<u8>,
    key: String,
    hash: Option<String>,
    attempts: u32,
}

impl Rec {
    fn size(&self) -> usize {
        self.data.len() + self.key.len()
    }
}

/// An open shard: its id and the hash-key range it owns.
#[derive(Debug, Clone)]
pub struct Shard {
    pub id: String,
    pub start: u128,
    pub end: u128,
}

/// The shard a partition key lands on: Kinesis maps MD5(key) as a 128-bit integer.
pub fn shard_for_key(shards: &[Shard], key: &str) -> usize {
    let h = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
    shards.iter().position(|s| s.start <= h && h <= s.end).unwrap_or(0)
}

/// A token bucket over records and bytes per second, enabled after the first throttling.
struct Pacer {
    records_per_sec: f64,
    bytes_per_sec: f64,
    state: Mutex<(bool, Instant)>,
}

impl Pacer {
    fn new(shards: usize) -> Pacer {
        Pacer {
            records_per_sec: SHARD_RECORDS_PER_SEC * shards as f64,
            bytes_per_sec: SHARD_BYTES_PER_SEC * shards as f64,
            state: Mutex::new((false, Instant::now())),
        }
    }
    async fn throttled(&self) {
        self.state.lock().await.0 = true;
    }
    /// Reserves room for a batch; sleeps so the rate stays within the shard limits.
    async fn pace(&self, records: usize, bytes: usize) {
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

struct Shared {
    client: aws_sdk_kinesis::Client,
    stream: String,
    max_retries: u32,
    retry_base: Duration,
    retries: AtomicU64,
    delivered: AtomicU64,
    calls: AtomicU64,
    failed: std::sync::Mutex<Vec<Rec>>,
}

/// Sends one batch until every record is delivered or out of retries.
async fn send_batch(sh: &Shared, pacer: &Pacer, mut pending: Vec<Rec>) {
    while !pending.is_empty() {
        let bytes: usize = pending.iter().map(Rec::size).sum();
        pacer.pace(pending.len(), bytes).await;
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
        let result = sh.client.put_records().stream_name(&sh.stream).set_records(Some(entries)).send().await;
        let mut retry = Vec::new();
        let mut throttled = false;
        match result {
            Ok(out) => {
                // The answer lists one entry per request record, in order; an entry with an
                // error code was not stored.
                let answers = out.records();
                for (i, rec) in pending.into_iter().enumerate() {
                    match answers.get(i).and_then(|a| a.error_code()) {
                        None if i < answers.len() => {
                            sh.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        code => {
                            throttled |= code == Some("ProvisionedThroughputExceededException");
                            retry.push(rec);
                        }
                    }
                }
            }
            Err(e) => {
                // The whole call failed (connection dropped, 5xx, throttled): nothing is known
                // to be stored, so every record is retried. If AWS stored them but the answer
                // was lost, they arrive twice; that is the only duplication.
                let e = from_sdk("kinesis:PutRecords", &sh.stream, e);
                throttled |= e.is(ErrorClass::Throttled);
                retry = pending;
            }
        }
        if throttled {
            pacer.throttled().await;
        }
        let mut next = Vec::new();
        let mut max_attempt = 0;
        for mut r in retry {
            r.attempts += 1;
            if r.attempts > sh.max_retries {
                sh.failed.lock().unwrap_or_else(|p| p.into_inner()).push(r);
            } else {
                sh.retries.fetch_add(1, Ordering::Relaxed);
                max_attempt = max_attempt.max(r.attempts);
                next.push(r);
            }
        }
        if !next.is_empty() {
            let cap = sh.retry_base.saturating_mul(1 << max_attempt.min(16)).min(Duration::from_secs(5));
            tokio::time::sleep(cap.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        }
        pending = next;
    }
}

/// Reads the open shards of a stream (ListShards; closed parents after a reshard are skipped).
pub async fn open_shards(client: &aws_sdk_kinesis::Client, stream: &str) -> Result<Vec<Shard>, AwsError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = client.list_shards();
        req = match &token {
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let out = req.send().await.map_err(|e| from_sdk("kinesis:ListShards", stream, e))?;
        for s in out.shards() {
            if s.sequence_number_range().and_then(|r| r.ending_sequence_number()).is_some() {
                continue;
            }
            let range = s.hash_key_range();
            let p = |v: Option<&str>| v.and_then(|v| v.parse::<u128>().ok()).unwrap_or(0);
            shards.push(Shard {
                id: s.shard_id().to_string(),
                start: p(range.map(|r| r.starting_hash_key())),
                end: p(range.map(|r| r.ending_hash_key())),
            });
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    shards.sort_by_key(|s| s.start);
    Ok(shards)
}

/// Shows a progress line on a terminal, nothing in a pipe.
struct Progress {
    enabled: bool,
    total: u64,
    last: Instant,
    start: Instant,
}

impl Progress {
    fn tick(&mut self, rows: u64, pos: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let rate = rows as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
        let pct = if self.total > 0 { (pos as f64 * 100.0 / self.total as f64).min(100.0) } else { 100.0 };
        let filled = (pct / 5.0) as usize;
        eprint!("\r[{}{}] {pct:5.1}%  {rows} rows  {rate:.0} rows/s   ", "#".repeat(filled), " ".repeat(20 - filled));
    }
    fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// Runs the producer. `client` is None for a dry run.
pub async fn produce(
    client: Option<aws_sdk_kinesis::Client>,
    stream: &str,
    schema: &crate::schema::Schema,
    args: &ProduceArgs,
) -> Result<Report, ProduceError> {
    let start = Instant::now();
    let csv_err = |source| ProduceError::Csv { path: args.csv.display().to_string(), source };
    let total = std::fs::metadata(&args.csv).map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&args.csv).map_err(csv_err)?;
    let headers = reader.byte_headers().map_err(csv_err)?.clone();
    let encoder = RowEncoder::new(schema, &headers, args.partition_key.as_deref())?;
    let mut progress =
        Progress { enabled: !args.quiet && std::io::stderr().is_terminal(), total, last: Instant::now(), start };
    let mut report = Report::default();
    let mut rejected: Vec<(csv::ByteRecord, RowError)> = Vec::new();

    let Some(client) = client else {
        // Dry run: encode every row, send nothing.
        let mut raw = csv::ByteRecord::new();
        let mut out = Vec::new();
        while reader.read_byte_record(&mut raw).map_err(csv_err)? {
            report.rows_read += 1;
            if let Err(e) = encoder.encode(report.rows_read, &raw, &mut out) {
                rejected.push((raw.clone(), e));
            }
            progress.tick(report.rows_read, raw.position().map_or(0, |p| p.byte()));
        }
        progress.done();
        report.rejected = rejected.len() as u64;
        report.elapsed = start.elapsed();
        report.peak_rss_kib = peak_rss_kib();
        finish_failures(args, &headers, &mut report, rejected, Vec::new())?;
        return Ok(report);
    };

    let shards = open_shards(&client, stream)
        .await
        .map_err(|source| ProduceError::Shards { stream: stream.to_string(), source: Box::new(source) })?;
    if shards.is_empty() {
        return Err(ProduceError::NoShards(stream.to_string()));
    }
    let keyed = args.partition_key.is_some();
    // Keyed: one lane per shard, one call in flight each, so per-key order is kept.
    // Unkeyed: `concurrency` lanes; records go round-robin to the shards by explicit hash key.
    let lanes = if keyed { shards.len() } else { args.concurrency.max(1) };
    let shared = Arc::new(Shared {
        client,
        stream: stream.to_string(),
        max_retries: args.max_retries,
        retry_base: Duration::from_millis(args.retry_base_ms),
        retries: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        failed: std::sync::Mutex::new(Vec::new()),
    });
    let pacer = Arc::new(Pacer::new(shards.len()));
    let mut senders = Vec::with_capacity(lanes);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..lanes {
        // A bounded channel: the reader waits when every lane is busy (constant memory).
        let (tx, mut rx) = mpsc::channel::<Vec<Rec>>(1);
        senders.push(tx);
        let sh = shared.clone();
        let pc = if keyed { Arc::new(Pacer::new(1)) } else { pacer.clone() };
        tasks.spawn(async move {
            while let Some(batch) = rx.recv().await {
                send_batch(&sh, &pc, batch).await;
            }
        });
    }

    let mut batches: Vec<(Vec<Rec>, usize)> = (0..lanes).map(|_| (Vec::new(), 0)).collect();
    let mut rr_lane = 0usize;
    let mut raw = csv::ByteRecord::new();
    while reader.read_byte_record(&mut raw).map_err(csv_err)? {
        report.rows_read += 1;
        let row = report.rows_read;
        let mut data = Vec::with_capacity(raw.as_slice().len() + 8);
        let key = match encoder.encode(row, &raw, &mut data) {
            Ok(k) => k,
            Err(e) => {
                rejected.push((raw.clone(), e));
                continue;
            }
        };
        let (lane, key, hash) = match key {
            // Kinesis needs a non-empty partition key.
            Some(k) => {
                let k = if k.is_empty() { "_".to_string() } else { k.chars().take(256).collect() };
                (shard_for_key(&shards, &k), k, None)
            }
            None => {
                let s = &shards[(row as usize) % shards.len()];
                (rr_lane, row.to_string(), Some(s.start.to_string()))
            }
        };
        let rec = Rec { row, raw: raw.clone(), data, key, hash, attempts: 0 };
        let (batch, bytes) = &mut batches[lane];
        if batch.len() == MAX_BATCH_RECORDS || *bytes + rec.size() > MAX_BATCH_BYTES {
            let full = std::mem::take(batch);
            *bytes = 0;
            if senders[lane].send(full).await.is_err() {
                break;
            }
            if !keyed {
                rr_lane = (rr_lane + 1) % lanes;
            }
        }
        // Unkeyed: the record joins the current round-robin lane's batch.
        let lane = if keyed { lane } else { rr_lane };
        let (batch, bytes) = &mut batches[lane];
        *bytes += rec.size();
        batch.push(rec);
        progress.tick(row, raw.position().map_or(0, |p| p.byte()));
    }
    for (lane, (batch, _)) in batches.into_iter().enumerate() {
        if !batch.is_empty() {
            let _ = senders[lane].send(batch).await;
        }
    }
    drop(senders);
    while tasks.join_next().await.is_some() {}
    progress.done();

    report.delivered = shared.delivered.load(Ordering::Relaxed);
    report.retries = shared.retries.load(Ordering::Relaxed);
    report.batches = shared.calls.load(Ordering::Relaxed);
    report.rejected = rejected.len() as u64;
    let mut failed = std::mem::take(&mut *shared.failed.lock().unwrap_or_else(|p| p.into_inner()));
    failed.sort_by_key(|r| r.row);
    report.undelivered = failed.len() as u64;
    report.elapsed = start.elapsed();
    report.peak_rss_kib = peak_rss_kib();
    finish_failures(args, &headers, &mut report, rejected, failed)?;
    Ok(report)
}

/// Writes rejected and undelivered rows (with the header) so they can be sent again.
fn finish_failures(
    args: &ProduceArgs,
    headers: &csv::ByteRecord,
    report: &mut Report,
    rejected: Vec<(csv::ByteRecord, RowError)>,
    undelivered: Vec<Rec>,
) -> Result<(), ProduceError> {
    for (_, e) in &rejected {
        eprintln!("rejected: {e}");
    }
    if rejected.is_empty() && undelivered.is_empty() {
        return Ok(());
    }
    let path = args.failed_out.clone().unwrap_or_else(|| undelivered_path(&args.csv));
    let io = |source| ProduceError::FailedOut { path: path.display().to_string(), source };
    let mut w = csv::WriterBuilder::new().flexible(true).from_path(&path).map_err(|e| io(e.into()))?;
    w.write_byte_record(headers).map_err(|e| io(e.into()))?;
    let mut rows: Vec<(u64, &csv::ByteRecord)> =
        rejected.iter().map(|(r, e)| (row_of(e), r)).chain(undelivered.iter().map(|r| (r.row, &r.raw))).collect();
    rows.sort_by_key(|(n, _)| *n);
    for (_, r) in rows {
        w.write_byte_record(r).map_err(|e| io(e.into()))?;
    }
    w.flush().map_err(io)?;
    report.failed_file = Some(path);
    Ok(())
}

fn row_of(e: &RowError) -> u64 {
    match e {
        RowError::MissingColumn { row, .. } | RowError::TooLarge { row, .. } | RowError::Utf8 { row, .. } => *row,
    }
}

pub fn undelivered_path(csv: &Path) -> PathBuf {
    let mut s = csv.as_os_str().to_owned();
    s.push(".undelivered.csv");
    PathBuf::from(s)
}

/// `pipectl produce` and the standalone `pipectl-producer`.
pub async fn run_cli(global: &Global, args: ProduceArgs) -> CliResult {
    let loaded = args.spec.load()?;
    let spec = loaded.spec;
    let p = spec.pipeline(&args.pipeline).ok_or_else(|| ProduceError::NoPipeline(args.pipeline.clone()))?;
    let client = if args.dry_run {
        None
    } else {
        let target = Target {
            region: global.region.clone(),
            profile: global.profile.clone(),
            endpoint_url: global.endpoint_url.clone(),
            // The producer retries per record itself; an SDK retry of a whole PutRecords
            // would resend records that were already stored.
            max_attempts: Some(1),
        };
        let cfg = sdk_config(&target, spec.region.as_deref()).await?;
        Some(aws_sdk_kinesis::Client::new(&cfg))
    };
    let report = produce(client, &p.stream.name, &p.schema, &args).await?;
    println!("{report}");
    if report.undelivered > 0 || report.rejected > 0 {
        return Err(format!(
            "{} record(s) undelivered and {} row(s) rejected; they are in {}",
            report.undelivered,
            report.rejected,
            report.failed_file.as_deref().map(|p| p.display().to_string()).unwrap_or_default()
        )
        .into());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_the_shard_owning_their_hash() {
        let half = u128::MAX / 2;
        let shards = vec![
            Shard { id: "a".into(), start: 0, end: half },
            Shard { id: "b".into(), start: half + 1, end: u128::MAX },
        ];
        // MD5("a") = 0cc175b9..., below half; MD5("b") = 92eb5ffe..., above half.
        assert_eq!(shard_for_key(&shards, "a"), 0);
        assert_eq!(shard_for_key(&shards, "b"), 1);
    }

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
        // Bytes bind too: 512 KiB at 1 MiB/s takes 0.5 s per batch.
        let p = Pacer::new(2);
        p.throttled().await;
        let t = Instant::now();
        p.pace(1, 1024 * 1024).await;
        p.pace(1, 1024 * 1024).await;
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(490), "{e:?}");
    }

    #[test]
    fn undelivered_path_is_beside_the_csv() {
        assert_eq!(undelivered_path(Path::new("/x/rows.csv")), PathBuf::from("/x/rows.csv.undelivered.csv"));
    }
}
