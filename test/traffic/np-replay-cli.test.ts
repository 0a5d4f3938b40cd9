/** `isogate np replay`: eve.json alert lines from a capture and rule files; every refusal with its code. */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { main } from '../../platform/cli/main.js';
import { runMain } from '../fixtures/cli.js';
import { mbap, mqttPacket, mqttString } from '../fixtures/frames.js';
import { PcapBuilder } from '../fixtures/pcap.js';
import { makeTempDir, removeDir } from '../fixtures/temp.js';

const ISOGATE = path.resolve('bin/isogate.mjs');

describe('isogate np replay', function () {
  this.timeout(60_000);
  let dir: string;
  let pcap: string;
  let modbusRules: string;
  let mqttRules: string;

  before(async () => {
    dir = await makeTempDir('isogate-np-replay-');
    const cap = new PcapBuilder();
    const m = cap.connection({ port: 1502 }, { ip: '127.0.0.5' }).handshake();
    m.send('toserver', mbap(1, 1, [6, 0, 99, 0x10, 0])).send('toclient', mbap(1, 1, [6, 0, 99, 0x10, 0]));
    m.send('toserver', mbap(2, 1, [3, 0, 0, 0, 1])).send('toclient', mbap(2, 1, [3, 2, 0, 1]));
    m.close();
    const q = cap.connection({ port: 1883 }).handshake();
    q.send('toserver', mqttPacket(1, 0, [...mqttString('MQTT'), 4, 2, 0, 60, ...mqttString('plc-1')])).send('toclient', mqttPacket(2, 0, [0, 0]));
    q.send('toserver', mqttPacket(3, 0, [...mqttString('plant/t'), 0x31]));
    q.close();
    pcap = path.join(dir, 'capture.pcap');
    await fs.writeFile(pcap, cap.bytes());
    modbusRules = path.join(dir, 'modbus.rules');
    await fs.writeFile(
      modbusRules,
      '# commands\nalert modbus $PLANT any -> any any (msg:"write 100"; modbus: access write holding, address 100; classtype:attempted-admin; sid:1; rev:3;)\n',
    );
    mqttRules = path.join(dir, 'mqtt.rules');
    await fs.writeFile(mqttRules, 'alert mqtt any any -> any any (msg:"publish"; mqtt.publish.topic; content:"plant/"; sid:2;)\n');
  });
  after(async () => removeDir(dir));

  const replay = (...args: string[]) => runMain(main, ['np', 'replay', ...args]);
  const lines = (stdout: string) =>
    stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));

  it('prints one eve.json alert line per alert, fields in Suricata 7 order, with the transaction', async () => {
    const out = await replay('--pcap', pcap, '--rules', modbusRules, '--rules', mqttRules, '--modbus-ports', '502,1502', '--var', 'PLANT=[127.0.0.0/24]');
    assert.equal(out.code, 0, out.stderr);
    const alerts = lines(out.stdout);
    assert.deepEqual(
      alerts.map((a) => a.alert.signature_id),
      [1, 2],
    );
    const [write, publish] = alerts;
    assert.deepEqual(Object.keys(write), [
      'timestamp',
      'flow_id',
      'event_type',
      'src_ip',
      'src_port',
      'dest_ip',
      'dest_port',
      'proto',
      'tx_id',
      'alert',
      'app_proto',
      'modbus',
    ]);
    assert.match(write.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$/);
    assert.deepEqual(
      { src: write.src_ip, dest_port: write.dest_port, tx: write.tx_id, proto: write.proto },
      { src: '127.0.0.5', dest_port: 1502, tx: 0, proto: 'TCP' },
    );
    assert.deepEqual(write.alert, {
      action: 'allowed',
      gid: 1,
      signature_id: 1,
      rev: 3,
      signature: 'write 100',
      category: 'Attempted Administrator Privilege Gain',
      severity: 1,
    });
    assert.equal(write.modbus.request.function_code, 'WrSingleReg');
    assert.equal(publish.app_proto, 'mqtt');
    assert.equal(publish.mqtt.publish.topic, 'plant/t');
    assert.notEqual(write.flow_id, publish.flow_id);
  });

  it('Modbus on port 502 only by default: the capture on 1502 is not inspected', async () => {
    const out = await replay('--pcap', pcap, '--rules', modbusRules, '--var', 'PLANT=any');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, '');
  });

  it('a bad rule is E_RULE_* at FILE:LINE:COLUMN, and nothing is printed', async () => {
    const bad = path.join(dir, 'bad.rules');
    await fs.writeFile(bad, '# one comment\n\nalert modbus any any -> any any (msg:"x"; modbus: function 3; sid:1; bogus;)\n');
    const out = await replay('--pcap', pcap, '--rules', bad);
    assert.equal(out.code, 1);
    assert.equal(out.stdout, '');
    assert.match(out.stderr, new RegExp(`^E_RULE_KEYWORD: ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:70: unknown rule keyword "bogus"`));
    const dup = path.join(dir, 'dup.rules');
    await fs.writeFile(dup, 'alert modbus any any -> any any (msg:"again"; sid:2;)\n');
    const twice = await replay('--pcap', pcap, '--rules', mqttRules, '--rules', dup);
    assert.match(twice.stderr, /^E_RULE_DUPLICATE_SID: .*dup\.rules:1:1: sid 2 is used already/);
    const reserved = path.join(dir, 'reserved.rules');
    await fs.writeFile(reserved, 'alert modbus any any -> any any (msg:"mine"; sid:90000001;)\n');
    assert.match((await replay('--pcap', pcap, '--rules', reserved)).stderr, /^E_RULE_RESERVED_SID: /);
    const undefinedVar = await replay('--pcap', pcap, '--rules', modbusRules);
    assert.match(undefinedVar.stderr, /^E_RULE_VARIABLE: .*modbus\.rules:2:\d+: /);
  });

  it('a bad capture is E_PCAP; a missing file E_PATH; bad options E_USAGE', async () => {
    const garbage = path.join(dir, 'garbage.pcap');
    await fs.writeFile(garbage, Buffer.from('this is not a capture file at all'));
    const out = await replay('--pcap', garbage, '--rules', mqttRules);
    assert.equal(out.code, 1);
    assert.match(out.stderr, /^E_PCAP: /);
    assert.match(
      (await replay('--pcap', path.join(dir, 'nope.pcap'), '--rules', mqttRules)).stderr,
      /^E_PATH: the capture .*nope\.pcap cannot be read \(ENOENT\)/,
    );
    assert.match((await replay('--pcap', pcap, '--rules', path.join(dir, 'nope.rules'))).stderr, /^E_PATH: the rules file /);
    const usage = await replay('--pcap', pcap, '--rules', mqttRules, '--mqtt-ports', '1883,70000');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^E_USAGE: --mqtt-ports is a comma-separated list/);
    assert.match((await replay('--pcap', pcap)).stderr, /^E_USAGE: .*needs --rules FILE/);
    assert.match((await replay('--pcap', pcap, '--rules', mqttRules, '--var', 'no-equals')).stderr, /^E_USAGE: --var is NAME=VALUE/);
  });

  it('runs from the build (bin/isogate): the engine is compiled beside the platform', async () => {
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number }>((resolve) => {
      execFile(process.execPath, [ISOGATE, 'np', 'replay', '--pcap', pcap, '--rules', mqttRules], { timeout: 30_000 }, (error, out, err) =>
        resolve({ stdout: out, stderr: err, code: error ? ((error as { code?: number }).code ?? 1) : 0 }),
      );
    });
    assert.equal(code, 0, stderr);
    assert.deepEqual(
      lines(stdout).map((a) => a.alert.signature_id),
      [2],
    );
  });
});
