"""The end-to-end harness's peer pipeline: the hourly windowed sum, in Quix Streams.

Run by benches/e2e.rs from a virtual environment it creates (quixstreams pinned in
requirements.txt); the kstreams pipeline it is compared with is `hourly_sum` in e2e.rs:

    order events (key: customer id, value: {"order": n, "amount": cents})
      -> amount -> tumbling 1 h windows, no grace -> sum -> final results only,
         windows closed by each partition's stream time
      -> output (key: customer id, value: {"start": ms, "end": ms, "value": sum})

Usage: hourly_sum.py BOOTSTRAP INPUT OUTPUT GROUP STATE_DIR COMMIT_INTERVAL_SECONDS [LINGER_MS]

With LINGER_MS, the producer's `linger.ms` (librdkafka's default otherwise, 5 ms); Quix
Streams' own producer settings (`enable.idempotence`) stay.
"""

import sys
from datetime import timedelta

from quixstreams import Application


def main() -> None:
    bootstrap, input_topic, output_topic, group, state_dir, commit = sys.argv[1:7]
    producer_extra_config = {}
    if len(sys.argv) > 7:
        producer_extra_config["linger.ms"] = int(sys.argv[7])
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        commit_interval=float(commit),
        loglevel="WARNING",
        producer_extra_config=producer_extra_config,
    )
    orders = app.topic(input_topic, key_deserializer="str", value_deserializer="json")
    sums = app.topic(output_topic, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(orders)
    sdf = sdf.apply(lambda order: order["amount"])
    sdf = (
        sdf.tumbling_window(duration_ms=timedelta(hours=1), grace_ms=0)
        .sum()
        .final(closing_strategy="partition")
    )
    sdf.to_topic(sums)
    app.run()


if __name__ == "__main__":
    main()
