/** DSCP class names (RFC 2474, 2597, 3246) as iptables' --dscp-class accepts them. */
export const DSCP_CLASSES: Readonly<Record<string, number>> = {
  CS0: 0, CS1: 8, CS2: 16, CS3: 24, CS4: 32, CS5: 40, CS6: 48, CS7: 56, BE: 0,
  AF11: 10, AF12: 12, AF13: 14, AF21: 18, AF22: 20, AF23: 22, AF31: 26, AF32: 28, AF33: 30, AF41: 34, AF42: 36, AF43: 38,
  EF: 46,
};

/** A DSCP value from a number (decimal or hex, 0-63) or a class name; undefined otherwise. */
export function parseDscp(text: string): number | undefined {
  const c = DSCP_CLASSES[text.toUpperCase()];
  if (c !== undefined) return c;
  if (!/^(0x[0-9a-fA-F]+|\d+)$/.test(text)) return undefined;
  const v = Number(text);
  return v <= 63 ? v : undefined;
}

/** The class name nfproof prints for a value (the first listed), or the number. */
export function formatDscp(v: number): string {
  const name = Object.entries(DSCP_CLASSES).find(([n, x]) => x === v && n !== 'BE')?.[0];
  return name ? name.toLowerCase() : String(v);
}

/** TOS names of iptables' -m tos / -j TOS (value/mask). */
export const TOS_NAMES: Readonly<Record<string, readonly [number, number]>> = {
  'minimize-delay': [0x10, 0x3f],
  'maximize-throughput': [0x08, 0x3f],
  'maximize-reliability': [0x04, 0x3f],
  'minimize-cost': [0x02, 0x3f],
  'normal-service': [0x00, 0x3f],
};
