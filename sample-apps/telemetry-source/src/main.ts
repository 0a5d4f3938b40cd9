import { config, emit, log } from 'isogate:sdk';

// Plausible plant signals: a slow daily wave, noise, and now and then an excursion, so the
// threshold filter downstream has something to say.
const PROFILES: Record<string, { unit: string; base: number; swing: number; noise: number; spike: number }> = {
  temperature: { unit: 'degC', base: 70, swing: 6, noise: 1.5, spike: 18 },
  pressure: { unit: 'bar', base: 4.8, swing: 0.4, noise: 0.1, spike: 1.4 },
  vibration: { unit: 'mm/s', base: 4, swing: 1, noise: 0.6, spike: 6 },
};
const FALLBACK = { unit: '', base: 50, swing: 10, noise: 2, spike: 30 };

let tick = 0;
let timer: ReturnType<typeof setInterval> | undefined;

function reading(sensor: string): { sensor: string; value: number; unit: string; at: string } {
  const p = PROFILES[sensor] ?? FALLBACK;
  const wave = Math.sin(tick / 30) * p.swing;
  const excursion = Math.random() < 0.03 ? p.spike : 0;
  const value = p.base + wave + (Math.random() - 0.5) * 2 * p.noise + excursion;
  return { sensor, value: Math.round(value * 100) / 100, unit: p.unit, at: new Date().toISOString() };
}

function schedule(): void {
  if (timer !== undefined) clearInterval(timer);
  const settings = config.get() as { intervalMs?: number; sensors?: string[] };
  const sensors = settings.sensors ?? Object.keys(PROFILES);
  const intervalMs = settings.intervalMs ?? 1000;
  timer = setInterval(() => {
    tick += 1;
    for (const sensor of sensors) emit('readings', reading(sensor));
  }, intervalMs);
  log.info(`emitting ${sensors.join(', ')} every ${intervalMs} ms`);
}

config.onChange(schedule);
schedule();
