/**
 * The typed form of a Suricata rule for the protocols Network Protector inspects (Modbus/TCP,
 * MQTT, plain TCP payload). Everything here is data a matcher reads without parsing again:
 * addresses and ports are normalised sets, numbers are ranges with Suricata's own inclusive or
 * exclusive edges spelled out, content is bytes.
 *
 * Pure types, no runtime: this module and the parser run inside Network Protector's isolate.
 */

/** `drop` blocks (and alerts), `alert` only records, `pass` stops inspection of the packet/flow for later rules. */
export type RuleAction = 'alert' | 'drop' | 'pass' | 'reject' | 'rejectsrc' | 'rejectdst' | 'rejectboth';

export type RuleProtocol = 'tcp' | 'modbus' | 'mqtt';

/** The application protocol the rule's keywords tie it to: the header's, or the one a keyword set. */
export type AppProtocol = 'modbus' | 'mqtt';

/**
 * A set of addresses, normalised: sorted, disjoint, merged ranges per family. IPv4 as 32-bit
 * unsigned numbers, IPv6 as 32-digit lower-case hex strings (fixed width, so string comparison
 * orders them). `any` is both families' whole space.
 */
export interface AddressSet {
  readonly v4: ReadonlyArray<readonly [number, number]>;
  readonly v6: ReadonlyArray<readonly [string, string]>;
}

/** Ports 0..65535 as sorted, disjoint, inclusive ranges. */
export type PortSet = ReadonlyArray<readonly [number, number]>;

export interface RuleHeader {
  readonly action: RuleAction;
  readonly protocol: RuleProtocol;
  readonly source: AddressSet;
  readonly sourcePorts: PortSet;
  /** `<>`: the rule also matches with source and destination swapped. */
  readonly bidirectional: boolean;
  readonly destination: AddressSet;
  readonly destinationPorts: PortSet;
  /** As written, for messages and for `isogate np replay`'s output. */
  readonly text: { readonly source: string; readonly sourcePorts: string; readonly destination: string; readonly destinationPorts: string };
}

/**
 * `flow:` with the direction resolved as Suricata resolves it: direction flags of several flow
 * options add up (to_server with to_client is both, no condition), and keywords that inspect only
 * one direction narrow it. Every field is a condition that must hold; absent means "don't care".
 */
export interface FlowConstraint {
  readonly direction?: 'to_server' | 'to_client';
  readonly state?: 'established' | 'not_established' | 'stateless';
  readonly stream?: 'only_stream' | 'no_stream';
  readonly frag?: 'only_frag' | 'no_frag';
}

/**
 * One `content` and its modifiers. Absolute (`offset`, `depth`) and relative (`distance`,
 * `within`, to the previous content's match end in the same buffer) never mix; Suricata refuses it.
 */
export interface ContentMatch {
  readonly bytes: Uint8Array;
  readonly negated: boolean;
  readonly nocase: boolean;
  readonly offset?: number;
  readonly depth?: number;
  readonly distance?: number;
  readonly within?: number;
  readonly startsWith: boolean;
  readonly endsWith: boolean;
}

/** The buffers content can inspect: the TCP stream payload, or one of the MQTT sticky buffers. */
export type ContentBuffer =
  | 'payload'
  | 'mqtt.connect.clientid'
  | 'mqtt.connect.username'
  | 'mqtt.connect.password'
  | 'mqtt.connect.willtopic'
  | 'mqtt.connect.willmessage'
  | 'mqtt.publish.topic'
  | 'mqtt.publish.message'
  | 'mqtt.subscribe.topic'
  | 'mqtt.unsubscribe.topic';

/** Contents in one buffer, in rule order (relative modifiers refer to the one before). */
export interface BufferMatch {
  readonly buffer: ContentBuffer;
  readonly contents: readonly ContentMatch[];
}

/**
 * Suricata's Modbus ranges (rust/src/modbus/detect.rs), edges as Suricata compares them:
 * `n` is exactly n; `<n` is below n; `>n` above n; `a<>b` strictly between a and b.
 */
export type ModbusRange =
  | { readonly op: 'eq'; readonly value: number }
  | { readonly op: 'lt'; readonly value: number }
  | { readonly op: 'gt'; readonly value: number }
  | { readonly op: 'between'; readonly min: number; readonly max: number };

/** The function-code categories of `function public|user|reserved|assigned|unassigned|all`. */
export type ModbusCategory = 'public_assigned' | 'public_unassigned' | 'user_defined' | 'reserved';

export type ModbusTable = 'discretes' | 'coils' | 'input' | 'holding';

/**
 * `modbus:`. Exactly one of function / category / access may be present (Suricata's three forms),
 * each optionally with a unit. Matched against the transaction's request, or its response when no
 * request was seen.
 */
export interface ModbusConstraint {
  readonly unit?: ModbusRange;
  readonly function?: number;
  readonly subfunction?: number;
  /** The request's category must be one of these (negation already applied). */
  readonly categories?: readonly ModbusCategory[];
  readonly access?: {
    readonly type: 'read' | 'write';
    readonly table?: ModbusTable;
    /** Intersects the request's address range (Suricata's check_match_range). */
    readonly address?: ModbusRange;
    /** The value written at `address`'s start address. */
    readonly value?: ModbusRange;
  };
}

/** Suricata's generic unsigned comparison (rust/src/detect/uint.rs); `range` is exclusive of both ends. */
export type UintMatch =
  | { readonly op: 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge'; readonly value: number }
  | { readonly op: 'range'; readonly min: number; readonly max: number };

export type MqttPacketType =
  | 'CONNECT'
  | 'CONNACK'
  | 'PUBLISH'
  | 'PUBACK'
  | 'PUBREC'
  | 'PUBREL'
  | 'PUBCOMP'
  | 'SUBSCRIBE'
  | 'SUBACK'
  | 'UNSUBSCRIBE'
  | 'UNSUBACK'
  | 'PINGREQ'
  | 'PINGRESP'
  | 'DISCONNECT'
  | 'AUTH';

/** A flag the packet must have set (`true`), must not have (`false`); absent: don't care. */
export type FlagCondition = Readonly<Record<string, boolean>>;

/** The non-buffer `mqtt.*` keywords; every present field must hold for some message of the transaction. */
export interface MqttConstraint {
  /** `mqtt.type`, by its code (CONNECT = 1 ... AUTH = 15). */
  readonly type?: { readonly name: MqttPacketType; readonly code: number };
  /** `mqtt.flags`: dup, retain of the fixed header. */
  readonly flags?: { readonly dup?: boolean; readonly retain?: boolean };
  readonly qos?: 0 | 1 | 2;
  /** `mqtt.reason_code` / `mqtt.connack.return_code`. */
  readonly reasonCode?: number;
  readonly protocolVersion?: UintMatch;
  readonly connectFlags?: {
    readonly username?: boolean;
    readonly password?: boolean;
    readonly will?: boolean;
    readonly will_retain?: boolean;
    readonly clean_session?: boolean;
  };
  readonly sessionPresent?: boolean;
}

export type ModbusEventName =
  | 'unsolicited_response'
  | 'invalid_function_code'
  | 'invalid_length'
  | 'invalid_value'
  | 'invalid_exception_code'
  | 'value_mismatch'
  | 'flooded'
  | 'invalid_protocol_id';

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

export type AppLayerEvent = { readonly protocol: 'modbus'; readonly event: ModbusEventName } | { readonly protocol: 'mqtt'; readonly event: MqttEventName };

/** Where the rule came from in the decoded text, for messages and for the audit log. */
export interface RuleSource {
  readonly line: number;
  readonly text: string;
}

export interface Rule {
  readonly header: RuleHeader;
  /** The header's protocol, or the one a keyword (modbus:, mqtt.*, app-layer-event) requires. */
  readonly appProtocol?: AppProtocol;
  readonly msg: string;
  readonly sid: number;
  readonly rev: number;
  readonly gid: number;
  readonly classtype?: string;
  /** `priority:` if given, else the classtype's, else Suricata's default 3; eve's `severity`. */
  readonly priority: number;
  /** The classtype's description: eve's `category` ("" without a classtype). */
  readonly category: string;
  readonly flow?: FlowConstraint;
  /** The direction the keywords imply, where they imply one (Suricata adds it to flow). */
  readonly impliedDirection?: 'to_server' | 'to_client';
  readonly buffers: readonly BufferMatch[];
  /** Every `modbus:` in the rule; all must hold. */
  readonly modbus: readonly ModbusConstraint[];
  readonly mqtt: MqttConstraint;
  /** Every `app-layer-event:`; all must hold. */
  readonly events: readonly AppLayerEvent[];
  readonly source: RuleSource;
}

/**
 * `$NAME` values from the configuration: addresses and ports are separate name spaces, as in
 * Suricata. Treated as immutable: resolved values are cached per object.
 */
export interface RuleVariables {
  readonly addresses: Readonly<Record<string, string>>;
  readonly ports: Readonly<Record<string, string>>;
}
