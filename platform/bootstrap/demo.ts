/**
 * `npm start` / `isogate demo`: the sample pipeline installed, wired and running, so a newcomer
 * sees data flow at once. Every step goes through the same services an admin uses, and each is
 * skipped when already done, so a second start of the same data directory changes nothing:
 * apps that are running start again by their own Autostart rule, like on any gateway.
 */
import type { GatewayServices } from '../api/services.js';

export const DEMO_APPS = ['dev.isogate.samples.telemetry', 'dev.isogate.samples.threshold', 'dev.isogate.samples.uplink'] as const;

const [TELEMETRY, THRESHOLD, UPLINK] = DEMO_APPS;

export const DEMO_ROUTES = [
  { source: { application_id: TELEMETRY, endpoint: 'readings' }, destination: { application_id: THRESHOLD, endpoint: 'readings' } },
  { source: { application_id: THRESHOLD, endpoint: 'alerts' }, destination: { application_id: UPLINK, endpoint: 'alerts' } },
];

/**
 * The sample uplink's servers are on this machine (localhost:8443 and :8883), and a gateway
 * refuses egress to its own side unless the admin allows the range: the demo allows loopback.
 */
export const DEMO_ALLOWED_RANGES = ['127.0.0.0/8', '::1/128'] as const;

export async function setUpDemo(services: GatewayServices, say: (line: string) => void): Promise<void> {
  const { orchestrator, launcher, router, config } = services;
  if (config.read((doc) => doc.EGRESS) === undefined) {
    await config.update((doc) => {
      doc.EGRESS = { allowed_ranges: [...DEMO_ALLOWED_RANGES] };
    });
    say(`Egress allowed to ${DEMO_ALLOWED_RANGES.join(' and ')} (EGRESS.allowed_ranges), where the sample uplink's servers are`);
  }
  // Only what this start installed is set to Autostart and started: on a data directory the
  // demo set up before, the admin's start rules and stopped apps are the admin's decisions.
  const installedNow: string[] = [];
  for (const id of DEMO_APPS) {
    if (orchestrator.get(id)) continue;
    installedNow.push(id);
    let lastLine = '';
    const app = await orchestrator.install(id, {
      onProgress: (progress) => {
        // One line per phase and per tenth of the way: readable in a log, alive on a screen.
        const line = `  ${id}: ${progress.phase} ${Math.floor(progress.percent / 10) * 10}%`;
        if (line !== lastLine) say(line);
        lastLine = line;
      },
    });
    say(`Installed ${app.manifest.title} (${id} ${app.version})`);
  }

  const existing = router.list();
  for (const route of DEMO_ROUTES) {
    const present = existing.some(
      (r) =>
        r.source.application_id === route.source.application_id &&
        r.source.endpoint === route.source.endpoint &&
        r.destination.application_id === route.destination.application_id &&
        r.destination.endpoint === route.destination.endpoint,
    );
    if (present) continue;
    await router.add(route.source, route.destination);
    say(`Route ${route.source.application_id}:${route.source.endpoint} -> ${route.destination.application_id}:${route.destination.endpoint}`);
  }

  // Start downstream first, so the first readings find their destinations running.
  for (const id of [...DEMO_APPS].reverse().filter((app) => installedNow.includes(app))) {
    const info = launcher.status(id);
    if (info.launchRule !== 'auto') await launcher.setLaunchRule(id, 'auto');
    if (info.status !== 'running' && info.status !== 'starting') {
      const started = await launcher.start(id);
      say(`Started ${id}: ${started.status}`);
    }
  }
  // On a data directory the admin changed, the pipeline may not all run: say so rather than that data flows.
  const idle = DEMO_APPS.map((id) => ({ id, ...launcher.status(id) })).filter((app) => app.status !== 'running');
  if (idle.length === 0) {
    say('Data is flowing: telemetry -> threshold -> uplink. Watch it with `npx isogate routes list` and `npx isogate apps list`.');
    return;
  }
  const rules = { auto: 'auto', none: 'manual', forbidden: 'blocked' } as const;
  say(
    `Not all of the sample pipeline runs: ${idle.map((app) => `${app.id} ${app.status} (start rule ${rules[app.launchRule]})`).join(', ')}; ` +
      '`npx isogate apps list` shows them, `npx isogate apps rule ID auto` and `npx isogate apps start ID` run one again.',
  );
}
