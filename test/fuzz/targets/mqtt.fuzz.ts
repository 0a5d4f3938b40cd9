/**
 * The MQTT parser (sample-apps/network-protector/src/protocols/mqtt.ts): one message for both
 * protocol versions, the probe, and a flow fed both directions in the segmentation the first
 * byte picks, each transaction rendered as an eve record. It must never throw.
 */
import { mqttEve } from '../../../sample-apps/network-protector/src/protocols/eve.js';
import { MqttFlow, parseMqttMessage, probeMqtt } from '../../../sample-apps/network-protector/src/protocols/mqtt.js';
import { broken } from '../refusal.js';
import { segments } from './segments.js';

const MAX_MSG = 4096;

export function fuzz(data: Buffer): void {
  probeMqtt(data);
  for (const version of [3, 4, 5]) {
    parseMqttMessage(data, 'toserver', version, MAX_MSG);
    parseMqttMessage(data, 'toclient', version, MAX_MSG);
  }
  const flow = new MqttFlow({ maxMsgLen: MAX_MSG, maxTx: 32 });
  for (const { direction, bytes } of segments(data)) {
    const { updated } = flow.feed(direction, bytes);
    for (const tx of updated) JSON.stringify(mqttEve(tx, { passwords: true }));
    if (flow.outstanding > 32) broken(`${flow.outstanding} transactions held past max-tx`);
  }
}
