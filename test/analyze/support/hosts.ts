/**
 * The two-interface gateway of the source document, as a .nfp host block (made-up addresses):
 * lan eth0 192.168.18.1/24, wan eth1 192.168.20.1/24, default route out of wan. The kernel
 * harness's GATEWAY (test/kernel/harness/scenario.ts) has the same IPv4 side.
 */
export const GATEWAY_HOST = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24
  interface wan dev eth1 address 192.168.20.1/24
  route default via 192.168.20.254 dev wan
}`;
