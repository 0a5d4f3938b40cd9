import { config, emit, log, on, storage } from 'isogate:sdk';

interface Reading {
  sensor: string;
  value: number;
  unit: string;
  at: string;
}
type Limits = Record<string, { warning: number; critical: number }>;

// Alert counts per sensor live in encrypted storage, so they survive restarts and updates of
// the gateway; a sensor that stays over its limit raises one alert, not one per reading.
const over = new Map<string, 'warning' | 'critical'>();

async function countAlert(sensor: string): Promise<number> {
  const key = `alerts/${sensor}`;
  const count = Number((await storage.get(key)) ?? 0) + 1;
  await storage.put(key, String(count));
  return count;
}

on('readings', async (message) => {
  const reading = message as Reading;
  const limits = (config.get().limits ?? {}) as Limits;
  const limit = limits[reading.sensor];
  if (!limit) return;
  const severity = reading.value >= limit.critical ? 'critical' : reading.value >= limit.warning ? 'warning' : undefined;
  if (severity === over.get(reading.sensor)) return;
  if (!severity) {
    over.delete(reading.sensor);
    log.debug(`${reading.sensor} back to normal at ${reading.value} ${reading.unit}`);
    return;
  }
  over.set(reading.sensor, severity);
  const count = await countAlert(reading.sensor);
  const threshold = severity === 'critical' ? limit.critical : limit.warning;
  log.warning(`${reading.sensor} ${reading.value} ${reading.unit} is over its ${severity} limit ${threshold} (alert ${count})`);
  emit('alerts', { sensor: reading.sensor, value: reading.value, limit: threshold, severity, at: reading.at, count });
});

const known = await storage.list('alerts/');
log.info(`watching limits; ${known.length} sensors have raised alerts before`);
