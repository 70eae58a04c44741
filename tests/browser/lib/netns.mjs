// A network namespace for a receiving Chromium on a shaped link (simulcast-e2e.mjs), as the
// issue's done-when asks: a veth pair, HOST 10.213.0.1/30 <-> NS 10.213.0.2/30, the namespace's
// end inside it. Shaping is on the router -> receiver direction only:
//   - rate: `tc qdisc ... root tbf` on the HOST end's egress (the router's packets to the
//     namespace leave the host through it);
//   - loss: an nftables table INSIDE the namespace, input hook, `numgen random mod 100 < N drop`
//     on UDP from the router's port (this kernel has no netem). Dropping on the receiver's input
//     keeps the router's sendmsg from seeing EPERM; the table goes with the namespace.
// Needs root, ip, tc, nft.
//
// CLI (tuning/scripts/browser-e2e.sh, E2E_TEST=simulcast, creates the namespace BEFORE starting
// the router: a router listening on 0.0.0.0 lists its interfaces' addresses as ICE host candidates
// when it starts, so the veth's host address must exist by then):
//   node tests/browser/lib/netns.mjs up|down|status
// Environment: CORECAST_NETNS (namespace, default corecast_sim), CORECAST_NETNS_PREFIX (default
// 10.213.0: .1 host, .2 namespace), CORECAST_NETNS_VETH (host end, default ccsim0; the namespace's
// end is the same name with 1 for its last character... ccsim1).
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const run = (cmd, args, input) => spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 10000 });

export function netnsConfig(env = process.env) {
  const name = env.CORECAST_NETNS || 'corecast_sim';
  const prefix = env.CORECAST_NETNS_PREFIX || '10.213.0';
  const hostIf = env.CORECAST_NETNS_VETH || 'ccsim0';
  return { name, hostIf, nsIf: hostIf.replace(/.$/, '1'), hostAddr: `${prefix}.1`, nsAddr: `${prefix}.2` };
}

// Why the namespace cannot be made here, or null.
export function netnsProblem() {
  if (process.getuid && process.getuid() !== 0) return 'needs root (ip netns, tc, nft)';
  for (const [cmd, args] of [['ip', ['-V']], ['tc', ['-V']], ['nft', ['--version']]]) {
    const r = run(cmd, args);
    if (r.error || r.status !== 0) return `no ${cmd} (apt-get install iproute2 nftables)`;
  }
  return null;
}

export class Netns {
  constructor(cfg = netnsConfig()) { Object.assign(this, cfg); this.table = 'corecast_sim_loss'; }

  exists() { return (run('ip', ['netns', 'list']).stdout || '').split('\n').some((l) => l.split(/\s+/)[0] === this.name); }
  hostUp() { return run('ip', ['-br', 'addr', 'show', 'dev', this.hostIf]).stdout?.includes(`${this.hostAddr}/`) ?? false; }

  // Creates the namespace, the veth pair, addresses and routes (a leftover of a killed run is
  // removed first). Throws with the failing command's message.
  up() {
    this.down();
    const steps = [
      ['ip', ['netns', 'add', this.name]],
      ['ip', ['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf]],
      ['ip', ['link', 'set', this.nsIf, 'netns', this.name]],
      ['ip', ['addr', 'add', `${this.hostAddr}/30`, 'dev', this.hostIf]],
      ['ip', ['link', 'set', this.hostIf, 'up']],
      ['ip', ['-n', this.name, 'addr', 'add', `${this.nsAddr}/30`, 'dev', this.nsIf]],
      ['ip', ['-n', this.name, 'link', 'set', this.nsIf, 'up']],
      ['ip', ['-n', this.name, 'link', 'set', 'lo', 'up']],
    ];
    for (const [cmd, args] of steps) {
      const r = run(cmd, args);
      if (r.status !== 0) { const msg = `${cmd} ${args.join(' ')}: ${(r.stderr || r.error || '').toString().trim()}`; this.down(); throw new Error(msg); }
    }
    // The veth's offloads would hand tbf 64 KB GSO lumps: off, so the shaper sees datagrams.
    run('ethtool', ['-K', this.hostIf, 'tso', 'off', 'gso', 'off', 'gro', 'off']);
    return this;
  }

  // Deletes the namespace (its end of the veth, its nft table go with it) and the host end (and
  // its qdisc). Never throws; idempotent.
  down() {
    run('ip', ['netns', 'del', this.name]);
    run('ip', ['link', 'del', this.hostIf]);
  }

  // Router -> namespace: `rateKbit` (0: no cap) through tbf on the host end, `lossPct` % of the
  // router's UDP (source port in `routerPorts`) dropped on the namespace's input.
  shape({ rateKbit = 0, lossPct = 0, routerPorts = [], burst = '16kb', latency = '100ms' } = {}) {
    this.unshape();
    if (rateKbit > 0) {
      const r = run('tc', ['qdisc', 'add', 'dev', this.hostIf, 'root', 'tbf', 'rate', `${rateKbit}kbit`, 'burst', burst, 'latency', latency]);
      if (r.status !== 0) throw new Error(`tc qdisc add ... tbf: ${(r.stderr || '').trim()}`);
    }
    if (lossPct > 0) {
      const ports = routerPorts.length ? `udp sport { ${routerPorts.join(', ')} } ` : 'meta l4proto udp ';
      const r = run('ip', ['netns', 'exec', this.name, 'nft', '-f', '-'], `table inet ${this.table} {
  chain input {
    type filter hook input priority -10; policy accept;
    ip saddr ${this.hostAddr} ${ports}numgen random mod 100 < ${Math.round(lossPct)} counter drop
  }
}
`);
      if (r.status !== 0) { this.unshape(); throw new Error(`nft (in ${this.name}): ${(r.stderr || r.error || '').toString().trim()}`); }
    }
    return this;
  }

  unshape() {
    run('tc', ['qdisc', 'del', 'dev', this.hostIf, 'root']);
    run('ip', ['netns', 'exec', this.name, 'nft', 'delete', 'table', 'inet', this.table]);
  }

  // What the shaping did so far: tbf's sent/dropped packets, nft's dropped.
  counters() {
    const tc = run('tc', ['-s', 'qdisc', 'show', 'dev', this.hostIf]).stdout || '';
    const m = /tbf[\s\S]*?Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)/.exec(tc);
    const n = /counter packets (\d+)/.exec(run('ip', ['netns', 'exec', this.name, 'nft', 'list', 'table', 'inet', this.table]).stdout || '');
    return { tbfSentPackets: m ? Number(m[2]) : null, tbfDropped: m ? Number(m[3]) : null, lossDropped: n ? Number(n[1]) : null };
  }
}

// Deletes the namespace on exit and on SIGINT/SIGTERM (the runner's trap does too).
export function downOnExit(ns) {
  process.on('exit', () => ns.down());
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.on(sig, () => { ns.down(); process.exit(code); });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const ns = new Netns();
  const cmd = process.argv[2];
  if (cmd === 'up') {
    const p = netnsProblem(); if (p) { console.error(`netns: ${p}`); process.exit(2); }
    try { ns.up(); } catch (e) { console.error(`netns: ${e.message}`); process.exit(1); }
    console.log(`netns: ${ns.name} up: ${ns.hostIf} ${ns.hostAddr}/30 <-> ${ns.nsIf} ${ns.nsAddr}/30 (in ${ns.name})`);
  } else if (cmd === 'down') {
    ns.down();
  } else if (cmd === 'status') {
    console.log(JSON.stringify({ ...netnsConfig(), exists: ns.exists(), hostUp: ns.hostUp(), ...ns.counters() }));
  } else { console.error('usage: netns.mjs up|down|status'); process.exit(2); }
}
