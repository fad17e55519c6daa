//! The Firehose data-transformation handler: one event in, one response out, every recordId
//! answered in order. Pure (the caller supplies the schema), shared by the Lambda `bootstrap`
//! and `pipectl invoke`, so what is tried locally is exactly what runs in Lambda.

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
};

use crate::schema::{Compiled, Schema, TypeError};

/// The environment variable that carries the pipeline's schema (compact JSON) to the Lambda.
/// Chosen over a file in the zip so one zip serves every pipeline and a schema change shows
/// in `plan` as an environment change; `validate` rejects a schema over Lambda's 4 KB limit.
pub const SCHEMA_ENV: &str = "PIPECTL_SCHEMA";

pub const RESULT_OK: &str = "Ok";
pub const RESULT_FAILED: &str = "ProcessingFailed";

/// A record that could not be typed: its position in the event, its id and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub position: usize,
    pub record_id: String,
    pub reason: TypeError,
}

impl std::fmt::Display for Failure {
    /// The one log line per failed record: position, id and reason, never the payload.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {} ({}) failed: {}", self.position, self.record_id, self.reason)
    }
}

/// Transforms every record of `event`. A record that cannot be typed is answered
/// `ProcessingFailed` with its original data (Firehose then routes it to the failed-documents
/// prefix) and reported in the returned failures; it never fails the invocation.
pub fn handle(schema: &Compiled, event: &KinesisFirehoseEvent) -> (KinesisFirehoseResponse, Vec<Failure>) {
    let mut failures = Vec::new();
    let mut response = KinesisFirehoseResponse::default();
    response.records.reserve(event.records.len());
    let mut out = Vec::with_capacity(512);
    for (position, record) in event.records.iter().enumerate() {
        let record_id = record.record_id.clone().unwrap_or_default();
        let mut answer = KinesisFirehoseResponseRecord::default();
        answer.record_id = Some(record_id.clone());
        match schema.write_document(&record.data.0, record.approximate_arrival_timestamp.0, &mut out) {
            Ok(()) => {
                answer.result = Some(RESULT_OK.to_string());
                answer.data.0 = out.clone();
            }
            Err(reason) => {
                answer.result = Some(RESULT_FAILED.to_string());
                answer.data.0 = record.data.0.clone();
                failures.push(Failure { position, record_id, reason });
            }
        }
        response.records.push(answer);
    }
    (response, failures)
}

/// Reads the schema from the Lambda environment value and prepares it.
pub fn schema_from_env(value: &str) -> Result<Compiled, serde_json::Error> {
    serde_json::from_str::<Schema>(value).map(|s| Compiled::new(&s))
}

/// Builds a Firehose event from raw wire records (used by `invoke --csv` and tests).
pub fn event_from_records(records: Vec<Vec<u8>>, arrival_ms: i64) -> KinesisFirehoseEvent {
    let arrival = chrono::DateTime::from_timestamp_millis(arrival_ms).unwrap_or_default();
    let mut event = KinesisFirehoseEvent::default();
    event.invocation_id = Some("pipectl-local".into());
    event.records = records
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = aws_lambda_events::event::firehose::KinesisFirehoseEventRecord::default();
            r.record_id = Some(format!("{i:020}"));
            r.data.0 = data;
            r.approximate_arrival_timestamp.0 = arrival;
            r
        })
        .collect();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::crime_schema;

    #[test]
    fn answers_every_record_in_order() {
        let s = Compiled::new(&crime_schema());
        let ev = event_from_records(
            vec![
                b"1/1/06 0:00|A|3|3C|1115|D|2404|38.5|-121.3".to_vec(),
                b"broken".to_vec(),
                b"1/1/06 0:00|\"B|C\"|4|3C|1115|D|2404|38.5|-121.3".to_vec(),
            ],
            1_136_073_600_000,
        );
        let (resp, failures) = handle(&s, &ev);
        let results: Vec<_> = resp.records.iter().map(|r| r.result.clone().unwrap()).collect();
        assert_eq!(results, ["Ok", "ProcessingFailed", "Ok"]);
        let ids: Vec<_> = resp.records.iter().map(|r| r.record_id.clone().unwrap()).collect();
        let want: Vec<_> = ev.records.iter().map(|r| r.record_id.clone().unwrap()).collect();
        assert_eq!(ids, want);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].position, 1);
        // The failed record keeps its original bytes.
        assert_eq!(resp.records[1].data.0, b"broken");
        let doc: serde_json::Value = serde_json::from_slice(&resp.records[2].data.0).unwrap();
        assert_eq!(doc["address"], "B|C");
        assert_eq!(doc["load_time"], "2006-01-01T00:00:00Z");
    }

    #[test]
    fn response_serialises_as_firehose_expects() {
        let s = Compiled::new(&crime_schema());
        let ev = event_from_records(vec![b"x".to_vec()], 0);
        let (resp, _) = handle(&s, &ev);
        let v = serde_json::to_value(&resp).unwrap();
        let r = &v["records"][0];
        assert_eq!(r["recordId"], "00000000000000000000");
        assert_eq!(r["result"], "ProcessingFailed");
        assert_eq!(r["data"], "eA==");
    }

    #[test]
    fn parses_a_real_firehose_event() {
        let json = r#"{"invocationId":"inv","deliveryStreamArn":"arn:aws:firehose:eu-west-1:1:deliverystream/f",
            "sourceKinesisStreamArn":"arn:aws:kinesis:eu-west-1:1:stream/s","region":"eu-west-1",
            "records":[{"recordId":"49546986683135544286507457936321625675700192471156785154",
            "approximateArrivalTimestamp":1495072949453,
            "kinesisRecordMetadata":{"sequenceNumber":"1","subsequenceNumber":0,"partitionKey":"k","shardId":"shardId-000000000000","approximateArrivalTimestamp":1495072949453},
            "data":"MS8xLzA2IDA6MDB8QXwzfDNDfDExMTV8RHwyNDA0fDM4LjV8LTEyMS4z"}]}"#;
        let ev: KinesisFirehoseEvent = serde_json::from_str(json).unwrap();
        let (resp, failures) = handle(&Compiled::new(&crime_schema()), &ev);
        assert!(failures.is_empty(), "{failures:?}");
        let doc: serde_json::Value = serde_json::from_slice(&resp.records[0].data.0).unwrap();
        assert_eq!(doc["load_time"], "2017-05-18T02:02:29.453Z");
    }
}
