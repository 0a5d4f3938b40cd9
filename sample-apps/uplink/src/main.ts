import { config, egress, log, on } from 'isogate:sdk';

interface Alert {
  sensor: string;
  value: number;
  limit: number;
  severity: string;
  at: string;
  count?: number;
}
interface Settings {
  sendTo?: ('cloud' | 'broker')[];
  path?: string;
  topic?: string;
}

let forwarded = 0;

// The uplink never holds a socket: the gateway's TLS terminator connects to the hosts the
// manifest declares, checks them against the CA the admin uploaded and presents the client
// certificate. Until the admin chooses where to send (configuration "sendTo"), alerts are logged.
on('alerts', async (message) => {
  const alert = message as Alert;
  const settings = config.get() as Settings;
  const targets = settings.sendTo ?? [];
  if (targets.length === 0) {
    log.info(`alert ${alert.severity}: ${alert.sensor} ${alert.value} (limit ${alert.limit})`);
    return;
  }
  const body = JSON.stringify(alert);
  for (const target of targets) {
    try {
      if (target === 'cloud') {
        const response = await egress.fetch('cloud', {
          method: 'POST',
          path: settings.path ?? '/api/alerts',
          headers: { 'content-type': 'application/json' },
          body,
        });
        if (response.status >= 300) throw new Error(`the server answered ${response.status}`);
      } else {
        await egress.publish('broker', `${settings.topic ?? 'plant/alerts'}/${alert.sensor}`, body, { qos: 1 });
      }
      forwarded += 1;
      log.debug(`alert forwarded to ${target} (${forwarded} so far)`);
    } catch (error) {
      log.error(`alert not forwarded to ${target}: ${(error as Error).message}`);
    }
  }
});

log.info('ready to forward alerts');
