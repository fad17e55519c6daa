//! The `status` screen (one per stack), the incoming-vs-delivered sparkline, and the JSON that
//! carries the same facts and verdicts. Pure and deterministic: same facts, same output.

use serde::Serialize;
use serde_json::json;

use super::metrics::Window;
use super::verdict::{thousands, PipelineFacts, Res, State, Val, Verdict};

/// The stack's report: each pipeline's facts and verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub stack: String,
    pub region: String,
    pub window: Window,
    pub since: String,
    pub pipelines: Vec<(PipelineFacts, Verdict)>,
}

impl Report {
    /// 0 healthy (or nothing to judge), 2 degraded: like `plan --detailed-exitcode`.
    pub fn exit_code(&self) -> u8 {
        if self.pipelines.iter().any(|(_, v)| v.state == State::Degraded) {
            2
        } else {
            0
        }
    }
}

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One sparkline row per series, scaled to the largest value of all of them so that the rows
/// compare: `·` no datapoint, `_` zero, `▁`…`█` the value.
pub fn sparklines(series: &[&[Option<f64>]]) -> Vec<String> {
    let max = series.iter().flat_map(|s| s.iter().flatten()).fold(0.0f64, |a, v| a.max(*v));
    series
        .iter()
        .map(|s| {
            s.iter()
                .map(|v| match v {
                    None => '·',
                    Some(v) if *v <= 0.0 || max <= 0.0 => '_',
                    Some(v) => BARS[((v / max) * (BARS.len() - 1) as f64).round() as usize],
                })
                .collect()
        })
        .collect()
}

fn num(v: Val) -> String {
    match v {
        Val::Known(Some(x)) => thousands(x),
        Val::Known(None) => "–".into(),
        Val::Unknown => "unknown".into(),
    }
}

fn bytes(v: Val) -> String {
    match v {
        Val::Known(Some(b)) if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        Val::Known(Some(b)) if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        Val::Known(Some(b)) if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        Val::Known(Some(b)) => format!("{b:.0} B"),
        other => num(other),
    }
}

fn pct(v: Val) -> String {
    match v {
        Val::Known(Some(r)) => format!("{:.1}%", r * 100.0),
        other => num(other),
    }
}

fn secs(v: Val, scale: f64) -> String {
    match v {
        Val::Known(Some(x)) => format!("{:.1} s", x / scale),
        other => num(other),
    }
}

fn res(r: &Res) -> String {
    match r {
        Res::Found(s) => s.clone(),
        Res::Missing => "MISSING".into(),
        Res::Unknown(why) => format!("unknown ({why})"),
    }
}

fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()
}

fn state_word(s: State) -> &'static str {
    match s {
        State::Healthy => "HEALTHY",
        State::NoData => "NO DATA",
        State::Degraded => "DEGRADED",
        State::Unknown => "UNKNOWN",
    }
}

/// The screen.
pub fn text(r: &Report) -> String {
    let w = &r.window;
    let mut out = format!(
        "stack {} · {} · last {} ({} → {} UTC, {} s intervals)\n",
        r.stack,
        r.region,
        r.since,
        utc(w.start),
        utc(w.end),
        w.period_s
    );
    for (f, v) in &r.pipelines {
        out.push('\n');
        out.push_str(&format!("pipeline {}: {}\n", f.name, state_word(v.state)));
        out.push_str(&format!("  {}\n", v.evidence));
        if let Some(fix) = &v.fix {
            out.push_str(&format!("  likely fix: {fix}\n"));
        }
        let lines = sparklines(&[&f.series.incoming, &f.series.delivered]);
        if let [inc, del] = lines.as_slice() {
            if !inc.is_empty() {
                out.push_str(&format!("  incoming  {inc}\n  delivered {del}\n"));
            }
        }
        let s = &f.stream;
        out.push_str(&format!(
            "  stream     {}: {}, {} shard(s); {} records in ({}); {} throttled writes; read lag max {}\n",
            s.name,
            res(&s.status),
            s.shards.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
            num(s.incoming_records),
            bytes(s.incoming_bytes),
            num(s.throttled_writes),
            secs(s.read_lag_ms_max, 1000.0),
        ));
        let t = &f.transform;
        out.push_str(&format!(
            "  transform  {}: {}; {} invocations, {} errors, {} throttles; duration avg {}, max {} of {} s timeout\n",
            t.name,
            res(&t.status),
            num(t.invocations),
            num(t.errors),
            num(t.throttles),
            secs(t.duration_ms_avg, 1000.0),
            secs(t.duration_ms_max, 1000.0),
            t.timeout_s,
        ));
        let d = &f.delivery;
        out.push_str(&format!(
            "  delivery   {}: {}; read {}, processed {} (processing success {}); delivered {} ({}), success {}, freshness max {}\n",
            d.name,
            res(&d.status),
            num(d.read_records),
            num(d.processed_records),
            pct(d.processing_success),
            num(d.delivered_records),
            bytes(d.delivered_bytes),
            pct(d.success_ratio),
            secs(d.freshness_s_max, 1.0),
        ));
        let fd = &f.failed;
        match fd.objects {
            None => out.push_str(&format!(
                "  failed     s3://{}/{}: unknown ({})\n",
                fd.bucket,
                fd.prefix,
                fd.unknown_reason.as_deref().unwrap_or("")
            )),
            Some(n) => {
                out.push_str(&format!(
                    "  failed     s3://{}/{}: {}{} object(s) in the window ({} from processing)\n",
                    fd.bucket,
                    fd.prefix,
                    if fd.truncated { "at least " } else { "" },
                    thousands(n as f64),
                    fd.processing_objects
                ));
                if let Some(l) = &fd.latest {
                    out.push_str(&format!("             latest {} ({})\n", l.key, l.last_modified));
                    for rec in &l.records {
                        out.push_str(&format!(
                            "               {} {}\n",
                            rec.error_code,
                            super::verdict::clip(&rec.error_message, 160)
                        ));
                    }
                }
            }
        }
        let dm = &f.domain;
        let health = match (dm.red, dm.yellow) {
            (Val::Unknown, _) | (_, Val::Unknown) => "cluster health unknown".to_string(),
            (Val::Known(Some(r)), _) if r > 0.0 => "cluster red".into(),
            (_, Val::Known(Some(y))) if y > 0.0 => "cluster yellow".into(),
            (Val::Known(None), Val::Known(None)) => "cluster health –".into(),
            _ => "cluster green".into(),
        };
        out.push_str(&format!(
            "  domain     {}: {}; {}; free storage min {} MB; JVM memory pressure max {}\n",
            dm.name,
            res(&dm.status),
            health,
            num(dm.free_storage_mb_min),
            match dm.jvm_pressure_max {
                Val::Known(Some(j)) => format!("{j:.0}%"),
                other => num(other),
            },
        ));
        for n in &v.notes {
            out.push_str(&format!("  note: {n}\n"));
        }
        if let Some(why) = &f.metrics_unknown {
            out.push_str(&format!("  metrics: unknown ({why})\n"));
        }
    }
    out
}

/// The JSON document: the same facts and verdicts.
pub fn json(r: &Report) -> String {
    let pipelines: Vec<_> = r
        .pipelines
        .iter()
        .map(|(f, v)| {
            let mut p = serde_json::to_value(f).expect("facts serialise");
            p["verdict"] = serde_json::to_value(v).expect("verdict serialises");
            p
        })
        .collect();
    let doc = json!({
        "stack": r.stack,
        "region": r.region,
        "window": { "start": r.window.start, "end": r.window.end, "period_s": r.window.period_s, "since": r.since },
        "pipelines": pipelines,
        "exit_code": r.exit_code(),
    });
    serde_json::to_string_pretty(&doc).expect("report serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_rows_share_one_scale() {
        let inc = [Some(0.0), Some(10.0), Some(80.0), None, Some(40.0)];
        let del = [Some(0.0), Some(0.0), Some(80.0), None, Some(10.0)];
        let rows = sparklines(&[&inc, &del]);
        assert_eq!(rows, vec!["_▂█·▅".to_string(), "__█·▂".to_string()]);
        assert_eq!(sparklines(&[&[None, None]]), vec!["··".to_string()]);
        assert_eq!(sparklines(&[&[Some(0.0)]]), vec!["_".to_string()]);
    }
}
