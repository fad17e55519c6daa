//! The CloudWatch metrics of each stage, named as AWS documents them, and the folding of a
//! GetMetricData answer into window totals and per-interval series. Pure: no AWS call, no clock.
//!
//! Every metric is asked for with one plain statistic per query (Sum, SampleCount, Maximum,
//! Minimum) and ratios and averages are computed here, never with metric math or percentiles:
//! a whole GetMetricData call fails on a bad expression (and moto 5.2.5 evaluates none and
//! fails a call on a percentile), while the batch here must answer every line or none.
//!
//! Sources (namespace, metric, dimension):
//! - Kinesis Data Streams developer guide, "Monitoring the Amazon Kinesis Data Streams Service
//!   with Amazon CloudWatch": `AWS/Kinesis` IncomingRecords, IncomingBytes,
//!   WriteProvisionedThroughputExceeded, GetRecords.IteratorAgeMilliseconds by StreamName.
//! - Firehose developer guide, "Monitoring with CloudWatch metrics": `AWS/Firehose` by
//!   DeliveryStreamName: DataReadFromKinesisStream.Records, ExecuteProcessing.Success,
//!   SucceedProcessing.Records, and per destination `DeliveryToAmazonOpenSearchService.*` (an
//!   OpenSearch Service destination) or `DeliveryToElasticsearch.*` (an Elasticsearch one):
//!   .Records, .Bytes, .Success (per indexing request, 1 or 0: Sum / SampleCount is the
//!   ratio), .DataFreshness (seconds, age of the oldest record not yet delivered).
//! - Lambda developer guide, "Types of metrics for Lambda functions": `AWS/Lambda` Invocations,
//!   Errors, Throttles, Duration (milliseconds) by FunctionName.
//! - OpenSearch Service developer guide, "Monitoring OpenSearch cluster metrics": `AWS/ES`
//!   ClusterStatus.red / .yellow (1 while the cluster is in that state), FreeStorageSpace
//!   (megabytes), JVMMemoryPressure (percent), by DomainName and ClientId (the account id).
//!
//! moto 5.2.5 matches dimensions with a sort whose comparison (`Dimension.__lt__`) compares a
//! value with a name, so a query whose dimensions come in another order than they were put
//! matches nothing: the domain's dimensions are always given as DomainName, then ClientId.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::EngineFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Stat {
    Sum,
    SampleCount,
    Maximum,
    Minimum,
}

impl Stat {
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Sum => "Sum",
            Stat::SampleCount => "SampleCount",
            Stat::Maximum => "Maximum",
            Stat::Minimum => "Minimum",
        }
    }

    /// Folds per-interval values of this statistic into one value for the window.
    fn fold(self, values: impl Iterator<Item = f64>) -> Option<f64> {
        values.fold(None, |acc, v| {
            Some(match (acc, self) {
                (None, _) => v,
                (Some(a), Stat::Sum | Stat::SampleCount) => a + v,
                (Some(a), Stat::Maximum) => a.max(v),
                (Some(a), Stat::Minimum) => a.min(v),
            })
        })
    }
}

/// One line of the screen that comes from CloudWatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Key {
    // stream
    IncomingRecords,
    IncomingBytes,
    WriteThrottled,
    IteratorAgeMax,
    // transform
    Invocations,
    Errors,
    Throttles,
    DurationSum,
    DurationCount,
    DurationMax,
    // delivery
    ReadRecords,
    ProcessingSuccessSum,
    ProcessingSuccessCount,
    ProcessedRecords,
    DeliveredRecords,
    DeliveredBytes,
    DeliverySuccessSum,
    DeliverySuccessCount,
    FreshnessMax,
    // domain (one per stack)
    ClusterRed,
    ClusterYellow,
    FreeStorageMin,
    JvmPressureMax,
}

impl Key {
    pub const PIPELINE: [Key; 19] = [
        Key::IncomingRecords,
        Key::IncomingBytes,
        Key::WriteThrottled,
        Key::IteratorAgeMax,
        Key::Invocations,
        Key::Errors,
        Key::Throttles,
        Key::DurationSum,
        Key::DurationCount,
        Key::DurationMax,
        Key::ReadRecords,
        Key::ProcessingSuccessSum,
        Key::ProcessingSuccessCount,
        Key::ProcessedRecords,
        Key::DeliveredRecords,
        Key::DeliveredBytes,
        Key::DeliverySuccessSum,
        Key::DeliverySuccessCount,
        Key::FreshnessMax,
    ];
    pub const DOMAIN: [Key; 4] = [Key::ClusterRed, Key::ClusterYellow, Key::FreeStorageMin, Key::JvmPressureMax];

    /// A GetMetricData query id: starts with a lowercase letter, then letters, digits, `_`.
    fn id_part(self) -> String {
        format!("{self:?}").to_ascii_lowercase()
    }
}

/// The names a pipeline's metrics are published under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub stream: String,
    pub function: String,
    pub delivery: String,
    pub family: EngineFamily,
}

/// The domain's metric dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainNames {
    pub domain: String,
    pub account: String,
}

/// One GetMetricData query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: String,
    pub namespace: &'static str,
    pub metric: String,
    /// In the order they are sent (see the module header on moto's dimension matching).
    pub dimensions: Vec<(&'static str, String)>,
    pub stat: Stat,
}

/// Which pipeline (by index in the spec) or the domain a query belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Pipeline(usize),
    Domain,
}

fn delivery_prefix(family: EngineFamily) -> &'static str {
    match family {
        EngineFamily::OpenSearch => "DeliveryToAmazonOpenSearchService",
        EngineFamily::Elasticsearch => "DeliveryToElasticsearch",
    }
}

/// The query of one pipeline metric.
pub fn pipeline_query(index: usize, key: Key, n: &Names) -> Query {
    use Key::*;
    let stream = || vec![("StreamName", n.stream.clone())];
    let function = || vec![("FunctionName", n.function.clone())];
    let delivery = || vec![("DeliveryStreamName", n.delivery.clone())];
    let dest = delivery_prefix(n.family);
    let (namespace, metric, dimensions, stat) = match key {
        IncomingRecords => ("AWS/Kinesis", "IncomingRecords".to_string(), stream(), Stat::Sum),
        IncomingBytes => ("AWS/Kinesis", "IncomingBytes".to_string(), stream(), Stat::Sum),
        WriteThrottled => ("AWS/Kinesis", "WriteProvisionedThroughputExceeded".to_string(), stream(), Stat::Sum),
        IteratorAgeMax => ("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds".to_string(), stream(), Stat::Maximum),
        Invocations => ("AWS/Lambda", "Invocations".to_string(), function(), Stat::Sum),
        Errors => ("AWS/Lambda", "Errors".to_string(), function(), Stat::Sum),
        Throttles => ("AWS/Lambda", "Throttles".to_string(), function(), Stat::Sum),
        DurationSum => ("AWS/Lambda", "Duration".to_string(), function(), Stat::Sum),
        DurationCount => ("AWS/Lambda", "Duration".to_string(), function(), Stat::SampleCount),
        DurationMax => ("AWS/Lambda", "Duration".to_string(), function(), Stat::Maximum),
        ReadRecords => ("AWS/Firehose", "DataReadFromKinesisStream.Records".to_string(), delivery(), Stat::Sum),
        ProcessingSuccessSum => ("AWS/Firehose", "ExecuteProcessing.Success".to_string(), delivery(), Stat::Sum),
        ProcessingSuccessCount => {
            ("AWS/Firehose", "ExecuteProcessing.Success".to_string(), delivery(), Stat::SampleCount)
        }
        ProcessedRecords => ("AWS/Firehose", "SucceedProcessing.Records".to_string(), delivery(), Stat::Sum),
        DeliveredRecords => ("AWS/Firehose", format!("{dest}.Records"), delivery(), Stat::Sum),
        DeliveredBytes => ("AWS/Firehose", format!("{dest}.Bytes"), delivery(), Stat::Sum),
        DeliverySuccessSum => ("AWS/Firehose", format!("{dest}.Success"), delivery(), Stat::Sum),
        DeliverySuccessCount => ("AWS/Firehose", format!("{dest}.Success"), delivery(), Stat::SampleCount),
        FreshnessMax => ("AWS/Firehose", format!("{dest}.DataFreshness"), delivery(), Stat::Maximum),
        ClusterRed | ClusterYellow | FreeStorageMin | JvmPressureMax => {
            unreachable!("domain metrics are built by domain_query")
        }
    };
    Query { id: format!("p{index}_{}", key.id_part()), namespace, metric, dimensions, stat }
}

/// The query of one domain metric.
pub fn domain_query(key: Key, d: &DomainNames) -> Query {
    let (metric, stat) = match key {
        Key::ClusterRed => ("ClusterStatus.red", Stat::Maximum),
        Key::ClusterYellow => ("ClusterStatus.yellow", Stat::Maximum),
        Key::FreeStorageMin => ("FreeStorageSpace", Stat::Minimum),
        Key::JvmPressureMax => ("JVMMemoryPressure", Stat::Maximum),
        other => unreachable!("{other:?} is a pipeline metric"),
    };
    Query {
        id: format!("d_{}", key.id_part()),
        namespace: "AWS/ES",
        metric: metric.to_string(),
        dimensions: vec![("DomainName", d.domain.clone()), ("ClientId", d.account.clone())],
        stat,
    }
}

/// Every query of a status run, with what it is for.
pub fn all_queries(pipelines: &[Names], domain: &DomainNames) -> Vec<(Owner, Key, Query)> {
    let mut out = Vec::new();
    for (i, n) in pipelines.iter().enumerate() {
        for key in Key::PIPELINE {
            out.push((Owner::Pipeline(i), key, pipeline_query(i, key, n)));
        }
    }
    for key in Key::DOMAIN {
        out.push((Owner::Domain, key, domain_query(key, domain)));
    }
    out
}

/// The window asked about: `[end - since, end)`, cut into `buckets` intervals of `period_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
    pub period_s: i64,
}

impl Window {
    /// CloudWatch periods are multiples of 60 s; about 30 intervals make the sparkline.
    pub fn new(end: i64, since_s: i64) -> Window {
        let since_s = since_s.max(60);
        let period_s = ((since_s / 30 + 59) / 60 * 60).max(60);
        let buckets = (since_s + period_s - 1) / period_s;
        Window { start: end - buckets * period_s, end, period_s }
    }

    pub fn buckets(&self) -> usize {
        ((self.end - self.start) / self.period_s) as usize
    }

    /// The interval a timestamp falls in, if inside the window.
    pub fn bucket(&self, t: i64) -> Option<usize> {
        (t >= self.start && t < self.end).then(|| ((t - self.start) / self.period_s) as usize)
    }
}

/// GetMetricData's answer: the (timestamp, value) points of each query id.
pub type Points = BTreeMap<String, Vec<(i64, f64)>>;

/// The answer folded per query: totals over the window and series per interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    totals: BTreeMap<(Owner, Key), Option<f64>>,
    series: BTreeMap<(Owner, Key), Vec<Option<f64>>>,
}

impl Folded {
    pub fn fold(queries: &[(Owner, Key, Query)], points: &Points, w: &Window) -> Folded {
        let mut f = Folded::default();
        for (owner, key, q) in queries {
            let pts = points.get(&q.id).map(Vec::as_slice).unwrap_or(&[]);
            let in_window: Vec<(i64, f64)> = pts.iter().copied().filter(|(t, _)| w.bucket(*t).is_some()).collect();
            f.totals.insert((*owner, *key), q.stat.fold(in_window.iter().map(|p| p.1)));
            let mut series = vec![None; w.buckets()];
            for (t, v) in in_window {
                let b = w.bucket(t).expect("filtered to the window");
                series[b] = q.stat.fold(series[b].into_iter().chain([v]));
            }
            f.series.insert((*owner, *key), series);
        }
        f
    }

    /// The window's value: `None` when CloudWatch has no datapoint.
    pub fn total(&self, owner: Owner, key: Key) -> Option<f64> {
        self.totals.get(&(owner, key)).copied().flatten()
    }

    pub fn series(&self, owner: Owner, key: Key) -> Vec<Option<f64>> {
        self.series.get(&(owner, key)).cloned().unwrap_or_default()
    }
}

/// `sum / count`, when there was at least one sample.
pub fn ratio(sum: Option<f64>, count: Option<f64>) -> Option<f64> {
    match (sum, count) {
        (Some(s), Some(c)) if c > 0.0 => Some(s / c),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names { stream: "S".into(), function: "F".into(), delivery: "D".into(), family: EngineFamily::OpenSearch }
    }

    #[test]
    fn queries_use_the_documented_names_and_valid_ids() {
        let d = DomainNames { domain: "dom".into(), account: "123456789012".into() };
        let qs = all_queries(&[names()], &d);
        assert_eq!(qs.len(), Key::PIPELINE.len() + Key::DOMAIN.len());
        for (_, _, q) in &qs {
            let mut chars = q.id.chars();
            assert!(chars.next().unwrap().is_ascii_lowercase(), "{}", q.id);
            assert!(chars.all(|c| c.is_ascii_alphanumeric() || c == '_'), "{}", q.id);
        }
        let find = |id: &str| qs.iter().find(|(_, _, q)| q.id == id).unwrap().2.clone();
        let q = find("p0_deliveredrecords");
        assert_eq!((q.namespace, q.metric.as_str()), ("AWS/Firehose", "DeliveryToAmazonOpenSearchService.Records"));
        let q = find("p0_iteratoragemax");
        assert_eq!((q.metric.as_str(), q.stat), ("GetRecords.IteratorAgeMilliseconds", Stat::Maximum));
        let q = find("d_clusterred");
        assert_eq!(q.dimensions, vec![("DomainName", "dom".to_string()), ("ClientId", "123456789012".to_string())]);
        let es = pipeline_query(0, Key::FreshnessMax, &Names { family: EngineFamily::Elasticsearch, ..names() });
        assert_eq!(es.metric, "DeliveryToElasticsearch.DataFreshness");
    }

    #[test]
    fn window_periods_are_minutes_and_about_thirty() {
        for (since, period, buckets) in
            [(3600, 120, 30), (600, 60, 10), (60, 60, 1), (86400, 2880, 30), (5400, 180, 30)]
        {
            let w = Window::new(1_000_000, since);
            assert_eq!((w.period_s, w.buckets()), (period, buckets), "since {since}");
            assert_eq!(w.period_s % 60, 0);
        }
    }

    #[test]
    fn folding_totals_series_and_ratios() {
        let w = Window { start: 0, end: 600, period_s: 60 };
        let qs = vec![
            (Owner::Pipeline(0), Key::IncomingRecords, pipeline_query(0, Key::IncomingRecords, &names())),
            (Owner::Pipeline(0), Key::DurationMax, pipeline_query(0, Key::DurationMax, &names())),
            (Owner::Pipeline(0), Key::Errors, pipeline_query(0, Key::Errors, &names())),
        ];
        let mut p = Points::new();
        p.insert("p0_incomingrecords".into(), vec![(0, 10.0), (70, 5.0), (130, 1.0), (700, 99.0)]);
        p.insert("p0_durationmax".into(), vec![(0, 3.0), (10, 9.0), (300, 4.0)]);
        let f = Folded::fold(&qs, &p, &w);
        assert_eq!(f.total(Owner::Pipeline(0), Key::IncomingRecords), Some(16.0)); // 700 is outside
        assert_eq!(f.total(Owner::Pipeline(0), Key::DurationMax), Some(9.0));
        assert_eq!(f.total(Owner::Pipeline(0), Key::Errors), None);
        let s = f.series(Owner::Pipeline(0), Key::IncomingRecords);
        assert_eq!(&s[..4], &[Some(10.0), Some(5.0), Some(1.0), None]);
        assert_eq!(ratio(Some(3.0), Some(4.0)), Some(0.75));
        assert_eq!(ratio(Some(0.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}
