"""De-aggregates Kinesis records with AWS's official KPL deaggregator (PyPI aws-kinesis-agg).

stdin: a JSON list of base64 record data, as read from the stream; stdout: a JSON list of the
base64 user records, in order. Used by tests/producer.rs to check the producer's aggregated
records against AWS's own reading of the format.
"""
import json
import sys

from aws_kinesis_agg.deaggregator import deaggregate_records

records = [
    {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "data": d,
            "partitionKey": "p",
            "sequenceNumber": str(i),
            "approximateArrivalTimestamp": 0,
        }
    }
    for i, d in enumerate(json.load(sys.stdin))
]

def b64(data):
    # De-aggregated user records carry base64 text, as Lambda's Kinesis events do.
    return data.decode() if isinstance(data, bytes) else data


users = deaggregate_records(records)
if len(users) < len(records):
    sys.exit("aws-kinesis-agg returned fewer records than it was given")
print(json.dumps([b64(r["kinesis"]["data"]) for r in users]))
