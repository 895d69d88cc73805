/* dl_limits — every limit of the worker's I/O side in one place, each with its reason (OpenBSD
 * httpd's httpd.h). The decoder's limits are dl_decode_limits (connector/pure/dl_decode.h); the
 * write path's record limits are in connector/core/dl_cmd.h; the configurable ones are options
 * (connector/io/dl_config.c) with bounds. */
#ifndef DL_LIMITS_H
#define DL_LIMITS_H

/* ---- Redis connections (dl_rconn, dl_redis) ---- */
/* Commands waiting for replies on one connection: the outbox's memory tier is the real bound;
 * this stops a bug from queueing callbacks without end. */
#define DL_RCONN_PENDING_MAX (1u << 20)
/* One argv-built command (pool commands, lease scripts): small by construction. */
#define DL_RCONN_ARGV_MAX (1u << 20)
#define DL_RCONN_ARGV_KEEP (64u << 10) /* dl_rconn_argv keeps its encoding buffer up to this */
/* --pool-keep-ms: the heap is trimmed (every arena walked, its pages given back) only when a decay
 * freed at least this much: a busy worker's few stray objects a period are not worth the walk. */
#define DL_POOL_TRIM_BYTES (1u << 20)
/* How often each connection checks its oldest command's deadline. */
#define DL_RCONN_TICK_MS 250
/* Direct reads of replies (plain TCP/unix): the stack buffer of one recv, and at most this many
 * recvs per wake-up of one connection. */
#define DL_RCONN_READ_BYTES (16u * 1024)
#define DL_RCONN_READS_PER_WAKE 8
/* hiredis's reader keeps its buffer between replies up to this (hiredis frees a larger one once
 * it is empty, and grows it again for the next big reply) */
#define DL_RCONN_READER_KEEP_BYTES (64u * 1024)
/* A command without a reply for this long means Redis is gone (a failover, a partition); the
 * connection is dropped and its commands re-sent on a new one. Longer than Redis's slowest
 * normal command (a big XREVRANGE at takeover) by far. */
#define DL_REDIS_COMMAND_TIMEOUT_MS 10000
#define DL_REDIS_CONNECT_TIMEOUT_MS 5000
/* TCP keepalive on idle Redis connections: a dead peer is noticed within ~1 min. */
#define DL_REDIS_KEEPALIVE_IDLE_S 30
#define DL_REDIS_KEEPALIVE_INTVL_S 10
#define DL_REDIS_KEEPALIVE_CNT 3
/* Reconnects: 1 s doubling to 30 s with jitter; while Redis stays away one summary line a
 * minute instead of one per attempt. */
#define DL_REDIS_RETRY_MS 1000
#define DL_REDIS_RETRY_MAX_MS 30000
#define DL_REDIS_DOWN_SUMMARY_MS 60000
/* After an error reply (OOM, READONLY…): 1 s doubling to 8 s before the next probe. */
#define DL_REDIS_BACKOFF_MS 1000
#define DL_REDIS_BACKOFF_MAX_MS 8000
/* A Cluster's primaries we track at most (slot map entries are one byte). */
#define DL_REDIS_NODES_MAX 128
/* Sentinel/Cluster: after a lost connection the topology is asked again every ~300 ms for the
 * first 30 s (a failover takes a few seconds), then with the growing pause. */
#define DL_FAILOVER_RETRY_MS 300
#define DL_FAILOVER_FAST_MS 30000
/* MOVED/READONLY trigger a fresh topology at most this often (a migration sends many MOVED). */
#define DL_CLUSTER_REFRESH_MIN_MS 1000
/* --redis-wait-replicas: each WAIT waits this long for the replicas; if fewer acknowledged, the
 * writes stay pending and the WAIT is asked again. */
#define DL_WAIT_TIMEOUT_MS 1000
/* BLMOVE blocks this long per call, so a claim loop notices drains and capacity changes. */
#define DL_CLAIM_BLOCK_S 1

/* ---- the write path (dl_room, dl_redis) ---- */
/* Commands in memory before the spool takes over (with --buffer-max-bytes). Past this, frames
 * stop being taken from ingest: back-pressure instead of memory growth. */
#define DL_OUTBOX_MAX 4096
/* Frames are taken from ingest while the spool has this many --max-frame-bytes left (a frame's
 * events as JSON are at most a few times its bytes). */
#define DL_SPOOL_HEADROOM 4
/* Events per room write, at most (with --batch-max), and bytes: one script call should never
 * stall Redis for long. */
#define DL_BATCH_BYTES_MAX (8u << 20)
/* Room writes ready at once share one room.lua call (issue 11: Redis pays a call, its argument
 * table and a network read once for many rooms): at most this many writes and bytes per call (a
 * lone write may be bigger, up to DL_BATCH_BYTES_MAX). */
#define DL_WRITE_GROUP_CMDS 256
#define DL_WRITE_GROUP_BYTES (1u << 20)
/* Finished call records kept for the next calls (no malloc per call): groups of room writes
 * (2 KiB each) per writer, and reply thunks per Redis client. */
#define DL_WRITER_SPARE_GROUPS 16
/* Bytes sent to Redis and not answered yet, at most (then one more call): more in flight would
 * not make Redis faster, only hold every write twice (outbox and socket buffers). */
#define DL_WRITER_INFLIGHT_BYTES (2u << 20)
#define DL_REDIS_SPARE_THUNKS 256
/* A room's stream is trimmed (XTRIM MAXLEN ~, MINID ~) by one write in this many events. */
#define DL_TRIM_EVERY 100
/* Keys + arguments of one script call made with dl_redis_script (grouped renewals: 3 per room). */
#define DL_SCRIPT_ARGS_MAX 1024
/* Frames taken from the ingest queue per wake-up (keeps the loop responsive). */
#define DL_DRAIN_BATCH 256
/* --flush-max-ms: a room whose frames come less than this many lingers apart is fast (the long
 * linger would hold its frames back by more than a tenth of their interval), and the short linger
 * (--flush-ms) stays for this long after its last fast frame. */
#define DL_FAST_FRAME_LINGERS 10
#define DL_FAST_HOLD_MS 2000
/* P:rooms is trimmed to about this many lifecycle entries. */
#define DL_ROOMS_STREAM_MAXLEN 100000

/* ---- ownership (dl_lease, dl_claims) ---- */
/* Liveness (DESIGN §3): a worker refreshes its registry key and its rooms' leases every
 * --poll-ms; a lease outlives two missed refreshes, and the worker key outlives the lease, so by
 * the time a dead worker's rooms are requeued their leases have expired and the next owner takes
 * them at once. */
#define DL_LEASE_MS 3500
#define DL_WORKER_TTL_MS 4500
/* How often a worker looks for dead workers' claims to requeue. */
#define DL_RECONCILE_MS 1000
/* Retry period while a dead worker's lease still blocks a claimed room. */
#define DL_ACQUIRE_RETRY_MS 250

/* ---- rooms (dl_room) ---- */
/* A room whose resolution failed is retried 2 s doubling to 60 s. */
#define DL_RESOLVE_RETRY_MS 2000
#define DL_RESOLVE_RETRY_MAX_MS 60000
/* After this many refused handshakes in a row the room is resolved again with a fresh ttwid
 * and, unless the user gave cookies (a logged-in session should keep its browser), another UA. */
#define DL_REFRESH_AFTER_REFUSALS 2
/* Status writes about bad frames: one a second per room at most (hostile input must not
 * flood Redis); log lines about them: 5 a second per worker. */
#define DL_BAD_FRAME_STATUS_MS 1000
#define DL_BAD_FRAME_LOGS_PER_S 5
/* Silent risk control (PROTOCOL §9.6, CONTRACT §7): after this many silent connections in a row
 * (each re-resolved at once with a fresh ttwid and user_unique_id) the room is in "error"
 * ("risk control: …") and waits a growing pause before the next identity, 10 s doubling to
 * 10 min (a dl_backoff: jittered to between half and all of it), so a banned egress address is
 * not hammered. */
#define DL_SILENT_RUNS_MAX 3
#define DL_RISK_PAUSE_MS 10000
#define DL_RISK_PAUSE_MAX_MS 600000
/* ±this percent on --watch-ended checks: rooms checked together drift apart. */
#define DL_JITTER_PCT 20
/* Combo streaks carried over from the stream's tail when a room is taken (the decoder tracks at
 * most 4096 per room anyway). */
#define DL_TAIL_GIFTS_MAX 4096
/* Rooms a worker can hold is --max-rooms (≤ 100000); live_ids are at most 63 bytes. */

/* NOSCRIPT: a pipeline of hundreds of EVALSHA to a flushed node comes back as as many NOSCRIPT
 * replies; one reload per node serves them all (it is queued ahead of their re-sends), so a node
 * loads the scripts again at most this often. */
#define DL_SCRIPT_RELOAD_MIN_MS 1000

/* ---- the admin server (dl_admin) ----
 * It serves three tiny GET endpoints to a scraper and a kubelet; everything else is refused
 * early so that no client can grow the worker or starve it of descriptors. */
#define DL_ADMIN_CONNS_MAX 64          /* connections at once; past it accepting pauses */
#define DL_ADMIN_HEADER_MAX 8192       /* request line + headers */
#define DL_ADMIN_READ_TIMEOUT_MS 5000  /* a whole request must arrive within this */
#define DL_ADMIN_WRITE_TIMEOUT_MS 10000
#define DL_ADMIN_ACCEPT_PAUSE_MS 1000  /* out of descriptors: stop accepting this long, never spin */
#define DL_ADMIN_BODY_MAX (4u << 20)   /* the largest /metrics page we build */

/* ---- drain ---- */
/* Drain must end within CONTRACT's 10 s; we give ourselves 8. */
#define DL_DRAIN_DEADLINE_MS 8000

#endif
