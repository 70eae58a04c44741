// Headless Debian Chromium, hermetic (see shared notes on WebRTC): no network but 127.0.0.1,
// fake camera and microphone, no permission prompts, loopback peer connections allowed.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// allowHosts: addresses besides 127.0.0.1 the browser may reach (simulcast-e2e's veth address).
export function chromiumArgs({ y4m, wav, userDataDir, allowHosts = [] } = {}) {
  const args = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-extensions', '--disable-default-apps', '--no-pings', '--disable-domain-reliability',
    `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1${allowHosts.map((h) => ` , EXCLUDE ${h}`).join('')}`,
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--use-fake-device-for-media-stream=fps=30', '--use-fake-ui-for-media-stream',
    '--allow-loopback-in-peer-connection', '--autoplay-policy=no-user-gesture-required',
    '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows',
  ];
  if (y4m) args.push(`--use-file-for-fake-video-capture=${y4m}`);
  if (wav) args.push(`--use-file-for-fake-audio-capture=${wav}`); // looped; the default is a beep a second
  if (userDataDir) args.push(`--user-data-dir=${userDataDir}`);
  return args;
}

// Launches Chromium; returns { browser, close() }. A persistent context is not needed:
// playwright's launch() gives every newContext() its own profile in a temp directory.
// netns: run it inside that network namespace (`ip netns exec NS chromium ...`, through a
// wrapper script in the temp directory: playwright talks to it over a pipe, which ip netns exec keeps).
export async function launchChromium({ y4m, wav, allowHosts, netns, extraArgs = [] } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (run tuning/scripts/install-deps.sh)`);
  const tmp = mkdtempSync(join(tmpdir(), 'corecast-chromium-'));
  let executablePath = CHROMIUM;
  if (netns) {
    executablePath = join(tmp, 'chromium-in-netns');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${netns} ${CHROMIUM} "$@"\n`, { mode: 0o755 });
  }
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // playwright adds its own --headless and --user-data-dir; ours come after and are the same kind.
    args: [...chromiumArgs({ y4m, wav, allowHosts }), ...extraArgs],
    ignoreDefaultArgs: ['--headless'],
    env: { ...process.env, TMPDIR: tmp },
    timeout: 30_000,
  });
  return {
    browser,
    version: browser.version(),
    async close() {
      await browser.close().catch(() => {});
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}
