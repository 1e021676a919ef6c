#!/usr/bin/env python3
"""Attributes each sample of `perf script -F comm,ip,sym` (with call chains) to a pipeline
stage by the frames on its stack; the first rule that matches wins (signing before
delivery, publish before stream). Used by scripts/profile-pipeline."""
import collections, re, signal, sys

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet when piped into head

RULES = [
    ("signing", [r"signing::Signer::sign\b", r"signing::\{impl#\d+\}::sign_once", r"rsaz_amm52|bn_sqrx8x|bn_mulx4x|extract_multiplier"]),
    ("publish", [r"topic::publish_in", r"topic::\{impl#\d+\}::publish_batch", r"publish_orders_explained", r"handlers::publish"]),
    ("stream", [r"stream::\{impl#\d+\}::read", r"stream::\{impl#\d+\}::checkpoint", r"pollers::run_stream_poller"]),
    ("store", [r"::put_new", r"store_orders_explained", r"pollers::process_batch", r"queue::\{impl#\d+\}::receive_batch", r"queue::\{impl#\d+\}::delete", r"note_receipts", r"pollers::run_store_poller", r"pollers::settle", r"handlers::store"]),
    ("delivery", [r"orderflow_embedded::delivery::", r"orderflow_embedded::fanout::", r"::due_for", r"::record_outcomes", r"deliveries::\{impl#\d+\}::record\b", r"::subscription_ids"]),
    ("ingest", [r"send_order", r"orderflow_http", r"orderflow_core::order::"]),
    ("writer commit", [r"db::commit_group", r"db::writer_loop"]),
    ("checkpointer", [r"db::checkpoint_loop"]),
    ("retention", [r"orderflow_embedded::retention"]),
]
compiled = [(name, [re.compile(p) for p in pats]) for name, pats in RULES]

def classify(comm, frames):
    text = "\n".join(frames)
    for name, pats in compiled:
        if any(p.search(text) for p in pats):
            return name
    if comm.startswith("orderflow-pipel"):
        if "hyper" in text or "reqwest" in text:
            return "delivery"
        return "pipeline other (runtime, allocator)"
    if comm.startswith("orderflow-write"):
        return "writer commit"
    if "hyper" in text or "axum" in text or "tower" in text:
        return "ingest"
    return "other (" + comm + ")"

counts = collections.Counter()
threads = collections.Counter()
comm, frames = None, []
def flush():
    if comm is not None:
        counts[classify(comm, frames)] += 1
        threads[re.sub(r"\d+$", "", comm)] += 1
for line in sys.stdin:
    if not line.strip():
        flush(); comm, frames = None, []; continue
    if not line.startswith((" ", "\t")):
        comm = line.split()[0]; frames = []
    else:
        frames.append(line.strip())
flush()
total = sum(counts.values())
print(f"samples: {total}")
for k, v in counts.most_common():
    print(f"{k:40s} {v:7d} {100*v/total:5.1f}%")
print("by thread:")
for k, v in threads.most_common(12):
    print(f"  {k:30s} {v:7d} {100*v/total:5.1f}%")
