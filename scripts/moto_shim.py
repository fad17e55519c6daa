#!/usr/bin/env python3
# Vendored from ../shared/reference/moto_opensearch_destination_shim.py (the project brief's
# reference material); used only for the local emulator, never for real AWS.
"""moto_server with a small monkeypatch: Firehose AmazonOpenSearchService destination.

moto 5.2.5 ignores
AmazonopensearchserviceDestinationConfiguration / ...Update, so a delivery stream
with an OpenSearch destination cannot be created at all.  This wrapper stores
such a destination exactly like moto stores an Elasticsearch one, under the key
"Amazonopensearchservice", so DescribeDeliveryStream returns
"AmazonopensearchserviceDestinationDescription".

Usage: python moto_opensearch_destination_shim.py -H 127.0.0.1 -p 5057
"""

import sys

from moto.core.responses import ActionResult, EmptyResult
from moto.firehose import models as fm
from moto.firehose import responses as fr

KEY = "Amazonopensearchservice"

_orig_create = fr.FirehoseResponse.create_delivery_stream
_orig_update = fr.FirehoseResponse.update_destination


def create_delivery_stream(self):
    aos = self._get_param("AmazonopensearchserviceDestinationConfiguration")
    if not aos:
        return _orig_create(self)
    name = self._get_param("DeliveryStreamName")
    be = self.firehose_backend
    arn = be.create_delivery_stream(
        self.region,
        name,
        self._get_param("DeliveryStreamType"),
        self._get_param("KinesisStreamSourceConfiguration"),
        self._get_param("DeliveryStreamEncryptionConfigurationInput"),
        None, None, None,
        aos,  # stored through the Elasticsearch code path ...
        None, None, None, None,
        self._get_param("Tags"),
    )
    dest = be.delivery_streams[name].destinations[0]
    dest[KEY] = dest.pop("Elasticsearch")  # ... then renamed
    return ActionResult({"DeliveryStreamARN": arn})


def update_destination(self):
    upd = self._get_param("AmazonopensearchserviceDestinationUpdate")
    if not upd:
        return _orig_update(self)
    be = self.firehose_backend
    name = self._get_param("DeliveryStreamName")
    ds = be.delivery_streams.get(name)
    renamed = []
    if ds is not None:
        for d in ds.destinations:
            if KEY in d:
                d["Elasticsearch"] = d.pop(KEY)
                renamed.append(d)
    try:
        be.update_destination(
            name,
            self._get_param("CurrentDeliveryStreamVersionId"),
            self._get_param("DestinationId"),
            None, None, self._get_param("S3BackupMode"), None,
            upd,
            None, None, None, None,
        )
    finally:
        for d in renamed:
            if "Elasticsearch" in d:
                d[KEY] = d.pop("Elasticsearch")
    return EmptyResult()


fr.FirehoseResponse.create_delivery_stream = create_delivery_stream
fr.FirehoseResponse.update_destination = update_destination

# pipectl addition: moto 5.2.5's Kinesis Shard.put_record is "not safe for concurrency" (its
# own comment): it numbers a record max(sequence)+1, so two PutRecords calls served at once on
# moto's threaded server can give two records the same number and one overwrites the other.
# Real Kinesis accepts concurrent writers, and the producer keeps several batches in flight,
# so the emulator serialises writes here instead of the producer being slowed down for it.
import threading

from moto.kinesis import models as km

_kinesis_write_lock = threading.Lock()
for _name in ("put_record", "put_records"):
    _orig = getattr(km.KinesisBackend, _name)

    def _locked(self, *args, _orig=_orig, **kwargs):
        with _kinesis_write_lock:
            return _orig(self, *args, **kwargs)

    setattr(km.KinesisBackend, _name, _locked)

# pipectl addition: moto 5.2.5's Shard.get_max_sequence_number / get_min_sequence_number build
# a list of every record's number on each call (`list(self.records.keys())[-1]`), and put_record
# calls it once per record, so PutRecords slows down as a shard fills (~3,200 rec/s when empty,
# ~570 rec/s after 50,000 records). The records dict is kept in insertion (= sequence) order, so
# its first and last keys are the same numbers in O(1). Real Kinesis does not slow down.
km.Shard.get_max_sequence_number = lambda self: next(reversed(self.records), 0) if self.records else 0
km.Shard.get_min_sequence_number = lambda self: next(iter(self.records), 0) if self.records else 0

if __name__ == "__main__":
    # pipectl addition: AWS-like behaviour (asynchronous states, conflicts, IAM propagation,
    # quotas, failures, foreign resources) behind PIPECTL_AWS_LIKE, plus always-on gap fixes
    # and the /_pipectl control endpoint; see scripts/aws_like.py.
    sys.dont_write_bytecode = True  # no scripts/__pycache__ in the work tree
    import aws_like

    aws_like.install()

    from moto.server import main

    sys.exit(main())
