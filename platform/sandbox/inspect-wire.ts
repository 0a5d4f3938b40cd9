/**
 * The layout of a packed inspection crossing (protocol.ts PackedInspection), which both sides of
 * the boundary read: the host packs by it, the guest SDK unpacks by it. A module of its own,
 * importing nothing, so the guest's bundle takes the numbers without the host's codecs.
 */

/** Numbers per item: its kind, connection id, direction (0 to_server, 1 to_client), byte length, timestamp. */
export const INSPECT_WORDS = 5;
export const INSPECT_KIND = { open: 0, data: 1, close: 2 } as const;

/**
 * Distinct alerts an inspecting isolate and its host keep numbered between crossings (protocol.ts
 * PackedVerdicts): past it the guest starts the numbering over with the alerts of the crossing
 * at hand, and a crossing naming more distinct alerts than this is refused (the host keeps no
 * more, whatever a guest sends). A rule's alert is one object, so a list of rules numbers each
 * alert once: above Network Protector's 10,000 rules.
 */
export const ALERT_TABLE_LIMIT = 16_384;
