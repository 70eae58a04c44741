// Real packet loss on the router → browser media path, for the web app's automatic SD and
// reconnect tests. This kernel has no netem (nor tc's prio/gact), so nftables does it: one
// table with an input-hook rule that drops a share (numgen random) or all of the UDP
// datagrams from the router's port to Chromium's sockets. Chromium's UDP ports are read from
// `ss -uanp` every 300 ms while the rule is on (every new session opens new ones), so HTTP,
// the browser → router direction and the codec pool's own UDP leg are untouched. Dropping on
// input, not output, keeps the router's sendmsg from seeing EPERM.
//
// Needs root and nft (`install-deps.sh browser` installs nftables). The table is always
// removed: stop(), process exit, SIGINT/SIGTERM here, and tuning/scripts/browser-e2e.sh's
// trap deletes it too (`nft delete table inet corecast_e2e_<router port>`).
import { spawnSync } from 'node:child_process';

export const tableName = (routerPort) => `corecast_e2e_${routerPort}`;
const run = (cmd, args, input) => spawnSync(cmd, args, { input, encoding: 'utf8', timeout: 5000 });

// Why impairing cannot work here, or null.
export function impairmentProblem() {
  if (process.getuid && process.getuid() !== 0) return 'needs root (nftables rules)';
  const v = run('nft', ['--version']);
  if (v.error || v.status !== 0) return 'no nft (tuning/scripts/install-deps.sh browser installs nftables)';
  const s = run('ss', ['-H', '-uanp']);
  if (s.error || s.status !== 0) return 'no ss (iproute2)';
  return null;
}

// The local UDP ports of Chromium's processes.
export function chromiumUdpPorts() {
  const ports = new Set();
  for (const l of (run('ss', ['-H', '-uanp']).stdout || '').split('\n')) {
    if (!/users:\(\("chrom(e|ium)/.test(l)) continue;
    const m = /:(\d+)$/.exec(l.trim().split(/\s+/)[3] || '');
    if (m) ports.add(Number(m[1]));
  }
  return ports;
}

const active = new Set();
function removeAll() { for (const t of active) run('nft', ['delete', 'table', 'inet', t]); active.clear(); }
let hooked = false;
function hookExit() {
  if (hooked) return; hooked = true;
  process.on('exit', removeAll);
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]]) process.on(sig, () => { removeAll(); process.exit(code); });
}

export class Impairment {
  constructor(routerPort) { this.port = Number(routerPort); this.table = tableName(this.port); this.timer = null; this.known = new Set(); }

  // Drops lossPct % (100: all) of the router's datagrams to Chromium from now on
  // (direction 'up': of Chromium's datagrams to the router instead).
  start(lossPct, direction = 'down') {
    this.stop();
    hookExit();
    const drop = lossPct >= 100 ? 'drop' : `numgen random mod 100 < ${Math.round(lossPct)} drop`;
    run('nft', ['delete', 'table', 'inet', this.table]); // a leftover of a killed run
    const r = run('nft', ['-f', '-'], `table inet ${this.table} {
  set browsers { type inet_service; }
  chain input {
    type filter hook input priority -10; policy accept;
    ${direction === 'up' ? `udp dport ${this.port} udp sport @browsers` : `udp sport ${this.port} udp dport @browsers`} counter ${drop}
  }
}
`);
    if (r.status !== 0) throw new Error(`nft: ${(r.stderr || r.error || '').toString().trim()}`);
    active.add(this.table);
    this.known.clear();
    this.refresh();
    this.timer = setInterval(() => this.refresh(), 300);
    return this;
  }

  refresh() {
    const fresh = [...chromiumUdpPorts()].filter((p) => !this.known.has(p));
    if (!fresh.length) return;
    const r = run('nft', ['add', 'element', 'inet', this.table, 'browsers', `{ ${fresh.join(', ')} }`]);
    if (r.status === 0) fresh.forEach((p) => this.known.add(p));
  }

  // Datagrams dropped so far (the rule's counter).
  dropped() {
    const m = /counter packets (\d+)/.exec(run('nft', ['list', 'table', 'inet', this.table]).stdout || '');
    return m ? Number(m[1]) : 0;
  }

  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (active.has(this.table)) { run('nft', ['delete', 'table', 'inet', this.table]); active.delete(this.table); }
  }
}
