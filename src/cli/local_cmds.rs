//! Commands that never call AWS: `estimate`, `bundle`, `invoke`.

use std::io::Write as _;
use std::path::PathBuf;

use base64::Engine as _;
use std::process::ExitCode;

use clap::Args;

use super::{CliResult, SpecArg};
use crate::producer::encode::RowEncoder;
use crate::transform;

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("size").required(true).args(["record_kb", "record_bytes", "csv"]))]
pub struct EstimateArgs {
    /// Average record size in KB (1-1024), as in the article's calculator.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub record_kb: Option<u32>,
    /// Average row size in bytes (1-1048576), e.g. 110 for the article's rows.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub record_bytes: Option<u32>,
    /// Measure the sizes on this CSV sample, encoded exactly as `produce` sends it (needs -f and
    /// --pipeline).
    #[arg(long, requires_all = ["file", "pipeline"])]
    pub csv: Option<PathBuf>,
    /// The stack spec (with --csv).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The pipeline whose schema encodes the sample (with --csv).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// With --csv: key by this column, as `produce --partition-key` would.
    #[arg(long, value_name = "COLUMN", requires = "csv")]
    pub partition_key: Option<String>,
    /// Records (rows) written per second, all producers together.
    #[arg(long, alias = "rows-per-sec")]
    pub records_per_sec: u64,
    /// Consumer applications reading the stream.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub consumers: u32,
}

pub fn estimate(a: EstimateArgs) -> CliResult {
    use crate::estimate::{sizing, RowSizes};
    let rate = a.records_per_sec as f64;
    let sizes = if let Some(csv) = &a.csv {
        let spec_arg = SpecArg { file: a.file.clone().expect("clap requires --file with --csv") };
        let loaded = spec_arg.load()?;
        let name = a.pipeline.as_deref().expect("clap requires --pipeline with --csv");
        let p = loaded
            .spec
            .pipeline(name)
            .ok_or_else(|| format!("no pipeline named {name:?} in {}", spec_arg.file.display()))?;
        let m = crate::producer::measure::measure(&p.schema, csv, a.partition_key.as_deref())?;
        if m.rows == 0 {
            return Err(format!("{}: no row of the sample could be encoded", csv.display()).into());
        }
        let rows = m.rows as f64;
        RowSizes {
            plain_bytes: m.plain_bytes as f64 / rows,
            aggregated_bytes: m.aggregated_bytes as f64 / rows,
            rows_per_record: rows / m.aggregated_records.max(1) as f64,
            source: format!(
                "measured on {} rows of {} ({} rejected), encoded as produce sends them",
                m.rows,
                csv.display(),
                m.rejected
            ),
        }
    } else if let Some(kb) = a.record_kb {
        RowSizes::modeled(f64::from(kb) * 1024.0)
    } else {
        RowSizes::modeled(f64::from(a.record_bytes.expect("clap requires a size")))
    };
    println!("{}", sizing(sizes, rate, a.consumers));
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct BundleArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// Output directory (default: dist/ in the pipectl sources).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also build the standalone producer binary (compiles the Kinesis SDK in release mode).
    #[arg(long)]
    pub producer: bool,
}

pub fn bundle(a: BundleArgs) -> CliResult {
    // The spec is validated so a bundle is never built for a stack that cannot be applied.
    a.spec.load()?;
    let out = a.out.unwrap_or_else(crate::bundle::default_out_dir);
    let art = crate::bundle::bundle(&out, a.producer)?;
    println!("{}", art.zip.display());
    println!("  size:       {} bytes", art.size);
    println!("  CodeSha256: {}", art.code_sha256);
    println!("  built with: {}", art.builder);
    match art.glibc {
        Some((a, b)) => println!("  needs:      GLIBC_{a}.{b} (Lambda provided.al2023 has 2.34)"),
        None => println!("  needs:      no versioned glibc symbols"),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    #[command(flatten)]
    pub spec: SpecArg,
    /// The pipeline whose schema to use.
    #[arg(long)]
    pub pipeline: String,
    /// A Firehose transformation event (JSON); prints the response.
    #[arg(long, conflicts_with_all = ["csv", "mapping"])]
    pub event: Option<PathBuf>,
    /// Encode the CSV rows as the producer would and transform them; reports every failing row.
    #[arg(long, conflicts_with = "mapping")]
    pub csv: Option<PathBuf>,
    /// Print the index template derived from the schema.
    #[arg(long)]
    pub mapping: bool,
    /// With --csv: print the JSON documents (one per line).
    #[arg(long)]
    pub json: bool,
}

pub fn invoke(a: InvokeArgs) -> CliResult {
    let loaded = a.spec.load()?;
    let p = loaded
        .spec
        .pipeline(&a.pipeline)
        .ok_or_else(|| format!("no pipeline named {:?} in {}", a.pipeline, a.spec.file.display()))?;
    let schema = &p.schema;
    let compiled = crate::schema::Compiled::new(schema);
    if a.mapping {
        // The body `apply` puts as `_index_template/<index>` on the domain, without its
        // ownership marks: a template installed by hand from this output is not the stack's
        // (pipectl would otherwise take it for its own, and delete it when it is not in the spec).
        let mut body = crate::model::index_template(&loaded.spec, p).body();
        if let Some(m) = body.as_object_mut() {
            m.remove("_meta");
        }
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = a.event {
        let json = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        // Lambda refuses a request over 6 MB, so Firehose never sends one; a bigger local
        // event (a benchmark, a replay) is transformed whole, without the response limit.
        let limit = if json.len() > transform::RESPONSE_LIMIT {
            eprintln!(
                "{}: {} bytes, over Lambda's {}-byte request limit: transformed without the response limit",
                path.display(),
                json.len(),
                transform::RESPONSE_LIMIT
            );
            usize::MAX
        } else {
            transform::RESPONSE_LIMIT
        };
        let outcome = transform::process(&compiled, &json, limit).map_err(|transform::EventError::Json(e)| {
            format!("{} is not a Firehose transformation event: {e}", path.display())
        })?;
        for f in &outcome.failures {
            eprintln!("{f}");
        }
        if outcome.oversize.is_some() {
            eprintln!("{outcome}");
        }
        // The response exactly as the Lambda returns it.
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&outcome.response)?;
        stdout.write_all(b"\n")?;
        return Ok(if outcome.ok() == outcome.records { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let Some(csv_path) = a.csv else {
        return Err("invoke needs --event FILE, --csv FILE or --mapping".into());
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(&csv_path)
        .map_err(|e| format!("reading {}: {e}", csv_path.display()))?;
    let headers = reader.byte_headers()?.clone();
    let encoder = RowEncoder::new(schema, &headers, None)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (mut ok, mut failed, mut row) = (0u64, 0u64, 0u64);
    // Wire bytes in and response bytes out, for the measured expansion.
    let (mut wire_bytes, mut response_bytes) = (0usize, 0usize);
    let mut raw = csv::ByteRecord::new();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(500);
    let mut rows: Vec<u64> = Vec::with_capacity(500);
    let mut flush = |batch: &mut Vec<Vec<u8>>, rows: &mut Vec<u64>, ok: &mut u64, failed: &mut u64| -> CliResult {
        let outcome = transform::process(&compiled, &transform::event_json(batch, now), transform::RESPONSE_LIMIT)?;
        for f in &outcome.failures {
            // Row numbers count data rows from 1; the file line is one more (the header).
            let r = rows[f.position];
            super::out_line(format_args!("row {r} (line {}): failed: {}", r + 1, f.reason))?;
        }
        if outcome.oversize.is_some() {
            eprintln!("rows {}-{}: {outcome}", rows[0], rows[rows.len() - 1]);
        }
        *failed += (outcome.records - outcome.ok()) as u64;
        *ok += outcome.ok() as u64;
        wire_bytes += batch.iter().map(Vec::len).sum::<usize>();
        response_bytes += outcome.response.len();
        if a.json {
            let v: serde_json::Value = serde_json::from_slice(&outcome.response)?;
            for rec in v["records"].as_array().into_iter().flatten() {
                if rec["result"] == transform::RESULT_OK {
                    let doc = base64::engine::general_purpose::STANDARD.decode(rec["data"].as_str().unwrap_or(""))?;
                    super::out_line(String::from_utf8_lossy(&doc))?;
                }
            }
        }
        batch.clear();
        rows.clear();
        Ok(ExitCode::SUCCESS)
    };
    while reader.read_byte_record(&mut raw)? {
        row += 1;
        let mut out = Vec::new();
        match encoder.encode(row, &raw, &mut out) {
            Ok(_) => {
                batch.push(out);
                rows.push(row);
            }
            Err(e) => {
                super::out_line(format_args!("row {row} (line {}): failed: {e}", row + 1))?;
                failed += 1;
            }
        }
        if batch.len() == 500 {
            flush(&mut batch, &mut rows, &mut ok, &mut failed)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut rows, &mut ok, &mut failed)?;
    }
    if wire_bytes > 0 {
        // What a full transform buffer of rows like these answers, against Lambda's limit
        // (the spec cannot know row sizes; `validate` bounds the worst case per byte).
        let ratio = response_bytes as f64 / wire_bytes as f64;
        let (buffer_mb, _) =
            crate::resources::delivery::processor_buffer(p.delivery.buffering.size_mb, p.delivery.buffering.interval_s);
        let full = ratio * (buffer_mb as usize * transform::MAX_RECORD_BYTES) as f64;
        eprintln!(
            "response/wire bytes on these rows: {ratio:.2}× (a full {buffer_mb} MB transform buffer of them: {:.2} MB of response; Lambda's limit {:.2} MB)",
            full / 1e6,
            transform::RESPONSE_LIMIT as f64 / 1e6
        );
    }
    eprintln!("{row} rows: {ok} Ok, {failed} failed");
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
