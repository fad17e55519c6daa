"""De-aggregates Kinesis records with AWS's official KPL deaggregator (PyPI aws-kinesis-agg).

stdin: a JSON list of base64 record data, as read from the stream; stdout: a JSON list of the
base64 user records, in order. Used by tests/producer.rs to check the producer's aggregated
records against AWS's own reading of the format.
"""
import json
import sys

from aws_kinesis_agg.deaggregator import deaggregate_records

records = [
    {"kinesis": {"data": d, "partitionKey": "p", "sequenceNumber": str(i)}}
    for i, d in enumerate(json.load(sys.stdin))
]
print(json.dumps([r["kinesis"]["data"] for r in deaggregate_records(records)]))
