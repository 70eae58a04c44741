// simulcast-e2e.mjs's command line: its options, their defaults and checks.
const HELP = `usage: simulcast-e2e.mjs [options]   (as root; normally through \`make simulcast-e2e\`)
  --calls URL          calls service (default http://127.0.0.1:8082)
  --auth URL           auth service (default http://127.0.0.1:8081)
  --admin URL          router admin API (default http://127.0.0.1:40100)
  --secret-file F      router secret for the admin API (default .run/data/router-secret)
  --router-port P      router's UDP port (the loss rule's source port; default 40000)
  --size WxH           fake camera (default 640x360: layers 160x90, 320x180, 640x360)
  --rates Q,H,F        layers' maxBitrate in kbps (default 150,500,1500)
  --codec C            vp8 (default), h264, av1
  --feedback F         twcc (default: what Chromium negotiates, transport-cc) or remb (the viewer's
                       offer is POSTed without transport-cc, so Chromium sends REMB instead)
  --shape-kbit N       rate cap under shaping (default 300)
  --loss N             % random loss under shaping (default 5)
  --shaped-seconds N   how long the shaped phase is watched (default 20)
  --max-gap-ms N       longest allowed time without a newly decoded frame on the low layer (default 1000)
  --climb-wait N       seconds for the climb back after the shaping is removed (default 40)
  --timeout S          whole run (default 170)
  --json FILE          also write the summary there
  --strict             the no-freeze and low-layer rules FAIL instead of pending
  --keep-netns         leave the namespace (for a router started by hand; default: deleted at exit
                       if this script created it)`;
export function parseArgs(argv) {
  const o = { calls: 'http://127.0.0.1:8082', auth: 'http://127.0.0.1:8081', admin: 'http://127.0.0.1:40100',
    secretFile: '.run/data/router-secret', routerPort: 40000, size: '640x360', rates: '150,500,1500', codec: 'vp8',
    feedback: 'twcc', shapeKbit: 300, loss: 5, shapedSeconds: 20, maxGapMs: 1000, climbWait: 40, timeout: 170,
    json: null, keepNetns: false, strict: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]; const v = () => { if (i + 1 >= argv.length) die(`${a} needs a value`); return argv[++i]; };
    switch (a) {
      case '--calls': o.calls = v(); break;
      case '--auth': o.auth = v(); break;
      case '--admin': o.admin = v(); break;
      case '--secret-file': o.secretFile = v(); break;
      case '--router-port': o.routerPort = Number(v()); break;
      case '--size': o.size = v(); break;
      case '--rates': o.rates = v(); break;
      case '--codec': o.codec = v(); break;
      case '--feedback': o.feedback = v(); break;
      case '--shape-kbit': o.shapeKbit = Number(v()); break;
      case '--loss': o.loss = Number(v()); break;
      case '--shaped-seconds': o.shapedSeconds = Number(v()); break;
      case '--max-gap-ms': o.maxGapMs = Number(v()); break;
      case '--climb-wait': o.climbWait = Number(v()); break;
      case '--timeout': o.timeout = Number(v()); break;
      case '--json': o.json = v(); break;
      case '--keep-netns': o.keepNetns = true; break;
      case '--strict': o.strict = true; break;
      case '-h': case '--help': console.log(HELP); process.exit(0); break;
      default: die(`unknown option ${a}\n${HELP}`);
    }
  }
  const m = /^(\d+)x(\d+)$/.exec(o.size); if (!m) die('--size is WxH');
  o.width = Number(m[1]); o.height = Number(m[2]);
  o.kbps = o.rates.split(',').map(Number); if (o.kbps.length !== 3 || o.kbps.some((x) => !(x > 0))) die('--rates is Q,H,F');
  if (!['vp8', 'h264', 'av1'].includes(o.codec)) die('--codec: vp8, h264 or av1');
  if (!['twcc', 'remb'].includes(o.feedback)) die('--feedback: twcc or remb');
  for (const k of ['calls', 'auth', 'admin']) o[k] = o[k].replace(/\/+$/, '');
  return o;
}
function die(msg) { console.error(msg); process.exit(2); }
