#!/usr/bin/env node
// A Node peer of dylive for the cost bench: one room into a Redis stream the way the popular
// Node connector (TikTok-Live-Connector, same ByteDance push stack) works, then one JSON line.
//
//  - a connection class (an EventEmitter): HTTP pre-flight with fetch (ttwid from GET /, room_id
//    from the live page), the WebSocket query of PROTOCOL §2.1 (signature empty: run the sim room
//    with sig=off), `ws` for the socket, the binary heartbeat `3a 02 68 62` every 10 s, an ack for
//    every need_ack frame;
//  - `protobufjs` loading schema/webcast.proto at run time; async gunzip (zlib on libuv's thread
//    pool) in a per-connection promise chain so frames stay in arrival order; each Message decoded
//    by method for the main types (others: raw, base64) and emitted as one event object in the
//    CONTRACT §4 shape;
//  - the application side: dedupe by msg_id in memory, one `ioredis` pipeline per frame of
//    `XADD P:{live_id}:events MAXLEN ~ N * type msg_id ts_ms json`.
//
// Stops at WebcastControlMessage status 3 (live ended), after --idle-exit seconds without a frame,
// or on SIGINT/SIGTERM; prints one JSON line on stdout.
//
// Install: `npm ci` in this directory (ws, protobufjs, ioredis pinned in package-lock.json).
'use strict';
const path = require('path');
const zlib = require('zlib');
const util = require('util');
const { EventEmitter } = require('events');
const WebSocket = require('ws');
const protobuf = require('protobufjs');
const IORedis = require('ioredis');

const Redis = IORedis.Redis || IORedis.default || IORedis;
const gunzip = util.promisify(zlib.gunzip);
const PROTO = path.join(__dirname, '..', '..', '..', 'schema', 'webcast.proto');
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
  'Chrome/140.0.0.0 Safari/537.36';
const HEARTBEAT = Buffer.from([0x3a, 0x02, 0x68, 0x62]); // PushFrame{payload_type: "hb"}

function parseArgs(argv) {
  const a = { redis: 'redis://127.0.0.1:6379/0', prefix: 'dylive', maxlen: 100000, heartbeatS: 10, idleExit: 0,
    waitGo: false, linger: false };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i];
    const v = () => argv[++i];
    if (k === '--http') a.http = v();
    else if (k === '--ws') a.ws = v();
    else if (k === '--live-id') a.liveId = v();
    else if (k === '--redis') a.redis = v();
    else if (k === '--prefix') a.prefix = v();
    else if (k === '--maxlen') a.maxlen = Number(v());
    else if (k === '--heartbeat-s') a.heartbeatS = Number(v());
    else if (k === '--idle-exit') a.idleExit = Number(v());
    else if (k === '--wait-go') a.waitGo = true;
    else if (k === '--linger') a.linger = true;
    else if (k === '-h' || k === '--help') {
      console.log('usage: node_peer.js --http URL --ws URL --live-id ID [--redis URL] [--prefix P] [--maxlen N] ' +
        '[--heartbeat-s S] [--idle-exit S] [--wait-go] [--linger]');
      process.exit(0);
    } else { console.error('node_peer: unknown option ' + k); process.exit(2); }
  }
  if (!a.http || !a.ws || !a.liveId) { console.error('node_peer: --http, --ws and --live-id are required'); process.exit(2); }
  return a;
}

const str = (x) => (x == null ? '' : typeof x === 'string' ? x : x.toString());
const num = (x) => (x == null ? 0 : typeof x === 'number' ? x : x.toNumber());
const isZero = (x) => x == null || (typeof x === 'number' ? x === 0 : x.isZero());

class WebcastConnection extends EventEmitter {
  constructor(opts, root) {
    super();
    this.opts = opts;
    this.T = {};
    for (const n of ['PushFrame', 'Response', 'ChatMessage', 'GiftMessage', 'LikeMessage', 'MemberMessage',
      'SocialMessage', 'RoomUserSeqMessage', 'EmojiChatMessage', 'RoomStatsMessage', 'RoomRankMessage',
      'FansclubMessage', 'ControlMessage']) this.T[n] = root.lookupType('webcast.' + n);
    this.roomId = '0';
    this.chain = Promise.resolve();
    this.stats = { frames: 0, frame_bytes: 0, messages: 0, acks: 0, heartbeats: 0, raw: 0, bad_frames: 0 };
    this.gifts = new Map();
    this.ended = false;
  }

  async resolve() {
    const r1 = await fetch(this.opts.http + '/', { headers: { 'User-Agent': UA } });
    await r1.arrayBuffer();
    let ttwid = '';
    for (const c of r1.headers.getSetCookie()) {
      const m = /^\s*ttwid=([^;]*)/.exec(c);
      if (m) ttwid = m[1];
    }
    const r2 = await fetch(`${this.opts.http}/${this.opts.liveId}`, { headers: { 'User-Agent': UA, Cookie: `ttwid=${ttwid}` } });
    const html = await r2.text();
    const m = /roomId\\":\\"(\d+)\\"/.exec(html);
    if (!m) throw new Error('no roomId on the live page');
    this.roomId = m[1];
    return ttwid;
  }

  wsUrl() {
    const uid = String(7300000000000000000n + BigInt(Math.floor(Math.random() * 1e15)));
    const now = Date.now();
    const q = [['app_name', 'douyin_web'], ['version_code', '180800'], ['webcast_sdk_version', '1.0.15'],
      ['update_version_code', '1.0.15'], ['compress', 'gzip'], ['device_platform', 'web'], ['cookie_enabled', 'true'],
      ['screen_width', '1920'], ['screen_height', '1080'], ['browser_language', 'zh-CN'], ['browser_platform', 'Win32'],
      ['browser_name', 'Mozilla'], ['browser_version', UA.replace('Mozilla/', '').replace(/ /g, '%20')],
      ['browser_online', 'true'], ['tz_name', 'Asia/Shanghai'], ['host', 'https://live.douyin.com'], ['aid', '6383'],
      ['live_id', '1'], ['did_rule', '3'], ['endpoint', 'live_pc'], ['support_wrds', '1'], ['user_unique_id', uid],
      ['im_path', '/webcast/im/fetch/'], ['identity', 'audience'], ['need_persist_msg_count', '15'],
      ['insert_task_id', ''], ['live_reason', ''], ['room_id', this.roomId], ['heartbeatDuration', '0'],
      ['signature', '']];
    return this.opts.ws.replace(/\/$/, '') + '/webcast/im/push/v2/?' + q.map(([k, v]) => `${k}=${v}`).join('&');
  }

  async connect() {
    const ttwid = await this.resolve();
    const ws = new WebSocket(this.wsUrl(), {
      headers: { 'User-Agent': UA, Cookie: `ttwid=${ttwid}`, Origin: 'https://live.douyin.com' },
      perMessageDeflate: false,
    });
    this.ws = ws;
    ws.on('open', () => {
      const beat = () => { if (ws.readyState === WebSocket.OPEN) { ws.send(HEARTBEAT); this.stats.heartbeats++; } };
      beat();
      this.hbTimer = setInterval(beat, this.opts.heartbeatS * 1000);
      this.emit('connected');
    });
    ws.on('message', (data) => {
      const recvMs = Date.now();
      this.stats.frames++;
      this.stats.frame_bytes += data.length;
      // frames are gunzipped concurrently on the thread pool (util.promisify(zlib.unzip), as
      // TikTok-Live-Connector does) but handled in arrival order through one promise chain
      const inflating = this.inflate(data);
      this.chain = this.chain.then(() => inflating).then((fr) => this.onFrame(fr, recvMs)).catch((e) => this.emit('error', e));
    });
    ws.on('close', () => {
      clearInterval(this.hbTimer);
      this.chain.then(() => this.emit('disconnected'));
    });
    ws.on('error', (e) => this.emit('error', e));
  }

  disconnect() { if (this.ws) this.ws.close(); }

  async inflate(data) {
    try {
      const frame = this.T.PushFrame.decode(data);
      if (frame.payload_type !== 'msg') return null;
      let payload = frame.payload;
      if (frame.headers.some((h) => h.key === 'compress_type' && h.value === 'gzip')) payload = await gunzip(payload);
      return { frame, payload };
    } catch (e) {
      this.stats.bad_frames++;
      return null;
    }
  }

  onFrame(fr, recvMs) {
    if (!fr) return;
    const T = this.T;
    const frame = fr.frame;
    let resp;
    try {
      resp = T.Response.decode(fr.payload);
    } catch (e) {
      this.stats.bad_frames++;
      return;
    }
    if (resp.need_ack) {
      const ack = T.PushFrame.encode({ log_id: frame.log_id, payload_type: 'ack', payload: Buffer.from(resp.internal_ext, 'utf8') }).finish();
      this.ws.send(ack);
      this.stats.acks++;
    }
    const events = [];
    for (const msg of resp.messages) {
      this.stats.messages++;
      events.push(this.event(msg, resp, recvMs));
    }
    this.emit('frame', events);
    if (this.ended) { this.emit('streamEnd'); this.disconnect(); }
  }

  user(u) {
    u = u || {};
    const id = !isZero(u.id) ? str(u.id) : (u.id_str || '0');
    const nick = u.nickname || '';
    return { id, nickname: nick, sec_uid: u.sec_uid || '', display_id: u.display_id || '', gender: u.gender || 0,
      pay_level: u.pay_grade ? num(u.pay_grade.level) : 0,
      fans_club_level: u.fans_club && u.fans_club.data ? num(u.fans_club.data.level) : 0,
      avatar: u.avatar_thumb && u.avatar_thumb.url_list.length ? u.avatar_thumb.url_list[0] : '',
      anonymous: nick.endsWith('***') && (id === '0' || id === '111111') };
  }

  event(msg, resp, recvMs) {
    const T = this.T;
    const ev = { v: 1, type: 'raw', live_id: this.opts.liveId, room_id: this.roomId, msg_id: '0', ts_ms: 0,
      recv_ms: recvMs, method: msg.method };
    let m = null;
    let tsFallback = 0;
    try {
      switch (msg.method) {
        case 'WebcastChatMessage':
          m = T.ChatMessage.decode(msg.payload);
          Object.assign(ev, { type: 'chat', user: this.user(m.user), content: m.content });
          tsFallback = num(m.event_time) * 1000;
          break;
        case 'WebcastGiftMessage': {
          m = T.GiftMessage.decode(msg.payload);
          const g = m.gift || {};
          const gid = !isZero(m.gift_id) ? str(m.gift_id) : str(g.id || 0);
          const combo = !!g.combo || num(m.send_type) === 4;
          const rc = num(m.repeat_count), cc = num(m.combo_count), gc = num(m.group_count);
          let delta;
          if (combo) {
            const running = Math.max(rc, cc) || 1;
            const k = `${m.user ? this.user(m.user).id : '0'}|${gid}|${str(m.group_id)}`;
            const last = this.gifts.get(k) || 0;
            delta = Math.max(running - last, 0);
            this.gifts.set(k, Math.max(running, last));
          } else delta = rc || gc || 1;
          Object.assign(ev, { type: 'gift', user: this.user(m.user), gift: { id: Number(gid), name: g.name || '',
            diamonds: g.diamond_count || 0, repeat_count: rc, combo_count: cc, group_count: gc,
            repeat_end: m.repeat_end || 0, group_id: str(m.group_id), delta, combo } });
          if (m.to_user) ev.to_user = this.user(m.to_user);
          break;
        }
        case 'WebcastLikeMessage':
          m = T.LikeMessage.decode(msg.payload);
          Object.assign(ev, { type: 'like', user: this.user(m.user), count: num(m.count), total: num(m.total) });
          break;
        case 'WebcastMemberMessage':
          m = T.MemberMessage.decode(msg.payload);
          Object.assign(ev, { type: 'member', user: this.user(m.user), member_count: num(m.member_count), action: num(m.action) });
          break;
        case 'WebcastSocialMessage': {
          m = T.SocialMessage.decode(msg.payload);
          const action = num(m.action);
          Object.assign(ev, { type: action === 1 ? 'follow' : action === 3 ? 'share' : 'social', user: this.user(m.user),
            action, follow_count: num(m.follow_count) });
          break;
        }
        case 'WebcastRoomUserSeqMessage':
          m = T.RoomUserSeqMessage.decode(msg.payload);
          Object.assign(ev, { type: 'viewers', online: num(m.total), total_viewers: num(m.total_user),
            top: m.ranks.map((c) => ({ rank: num(c.rank), score: num(c.score), user: this.user(c.user) })) });
          break;
        case 'WebcastEmojiChatMessage':
          m = T.EmojiChatMessage.decode(msg.payload);
          Object.assign(ev, { type: 'emoji_chat', user: this.user(m.user), emoji_id: num(m.emoji_id), content: m.default_content });
          break;
        case 'WebcastRoomStatsMessage':
          m = T.RoomStatsMessage.decode(msg.payload);
          Object.assign(ev, { type: 'room_stats', display: m.display_long, value: num(m.display_value) });
          break;
        case 'WebcastRoomRankMessage':
          m = T.RoomRankMessage.decode(msg.payload);
          Object.assign(ev, { type: 'rank', ranks: m.ranks.map((r) => ({ user: this.user(r.user), score_str: r.score_str })) });
          break;
        case 'WebcastFansclubMessage':
          m = T.FansclubMessage.decode(msg.payload);
          Object.assign(ev, { type: 'fansclub', user: this.user(m.user), action: m.type, content: m.content });
          break;
        case 'WebcastControlMessage':
          m = T.ControlMessage.decode(msg.payload);
          Object.assign(ev, { type: 'control', status: num(m.status) });
          if (num(m.status) === 3) this.ended = true;
          break;
        default:
          break;
      }
    } catch (e) {
      m = null;
      ev.type = 'raw';
    }
    let common = null;
    if (m) common = m.common;
    else {
      this.stats.raw++;
      ev.payload_b64 = Buffer.from(msg.payload).toString('base64');
      try { common = T.ChatMessage.decode(msg.payload).common; } catch (e) { common = null; }
    }
    ev.msg_id = common && !isZero(common.msg_id) ? str(common.msg_id) : str(msg.msg_id);
    const ct = common ? num(common.create_time) : 0;
    ev.ts_ms = ct || tsFallback || num(resp.now) || recvMs;
    return ev;
  }
}

async function main() {
  const a = parseArgs(process.argv);
  const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
  const redis = new Redis(a.redis, { enableAutoPipelining: false });
  await redis.ping();
  const key = `${a.prefix}:{${a.liveId}}:events`;
  const seen = new Set();
  const out = { events: 0, duplicates: 0, json_bytes: 0, redis_errors: 0 };
  const pending = new Set();
  let tFirst = null, tLast = null, error = null;

  if (a.waitGo) {
    process.stdout.write('ready\n');
    await new Promise((res) => process.stdin.once('data', res));
    process.stdin.pause();
  }
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const conn = new WebcastConnection(a, root);
  const done = new Promise((resolve) => {
    conn.on('disconnected', resolve);
    const stop = () => { error = error || 'interrupted'; conn.disconnect(); setTimeout(resolve, 2000).unref(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  conn.on('error', (e) => { if (!conn.ended) error = String(e && e.message || e); });
  conn.on('frame', (events) => {
    const now = process.hrtime.bigint();
    if (tFirst === null) tFirst = now;
    tLast = now;
    const p = redis.pipeline();
    let n = 0;
    for (const ev of events) {
      if (seen.has(ev.msg_id)) { out.duplicates++; continue; }
      seen.add(ev.msg_id);
      const js = JSON.stringify(ev);
      out.json_bytes += Buffer.byteLength(js);
      p.xadd(key, 'MAXLEN', '~', a.maxlen, '*', 'type', ev.type, 'msg_id', ev.msg_id, 'ts_ms', ev.ts_ms, 'json', js);
      n++;
    }
    if (!n) return;
    const pr = p.exec().then((res) => {
      for (const [err] of res) if (err) out.redis_errors++;
      out.events += n;
    }, () => { out.redis_errors += n; });
    pending.add(pr);
    pr.finally(() => pending.delete(pr));
  });
  let idleTimer = null;
  if (a.idleExit > 0) {
    idleTimer = setInterval(() => {
      const last = tLast === null ? t0 : tLast;
      if (Number(process.hrtime.bigint() - last) / 1e9 > a.idleExit) conn.disconnect();
    }, 200);
  }
  try {
    await conn.connect();
    await done;
  } catch (e) {
    error = String(e && e.message || e);
  }
  if (idleTimer) clearInterval(idleTimer);
  await Promise.all([...pending]);
  const cpu = process.cpuUsage(cpu0);
  const ru = process.resourceUsage();
  const res = { peer: 'node', live_id: a.liveId, room_id: conn.roomId, ended: conn.ended, error, ...conn.stats, ...out,
    wall_s: Number(process.hrtime.bigint() - t0) / 1e9,
    active_s: tFirst === null ? 0 : Number(tLast - tFirst) / 1e9,
    cpu_s: (cpu.user + cpu.system) / 1e6, maxrss_kb: ru.maxRSS, node: process.version };
  process.stdout.write(JSON.stringify(res) + '\n');
  await redis.quit();
  if (a.linger) {
    process.stdin.resume();
    await new Promise((r) => { process.stdin.on('end', r); process.stdin.on('close', r); });
  }
  process.exit(error ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
