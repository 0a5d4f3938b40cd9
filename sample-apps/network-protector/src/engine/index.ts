/** Network Protector's rule engine: compiled Suricata rules matched on Modbus/TCP and MQTT streams. */
export { type CompiledRule, type CompiledRules, compileRules } from './compile.js';
export { type InspectMatch, type InspectResult, StreamInspector, type Transaction } from './inspector.js';
export type { TrafficAlert, TrafficConnection, TrafficDirection, TrafficVerdict } from './types.js';
