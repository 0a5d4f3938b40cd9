/**
 * What the protocol parsers hand to a rule matcher: Modbus/TCP and MQTT messages, transactions and
 * anomaly events as Suricata 7 forms them (its `rust/src/modbus`, the `sawp-modbus` 0.12 crate it
 * uses, and `rust/src/mqtt`). Field names follow Suricata's eve.json records where it logs them, so
 * a replay's output compares with Suricata's line by line.
 *
 * No Node types here: this runs inside Network Protector's isolate.
 */

export type Direction = 'toserver' | 'toclient';

// ---------------------------------------------------------------- Modbus

/** sawp-modbus `AccessType` bits (the `modbus: access` keyword works on these). */
export const ModbusAccess = {
  READ: 0x01,
  WRITE: 0x02,
  DISCRETES: 0x04,
  COILS: 0x08,
  INPUT: 0x10,
  HOLDING: 0x20,
  SINGLE: 0x40,
  MULTIPLE: 0x80,
  BIT_ACCESS_MASK: 0x0c,
  FUNC_MASK: 0x3c,
} as const;

/** sawp-modbus `CodeCategory` bits (the `modbus: function public|user|reserved` forms). */
export const ModbusCategory = {
  PUBLIC_ASSIGNED: 0x01,
  PUBLIC_UNASSIGNED: 0x02,
  USER_DEFINED: 0x04,
  RESERVED: 0x08,
} as const;

/** sawp-modbus `ErrorFlags` bits: what the parser found wrong with one message. */
export const ModbusErrorFlag = {
  DATA_VALUE: 0x01,
  DATA_LENGTH: 0x02,
  EXC_CODE: 0x04,
  FUNC_CODE: 0x08,
  PROTO_ID: 0x10,
} as const;

/** Suricata's Modbus app-layer events (`app-layer-event:modbus.<name>`), exactly as it names them. */
export type ModbusEventName =
  | 'unsolicited_response'
  | 'invalid_function_code'
  | 'invalid_length'
  | 'invalid_value'
  | 'invalid_exception_code'
  | 'value_mismatch'
  | 'flooded'
  | 'invalid_protocol_id';

export type ModbusRead = { kind: 'request'; address: number; quantity: number } | { kind: 'response'; data: Uint8Array };

export type ModbusWrite =
  | { kind: 'multiple'; address: number; quantity: number; data: Uint8Array }
  | { kind: 'mask'; address: number; andMask: number; orMask: number }
  /** Single writes, and the echo of a multiple write's address and quantity in its response (`data` is the quantity then). */
  | { kind: 'other'; address: number; data: number };

export type ModbusData =
  | { kind: 'exception'; raw: number; code: string }
  | { kind: 'diagnostic'; raw: number; code: string; data: Uint8Array }
  | { kind: 'mei'; raw: number; code: string; data: Uint8Array }
  | { kind: 'read'; read: ModbusRead }
  | { kind: 'write'; write: ModbusWrite }
  | { kind: 'readwrite'; read: ModbusRead; write: ModbusWrite }
  | { kind: 'bytes'; data: Uint8Array }
  | { kind: 'empty' };

export interface ModbusMessage {
  readonly direction: Direction;
  readonly transactionId: number;
  readonly protocolId: number;
  /** The MBAP length field as sent (it may lie; `errorFlags` says so). */
  readonly length: number;
  readonly unitId: number;
  /** The function byte as sent, exception bit included. */
  readonly functionRaw: number;
  /** sawp's name for the function (`RdHoldRegs`, `Diagnostic`, `MEI`, `Unknown`...), exception bit removed. */
  readonly functionCode: string;
  /** True when the exception bit (0x80) is set: an exception response. */
  readonly exception: boolean;
  /** `ModbusAccess` bits of the function. */
  readonly accessType: number;
  /** `ModbusCategory` bits. */
  category: number;
  /** `ModbusErrorFlag` bits. */
  errorFlags: number;
  data: ModbusData;
  /**
   * The message's content as one number, -1 if it has none: its direction, MBAP length and the
   * bytes from the unit on, for a frame of protocol 0 whose length is at most MODBUS_KEYED_LENGTH.
   * Two messages with the same key parse to the same fields (the transaction id and the flags a
   * transaction adds aside), so what rules make of one holds for the other: a poll's requests
   * (a read, a single write: 6 bytes from the unit on) repeat it.
   */
  readonly matchKey: number;
}

export interface ModbusTransaction {
  /** Suricata's tx id: 0-based in eve.json `tx_id`, 1-based in the `modbus.id` it logs. */
  readonly txId: number;
  request?: ModbusMessage;
  response?: ModbusMessage;
  readonly events: ModbusEventName[];
  /** The rule engine's detection state, kept with the transaction as Suricata keeps its DetectEngineState. */
  detected?: DetectedRules;
  /** The message every rule settled by it (CompiledRule.settledByMessage) was inspected against, both ways. */
  settledFor?: ModbusMessage;
}

// ---------------------------------------------------------------- MQTT

export type MqttTypeName =
  | 'unassigned'
  | 'connect'
  | 'connack'
  | 'publish'
  | 'puback'
  | 'pubrec'
  | 'pubrel'
  | 'pubcomp'
  | 'subscribe'
  | 'suback'
  | 'unsubscribe'
  | 'unsuback'
  | 'pingreq'
  | 'pingresp'
  | 'disconnect'
  | 'auth';

/** Suricata's MQTT app-layer events (`app-layer-event:mqtt.<name>`). */
export type MqttEventName =
  | 'missing_connect'
  | 'missing_publish'
  | 'missing_subscribe'
  | 'missing_unsubscribe'
  | 'double_connect'
  | 'unintroduced_message'
  | 'invalid_qos_level'
  | 'missing_msg_id'
  | 'unassigned_msg_type'
  | 'too_many_transactions'
  | 'malformed_traffic';

export interface MqttFixedHeader {
  /** The 4-bit type (0..15). */
  readonly type: number;
  readonly typeName: MqttTypeName;
  /** The low nibble of the first byte, as the `mqtt.flags` keyword sees it. */
  readonly flags: number;
  readonly dup: boolean;
  readonly qos: number;
  readonly retain: boolean;
  readonly remainingLength: number;
}

export interface MqttProperty {
  /** The property identifier; unknown identifiers are kept with `value: undefined` as Suricata does. */
  readonly id: number;
  readonly name: string;
  readonly value: number | string | Uint8Array | readonly [string, string] | undefined;
}

export interface MqttConnect {
  readonly kind: 'connect';
  readonly protocolString: string;
  readonly protocolVersion: number;
  /** The connect flags byte (the `mqtt.connect.flags` keyword). */
  readonly connectFlags: number;
  readonly usernameFlag: boolean;
  readonly passwordFlag: boolean;
  readonly willRetain: boolean;
  readonly willQos: number;
  readonly willFlag: boolean;
  readonly cleanSession: boolean;
  readonly keepalive: number;
  readonly clientId: string;
  readonly willTopic?: string;
  readonly willMessage?: Uint8Array;
  readonly username?: string;
  readonly password?: Uint8Array;
  readonly properties?: MqttProperty[];
  readonly willProperties?: MqttProperty[];
}

export interface MqttConnack {
  readonly kind: 'connack';
  readonly sessionPresent: boolean;
  readonly returnCode: number;
  readonly properties?: MqttProperty[];
}

export interface MqttPublish {
  readonly kind: 'publish';
  readonly topic: string;
  readonly messageId?: number;
  readonly message: Uint8Array;
  readonly properties?: MqttProperty[];
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP. */
export interface MqttMessageIdOnly {
  readonly kind: 'puback' | 'pubrec' | 'pubrel' | 'pubcomp';
  readonly messageId: number;
  readonly reasonCode?: number;
  readonly properties?: MqttProperty[];
}

export interface MqttSubscribe {
  readonly kind: 'subscribe';
  readonly messageId: number;
  readonly topics: { readonly topic: string; readonly qos: number }[];
  readonly properties?: MqttProperty[];
}

export interface MqttSuback {
  readonly kind: 'suback';
  readonly messageId: number;
  /** The granted QoS (3.1.1) or reason codes (5.0), as Suricata logs them (`qos_granted`). */
  readonly qosGranted: Uint8Array;
  readonly properties?: MqttProperty[];
}

export interface MqttUnsubscribe {
  readonly kind: 'unsubscribe';
  readonly messageId: number;
  readonly topics: string[];
  readonly properties?: MqttProperty[];
}

export interface MqttUnsuback {
  readonly kind: 'unsuback';
  readonly messageId: number;
  readonly reasonCodes: Uint8Array;
  readonly properties?: MqttProperty[];
}

export interface MqttDisconnect {
  readonly kind: 'disconnect';
  readonly reasonCode?: number;
  readonly properties?: MqttProperty[];
}

export interface MqttAuth {
  readonly kind: 'auth';
  readonly reasonCode: number;
  readonly properties?: MqttProperty[];
}

/** A message longer than the parser's limit: its header is known, the rest is skipped unparsed. */
export interface MqttTruncated {
  readonly kind: 'truncated';
  readonly originalType: MqttTypeName;
  readonly skippedLength: number;
}

export type MqttBody =
  | MqttConnect
  | MqttConnack
  | MqttPublish
  | MqttMessageIdOnly
  | MqttSubscribe
  | MqttSuback
  | MqttUnsubscribe
  | MqttUnsuback
  | MqttDisconnect
  | MqttAuth
  | MqttTruncated
  | { readonly kind: 'pingreq' | 'pingresp' | 'unassigned' };

export interface MqttMessage {
  readonly direction: Direction;
  readonly header: MqttFixedHeader;
  readonly body: MqttBody;
}

export interface MqttTransaction {
  readonly txId: number;
  /**
   * The direction Suricata files the transaction under (the one its first message came from; a
   * message truncated for length is always filed to the client, as Suricata 7 does).
   */
  readonly direction: Direction;
  /** The messages of the transaction in order (CONNECT+CONNACK, PUBLISH+PUBREC+PUBREL+PUBCOMP, ...). */
  readonly messages: MqttMessage[];
  /** The connection's protocol version when the transaction was made (from CONNECT; 0 before one). */
  readonly protocolVersion: number;
  readonly events: MqttEventName[];
  complete: boolean;
  /** The rule engine's detection state, kept with the transaction as Suricata keeps its DetectEngineState. */
  detected?: DetectedRules;
}

/**
 * The rules that alerted on a transaction, each as sid * 2 + direction (0 to the server, 1 to
 * the client), so a rule alerts once per transaction and direction. On the transaction itself
 * rather than in a WeakMap beside it: a weak entry per transaction was a third of the
 * inspector's time in a profile, and a released transaction takes its state with it all the same.
 * A short list while it is short (a transaction usually alerts a few rules, and a Set per
 * transaction cost more than the search), a Set past that so a list of many matching rules stays linear.
 */
export type DetectedRules = number[] | Set<number>;

// ---------------------------------------------------------------- Both

/** What one call to a flow parser's `feed` produced: transactions created or changed, in order. */
export interface FeedResult<T> {
  readonly updated: T[];
  /** True once the parser gave up on the flow (Suricata's app-layer error): later bytes are not parsed. */
  readonly stopped: boolean;
}
