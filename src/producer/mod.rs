//! The producer: streams a CSV file (constant memory), encodes each row for its pipeline's
//! schema, packs rows into KPL aggregated records (or one row per record with `aggregate` off)
//! and delivers them to the Kinesis stream with PutRecords. Delivery is **at least once**: every
//! row ends delivered, rejected or in the undelivered file, and only a request whose outcome is
//! unknown (a timeout, a connection lost after sending) can duplicate rows; those rows are
//! counted. Per-key order holds in keyed mode under partial failures (see `pack`). An interrupt
//! or a CSV read error stops reading, lets calls in flight finish within a deadline and writes
//! every row not known to be delivered to the undelivered file.
//!
//! Layout: `encode` (row → wire bytes), `aggregate` (KPL format), `pack` (rows → records →
//! batches, pure), `send` (a lane's PutRecords loop), `failures` (the undelivered file),
//! `shard` (routing), `measure` (sizes for `estimate`). This module runs them together.

pub mod aggregate;
pub mod encode;
pub mod failures;
pub mod measure;
pub mod pack;
pub mod send;
pub mod shard;

use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::aws::AwsError;
use encode::{HeaderError, RowEncoder};
use failures::{same_file, undelivered_path, FailureSink, SinkError};
use pack::{PackConfig, Packer, Row, Unit, AGGREGATE_TARGET, BATCH_BYTES_PER_SHARD};
use send::{send_batch, Pacer, Phase, Shared};
pub use shard::{open_shards, shard_for_key, Shard};

/// How to run the producer (the CLI's flags, without the CLI).
#[derive(Debug, Clone)]
pub struct Options {
    pub csv: PathBuf,
    /// Key records by this CSV column (per-key order) instead of spreading them evenly.
    pub partition_key: Option<String>,
    /// KPL aggregation (many rows per Kinesis record).
    pub aggregate: bool,
    /// PutRecords calls in flight at once (unkeyed; keyed mode runs one per shard).
    pub concurrency: usize,
    /// Retries per record before its rows count as undelivered.
    pub max_retries: u32,
    /// First retry delay (doubles per retry, with jitter, up to 5 s).
    pub retry_base: Duration,
    /// Where undelivered and rejected rows go (default `<csv>.undelivered.csv`).
    pub failed_out: Option<PathBuf>,
    /// After an interrupt or a read error, how long calls in flight may take to finish.
    pub drain: Duration,
    pub progress: bool,
}

/// Why a run stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    Interrupted,
    ReadError { line: u64, message: String },
}

/// The outcome of one run. Row counts add up: `rows_read = delivered + rejected + undelivered`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub rows_read: u64,
    pub delivered: u64,
    pub rejected: u64,
    pub undelivered: u64,
    /// Rows sent in a request whose outcome was unknown, then resent or written to the file:
    /// they may be in the stream twice (or in the stream and in the file).
    pub possibly_duplicated: u64,
    /// Kinesis records delivered (aggregated records count once).
    pub records: u64,
    pub aggregate: bool,
    pub retries: u64,
    pub batches: u64,
    pub elapsed: Duration,
    pub failed_file: Option<PathBuf>,
    pub stopped: Option<Stopped>,
    /// Rows read after an interrupt only to be copied to the undelivered file (in `undelivered`).
    pub unread: u64,
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
            ("rows delivered:", self.delivered),
            ("rows rejected:", self.rejected),
            ("undelivered:", self.undelivered),
            ("possibly duplicated:", self.possibly_duplicated),
        ] {
            writeln!(f, "{label:<22}{value}")?;
        }
        let per = if self.records > 0 { self.delivered as f64 / self.records as f64 } else { 0.0 };
        let how = if self.aggregate { "KPL aggregated" } else { "one row each" };
        writeln!(f, "{:<22}{} ({how}, {per:.1} rows per record)", "Kinesis records:", self.records)?;
        writeln!(f, "{:<22}{}", "retries:", self.retries)?;
        writeln!(f, "{:<22}{}", "PutRecords calls:", self.batches)?;
        write!(f, "{:<22}{:.3} s ({:.0} rows/s)", "elapsed:", secs, self.delivered as f64 / secs)?;
        if let Some(kib) = self.peak_rss_kib {
            write!(f, "\n{:<22}{:.1} MiB", "peak memory:", kib as f64 / 1024.0)?;
        }
        match &self.stopped {
            Some(Stopped::Interrupted) => write!(
                f,
                "\nstopped: interrupted; {} row(s) not sent yet were copied to the undelivered file",
                self.unread
            )?,
            Some(Stopped::ReadError { line, message }) => {
                write!(f, "\nstopped: CSV read error at line {line} ({message}); rows from there on were not read")?
            }
            None => {}
        }
        if let Some(p) = &self.failed_file {
            write!(f, "\nundelivered/rejected rows written to {}", p.display())?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error("opening {path}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("--failed-out {0} is the input file: rows would be overwritten while being read")]
    FailedOutIsInput(String),
    #[error("looking up the shards of stream {stream}")]
    Shards {
        stream: String,
        #[source]
        source: Box<AwsError>,
    },
    #[error("stream {0} has no open shards")]
    NoShards(String),
    #[error(transparent)]
    FailedOut(#[from] SinkError),
    #[error(
        "rows do not add up: {read} read but {delivered} delivered + {rejected} rejected + {undelivered} undelivered"
    )]
    Invariant { read: u64, delivered: u64, rejected: u64, undelivered: u64 },
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Moves the run to draining, and to abort once the drain deadline passes.
fn begin_stop(phase: &Arc<watch::Sender<Phase>>, drain: Duration) {
    if phase.send_if_modified(|p| {
        let running = *p == Phase::Running;
        if running {
            *p = Phase::Draining;
        }
        running
    }) {
        let phase = phase.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            phase.send_replace(Phase::Abort);
        });
    }
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

/// Runs the producer. `client` is None for a dry run (encode and pack, send nothing).
/// `interrupt` completes when the run must stop (see `shutdown_signal`).
pub async fn produce(
    client: Option<aws_sdk_kinesis::Client>,
    stream: &str,
    schema: &crate::schema::Schema,
    opts: &Options,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> Result<Report, ProduceError> {
    let start = Instant::now();
    let failed_path = opts.failed_out.clone().unwrap_or_else(|| undelivered_path(&opts.csv));
    if same_file(&failed_path, &opts.csv) {
        return Err(ProduceError::FailedOutIsInput(failed_path.display().to_string()));
    }
    let csv_err = |source| ProduceError::Csv { path: opts.csv.display().to_string(), source };
    let total = std::fs::metadata(&opts.csv).map(|m| m.len()).unwrap_or(0);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(&opts.csv).map_err(csv_err)?;
    let headers = reader.byte_headers().map_err(csv_err)?.clone();
    let encoder = RowEncoder::new(schema, &headers, opts.partition_key.as_deref())?;
    let mut progress =
        Progress { enabled: opts.progress && std::io::stderr().is_terminal(), total, last: start, start };
    let dry_run = client.is_none();

    let shards = match &client {
        Some(c) => open_shards(c, stream)
            .await
            .map_err(|source| ProduceError::Shards { stream: stream.to_string(), source: Box::new(source) })?,
        None => vec![Shard { id: "dry-run".into(), start: 0, end: u128::MAX }],
    };
    if shards.is_empty() {
        return Err(ProduceError::NoShards(stream.to_string()));
    }
    let keyed = opts.partition_key.is_some();
    let mut packer = Packer::new(
        PackConfig {
            aggregate: opts.aggregate,
            keyed,
            lanes: opts.concurrency.max(1),
            aggregate_target: AGGREGATE_TARGET,
            batch_bytes_per_shard: BATCH_BYTES_PER_SHARD,
        },
        shards.clone(),
    );
    let lanes = packer.lanes();
    let sink = FailureSink::new(failed_path, headers.clone());
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let phase_tx = Arc::new(phase_tx);
    let shared = Arc::new(Shared {
        client: client.unwrap_or_else(|| {
            // A dry run sends nothing; the lanes below only count what they would send.
            aws_sdk_kinesis::Client::from_conf(
                aws_sdk_kinesis::Config::builder()
                    .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
                    .build(),
            )
        }),
        stream: stream.to_string(),
        max_retries: opts.max_retries,
        retry_base: opts.retry_base,
        sink,
        retries: AtomicU64::new(0),
        delivered_rows: AtomicU64::new(0),
        delivered_records: AtomicU64::new(0),
        undelivered_rows: AtomicU64::new(0),
        possibly_duplicated: AtomicU64::new(0),
        unknown_outcomes: AtomicU64::new(0),
        calls: AtomicU64::new(0),
    });
    let watcher = {
        let (phase, drain) = (phase_tx.clone(), opts.drain);
        tokio::spawn(async move {
            interrupt.await;
            begin_stop(&phase, drain);
            true
        })
    };
    let dry_records = Arc::new(AtomicU64::new(0));
    let pacer = Arc::new(Pacer::new(shards.len()));
    let mut senders = Vec::with_capacity(lanes);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..lanes {
        // A bounded channel: the reader waits when every lane is busy (constant memory).
        let (tx, mut rx) = mpsc::channel::<Vec<Unit>>(1);
        senders.push(tx);
        let (sh, mut phase) = (shared.clone(), phase_rx.clone());
        let pc = if keyed { Arc::new(Pacer::new(1)) } else { pacer.clone() };
        let dry = dry_records.clone();
        tasks.spawn(async move {
            while let Some(batch) = rx.recv().await {
                if dry_run {
                    dry.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    continue;
                }
                send_batch(&sh, &pc, batch, &mut phase).await;
            }
        });
    }

    let mut report = Report { aggregate: opts.aggregate, ..Report::default() };
    let phase = phase_rx.clone();
    // Hands a batch to its lane; once stopping, its rows go to the file instead.
    let dispatch = |lane: usize, batch: Vec<Unit>| {
        let tx = senders[lane].clone();
        let sh = shared.clone();
        let mut phase = phase_rx.clone();
        async move {
            if *phase.borrow() == Phase::Running {
                // Reserve first: a batch handed to `send` would be lost if the select dropped it.
                tokio::select! {
                    permit = tx.reserve() => {
                        if let Ok(p) = permit {
                            p.send(batch);
                            return;
                        }
                    }
                    _ = phase.wait_for(|p| *p != Phase::Running) => {}
                }
            }
            sh.undelivered(batch);
        }
    };
    let mut raw = csv::ByteRecord::new();
    loop {
        if *phase.borrow() != Phase::Running {
            report.stopped = Some(Stopped::Interrupted);
            break;
        }
        match reader.read_byte_record(&mut raw) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(report.rows_read + 2, |p| p.line());
                report.stopped = Some(Stopped::ReadError { line, message: e.to_string() });
                begin_stop(&phase_tx, opts.drain);
                break;
            }
        }
        report.rows_read += 1;
        let row = report.rows_read;
        let mut data = Vec::with_capacity(raw.as_slice().len() + 8);
        let key = match encoder.encode(row, &raw, &mut data) {
            Ok(k) => k,
            Err(e) => {
                let line = raw.position().map_or(row + 1, |p| p.line());
                eprintln!("rejected (line {line}): {e}");
                report.rejected += 1;
                shared.sink.write(&[Row { row, raw: raw.clone() }]);
                continue;
            }
        };
        for (lane, batch) in packer.push(Row { row, raw: raw.clone() }, key, data) {
            dispatch(lane, batch).await;
        }
        progress.tick(row, raw.position().map_or(0, |p| p.byte()));
    }
    if report.stopped == Some(Stopped::Interrupted) {
        // The rows not read yet go to the file as well, so that the file plus the delivered rows
        // are the input, and the file can be fed back as it is.
        let mut chunk = Vec::with_capacity(1000);
        while let Ok(true) = reader.read_byte_record(&mut raw) {
            report.rows_read += 1;
            report.unread += 1;
            chunk.push(Row { row: report.rows_read, raw: raw.clone() });
            if chunk.len() == 1000 {
                shared.unsent(&chunk);
                chunk.clear();
            }
        }
        shared.unsent(&chunk);
    }
    for (lane, batch) in packer.finish() {
        dispatch(lane, batch).await;
    }
    drop(senders);
    while tasks.join_next().await.is_some() {}
    progress.done();
    watcher.abort();
    if matches!(watcher.await, Ok(true)) && report.stopped.is_none() {
        // Interrupted after the last row was read, while records were still being sent.
        report.stopped = Some(Stopped::Interrupted);
    }

    report.delivered = shared.delivered_rows.load(Ordering::Relaxed);
    report.records = shared.delivered_records.load(Ordering::Relaxed);
    report.undelivered = shared.undelivered_rows.load(Ordering::Relaxed);
    report.possibly_duplicated = shared.possibly_duplicated.load(Ordering::Relaxed);
    report.retries = shared.retries.load(Ordering::Relaxed);
    report.batches = shared.calls.load(Ordering::Relaxed);
    if dry_run {
        // Nothing was sent: the records are those that would have been.
        report.records = dry_records.load(Ordering::Relaxed);
    }
    report.elapsed = start.elapsed();
    report.peak_rss_kib = peak_rss_kib();
    report.failed_file = shared.sink.finish()?;
    let settled = report.delivered + report.rejected + report.undelivered;
    if !dry_run && settled != report.rows_read {
        return Err(ProduceError::Invariant {
            read: report.rows_read,
            delivered: report.delivered,
            rejected: report.rejected,
            undelivered: report.undelivered,
        });
    }
    Ok(report)
}
