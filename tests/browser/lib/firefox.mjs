// Firefox ESR, headless, with a throwaway profile whose user.js gives fake media devices,
// no permission prompts and no traffic anywhere but 127.0.0.1 (every proxy points at a closed
// port on 127.0.0.1 except for 127.0.0.1 itself; telemetry, updates, safe browsing, captive-portal
// and connectivity checks are off). playwright-core cannot drive a stock Firefox, so the page
// does its work on load and POSTs results back to the test's own HTTP server.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';

const PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.loopback': true,
  'network.proxy.type': 1,
  'network.proxy.http': '127.0.0.1', 'network.proxy.http_port': 9,
  'network.proxy.ssl': '127.0.0.1', 'network.proxy.ssl_port': 9,
  'network.proxy.socks': '127.0.0.1', 'network.proxy.socks_port': 9,
  'network.proxy.no_proxies_on': '127.0.0.1',
  'network.proxy.allow_hijacking_localhost': false,
  'network.proxy.socks_remote_dns': true,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.predictor.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.trr.mode': 5,
  // Every name resolves to 127.0.0.1 without a DNS query (Firefox looks up its remote settings'
  // host whatever services.settings.server says).
  'network.dns.forceResolve': '127.0.0.1',
  'app.update.enabled': false, 'app.update.auto': false,
  'app.normandy.enabled': false,
  'browser.safebrowsing.malware.enabled': false, 'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false, 'browser.safebrowsing.provider.mozilla.updateURL': '',
  'toolkit.telemetry.enabled': false, 'toolkit.telemetry.unified': false,
  'datareporting.healthreport.uploadEnabled': false, 'datareporting.policy.dataSubmissionEnabled': false,
  'extensions.update.enabled': false, 'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'browser.newtabpage.enabled': false, 'browser.startup.page': 0,
  'browser.aboutwelcome.enabled': false,
  'browser.ping-centre.telemetry': false,
  'browser.region.network.url': '', 'browser.region.update.enabled': false,
  'geo.enabled': false,
  'captivedetect.canonicalURL': '',
  'dom.push.enabled': false, 'dom.push.connection.enabled': false,
};

export function firefoxAvailable() { return existsSync(FIREFOX); }

// Starts Firefox on `url`; returns { version, close() }.
export function launchFirefox(url) {
  const dir = mkdtempSync(join(tmpdir(), 'corecast-firefox-'));
  writeFileSync(join(dir, 'user.js'),
    Object.entries(PREFS).map(([k, v]) => `user_pref(${JSON.stringify(k)}, ${JSON.stringify(v)});`).join('\n') + '\n');
  const child = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', dir, url], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, MOZ_HEADLESS: '1', HOME: dir, MOZ_DISABLE_CONTENT_SANDBOX: '1' },
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (stderr.length > 20000) stderr = stderr.slice(-20000); });
  return {
    child,
    stderr: () => stderr,
    async close() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((ok) => { const t = setTimeout(() => { child.kill('SIGKILL'); ok(); }, 5000);
          child.on('exit', () => { clearTimeout(t); ok(); }); });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
