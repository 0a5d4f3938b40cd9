/**
 * Offline replay of a 1M-frame capture with 100 rules: `isogate np replay` (the compiled build, as
 * an installed isogate runs it) beside Suricata 7 `--runmode single` on the same capture and
 * rules, each the whole wall time of its process (start, rule loading, replay, exit), as packets
 * per second. Goal: >= 0.5x Suricata's. The capture is generated here: Modbus/TCP and MQTT
 * connections of request/response pairs, each segment ACKed, as the crafted differential tests make.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { mbap, mqttPacket, mqttString } from '../fixtures/frames.js';
import { PcapBuilder } from '../fixtures/pcap.js';
import { suricataBinary, suricataHome } from '../fixtures/suricata.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';
import { type BenchResult, compare } from './harness.js';

const ISOGATE = path.resolve('bin/isogate.mjs');
const FRAMES = 1_000_000;
/** Frames of one connection: handshake 3, 250 request/response pairs of 4 (each ACKed), close 3. */
const PAIRS = 250;

export function capture(): { bytes: Uint8Array; frames: number } {
  const cap = new PcapBuilder();
  let frames = 0;
  for (let n = 0; frames < FRAMES; n++) {
    const mqtt = n % 4 === 3;
    const c = cap.connection({ port: mqtt ? 1883 : 502 }, { ip: `127.0.${(n >> 8) & 0xff}.${(n & 0xff) + 1}`, port: 40000 + (n % 20000) }).handshake();
    frames += 3;
    if (mqtt) {
      c.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString(`client-${n}`)])).send('toclient', mqttPacket(2, 0, [0, 0]));
      frames += 4;
    }
    for (let i = 0; i < PAIRS - (mqtt ? 1 : 0) && frames < FRAMES - 3; i++) {
      if (mqtt) {
        const id = (i % 65535) + 1;
        c.send('toserver', mqttPacket(3, 2, [...mqttString(`plant/cell${i % 16}/temp`), id >> 8, id & 0xff, 0x32, 0x31])).send(
          'toclient',
          mqttPacket(4, 0, [id >> 8, id & 0xff]),
        );
      } else {
        const id = i & 0xffff;
        const fn = i % 10 === 9 ? 6 : 3;
        const address = i % 200;
        if (fn === 3) c.send('toserver', mbap(id, 1, [3, 0, address, 0, 2])).send('toclient', mbap(id, 1, [3, 4, 0, 1, 0, 2]));
        else c.send('toserver', mbap(id, 1, [6, 0, address, 0, i & 0xff])).send('toclient', mbap(id, 1, [6, 0, address, 0, i & 0xff]));
      }
      frames += 4;
    }
    c.close();
    frames += 3;
  }
  return { bytes: cap.bytes(), frames };
}

/** 100 rules: the anomaly rules, and Modbus / MQTT rules of every kind, a few of which fire. */
export function rules(): string {
  const out: string[] = [];
  let sid = 1;
  const add = (text: string) => out.push(text.replace('SID', String(sid++)));
  add('alert modbus any any -> any any (msg:"write single register"; modbus: function 6; sid:SID; rev:1;)');
  add('alert mqtt any any -> any any (msg:"cell 3 topic"; mqtt.publish.topic; content:"cell3/"; sid:SID; rev:1;)');
  for (const event of [
    'invalid_protocol_id',
    'unsolicited_response',
    'invalid_length',
    'invalid_function_code',
    'invalid_value',
    'invalid_exception_code',
    'flooded',
  ])
    add(`alert modbus any any -> any any (msg:"modbus ${event}"; app-layer-event:modbus.${event}; sid:SID; rev:1;)`);
  for (const event of ['missing_connect', 'missing_publish', 'double_connect', 'unintroduced_message', 'invalid_qos_level', 'malformed_traffic'])
    add(`alert mqtt any any -> any any (msg:"mqtt ${event}"; app-layer-event:mqtt.${event}; sid:SID; rev:1;)`);
  for (let i = 0; out.length < 60; i++) {
    add(`alert modbus any any -> any 502 (msg:"write holding ${1000 + i}"; modbus: access write holding, address ${1000 + i}, value >${i}; sid:SID; rev:1;)`);
    add(`alert modbus any any -> any any (msg:"unit ${100 + i}"; modbus: unit ${100 + i}, function 16; sid:SID; rev:1;)`);
  }
  for (let i = 0; out.length < 95; i++) {
    add(`alert mqtt any any -> any any (msg:"topic ${i}"; mqtt.publish.topic; content:"secret/${i}"; sid:SID; rev:1;)`);
    add(`alert mqtt any any -> any any (msg:"client ${i}"; mqtt.connect.clientid; content:"rogue-${i}"; sid:SID; rev:1;)`);
  }
  while (out.length < 100)
    add(`alert tcp any any -> any 502 (msg:"payload ${sid}"; content:"|de ad be ef ${sid.toString(16).padStart(2, '0')}|"; sid:SID; rev:1;)`);
  return `${out.join('\n')}\n`;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${command} exited with ${code}: ${stderr}`))));
  });
}

export default async function replayBench(): Promise<BenchResult[]> {
  const dir = await makeTempDir('isogate-bench-replay-');
  try {
    const { bytes, frames } = capture();
    const pcap = path.join(dir, 'capture.pcap');
    const rulesFile = path.join(dir, 'bench.rules');
    await fs.writeFile(pcap, bytes);
    await fs.writeFile(rulesFile, rules());
    const home = suricataHome();
    const etc = path.join(home, 'etc/suricata');
    const out = path.join(dir, 'suricata');
    await fs.mkdir(out);
    const suricataArgs = [
      '-c',
      path.join(etc, 'suricata.yaml'),
      '--set',
      `classification-file=${path.join(etc, 'classification.config')}`,
      '--set',
      `reference-config-file=${path.join(etc, 'reference.config')}`,
      '--set',
      `threshold-file=${path.join(etc, 'threshold.config')}`,
      '--set',
      'app-layer.protocols.modbus.enabled=yes',
      '--set',
      'app-layer.protocols.mqtt.enabled=yes',
      '--set',
      'stream.reassembly.depth=0',
      '--runmode',
      'single',
      '-k',
      'none',
      '-r',
      pcap,
      '-S',
      rulesFile,
      '-l',
      out,
    ];
    const env = { ...process.env, LD_LIBRARY_PATH: `${home}/usr/lib/x86_64-linux-gnu:${home}/usr/lib` };
    const suricata = suricataBinary();
    return [
      await compare({
        name: `offline replay, ${frames} frames, 100 rules (whole process)`,
        unit: 'packets/s',
        baselineName: 'Suricata 7.0.10 --runmode single',
        higherIsBetter: true,
        target: 0.5,
        rounds: 3,
        warmupRounds: 0,
        subject: async () => frames / ((await run(process.execPath, [ISOGATE, 'np', 'replay', '--pcap', pcap, '--rules', rulesFile])) / 1000),
        baseline: async () => {
          await fs.rm(out, { recursive: true, force: true });
          await fs.mkdir(out);
          return frames / ((await run(suricata, suricataArgs, env)) / 1000);
        },
      }),
    ];
  } finally {
    await removeDir(dir);
  }
}
