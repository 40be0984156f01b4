import { cases } from '../support/cases.js';

/** Filter targets: REJECT, RETURN, LOG, NFLOG; marks anywhere; NFQUEUE. */
export const FILTER_TARGET_CASES = [
  ...cases({}, [
    ['reject', '-j REJECT --reject-with icmp-port-unreachable'],
    ['reject with icmp-host-prohibited', '-j REJECT --reject-with icmp-host-prohibited'],
    ['reject with admin-prohib', '-j REJECT --reject-with icmp-admin-prohibited', 'reject with icmp-admin-prohibited'],
    ['reject with admin-prohibited', '-j REJECT --reject-with icmp-admin-prohibited', undefined, 'reject with icmp-admin-prohibited'],
    ['reject with port-unreachable', '-j REJECT --reject-with icmp-port-unreachable', undefined, 'reject'],
    ['tcp reject with tcp-reset', '-p tcp -j REJECT --reject-with tcp-reset'],
    ['reject with icmp-net-unreachable', '-j REJECT --reject-with icmp-net-unreachable'],
    ['reject with icmp-proto-unreachable', '-j REJECT --reject-with icmp-proto-unreachable'],
    ['return', '-j RETURN'],
    ['log', '-j LOG'],
    ['log prefix "drop: " level info', '-j LOG --log-prefix "drop: " --log-level 6'],
    ['log level warn', '-j LOG', 'log level warn', 'log'],
    ['log prefix "abc"', '-j LOG --log-prefix abc'],
    ['log prefix "a\'b."', '-j LOG --log-prefix "a\\\'b."'],
    ['log prefix "say \\"hi\\"" level emerg tcp-sequence tcp-options ip-options uid macdecode', '-j LOG --log-prefix "say \\"hi\\"" --log-level 0 --log-tcp-sequence --log-tcp-options --log-ip-options --log-uid --log-macdecode'],
    ['nflog', '-j NFLOG'],
    // (`range` is not here: iptables-nft drops --nflog-range, which the kernel never used.)
    ['nflog group 5 prefix "p x" size 100 threshold 3', '-j NFLOG --nflog-prefix "p x" --nflog-group 5 --nflog-size 100 --nflog-threshold 3'],
    ['nflog size 0', '-j NFLOG --nflog-size 0'],
    ['mark set 0x3', '-j MARK --set-xmark 0x3/0xffffffff'],
    ['mark set 0x3/0xff', '-j MARK --set-xmark 0x3/0xff'],
    ['mark and 0xff', '-j MARK --set-xmark 0x0/0xffffff00', 'mark set 0x0/0xffffff00'],
    ['mark or 0x10', '-j MARK --set-xmark 0x10/0x10', 'mark set 0x10/0x10'],
    ['mark xor 0x10', '-j MARK --set-xmark 0x10/0x0'],
    ['meta mark set 0x7', '-j MARK --set-xmark 0x7/0xffffffff', 'mark set 0x7'],
    ['ct mark set 1', '-j CONNMARK --set-xmark 0x1/0xffffffff', 'ct mark set 0x1'],
    ['ct mark set 0xa00/0xff00', '-j CONNMARK --set-xmark 0xa00/0xff00'],
    ['ct mark save', '-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff'],
    ['ct mark restore nfmask 0xf ctmask 0xff', '-j CONNMARK --restore-mark --nfmask 0xf --ctmask 0xff'],
    ['queue', '-j NFQUEUE --queue-num 0'],
    ['queue num 5 bypass', '-j NFQUEUE --queue-num 5 --queue-bypass'],
    ['queue balance 2-3 fanout', '-j NFQUEUE --queue-balance 2:3 --queue-cpu-fanout'],
  ]),
  ...cases({ chain: 'FORWARD' }, [
    ['tcp flags syn / syn,rst tcpmss clamp-to-pmtu', '-p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu'],
    ['tcp flags syn / fin,syn,rst,ack tcpmss set 1400', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j TCPMSS --set-mss 1400'],
    ['classify set 1:10', '-j CLASSIFY --set-class 0001:0010'],
  ]),
  ...cases({ family: 'ipv6' }, [
    ['reject', '-j REJECT --reject-with icmp6-port-unreachable'],
    ['reject with icmp6-adm-prohibited', '-j REJECT --reject-with icmp6-adm-prohibited'],
    ['reject with admin-prohibited', '-j REJECT --reject-with icmp6-adm-prohibited', undefined, 'reject with icmp6-adm-prohibited'],
    ['reject with no-route', '-j REJECT --reject-with icmp6-no-route', undefined, 'reject with icmp6-no-route'],
    ['reject with icmp6-reject-route', '-j REJECT --reject-with icmp6-reject-route'],
    ['tcp reject with tcp-reset', '-p tcp -j REJECT --reject-with tcp-reset'],
    ['log prefix "v6 "', '-j LOG --log-prefix "v6 "'],
  ]),
];

/** mangle and raw targets. */
export const MANGLE_RAW_TARGET_CASES = [
  ...cases({ table: 'raw', chain: 'PREROUTING' }, [
    ['notrack', '-j NOTRACK'],
    ['ct notrack', '-j CT --notrack'],
    ['tcp dport 21 ct helper set ftp', '-p tcp -m tcp --dport 21 -j CT --helper ftp'],
    ['udp ct helper set tftp zone set 3', '-p udp -j CT --helper tftp --zone 3'],
    ['tcp ct helper set Q.931', '-p tcp -j CT --helper Q.931'],
    ['ct zone set 3 reply', '-j CT --zone-reply 3'],
    ['ct zone set 3 original', '-j CT --zone-orig 3'],
    // Zone 0 is the default zone: iptables-save prints `--zone 0` (any direction) as a bare -j CT.
    ['ct zone set 0', '-j CT'],
    ['udp ct zone set 0 reply', '-p udp -j CT', 'udp ct zone set 0 reply', 'udp ct zone set 0'],
    ['ct event set new,related', '-j CT --ctevents new,related'],
    ['tcp ct notrack helper set ftp expectation event set new event set new zone set 3', '-p tcp -j CT --notrack --helper ftp --ctevents new --expevents new --zone 3', 'tcp ct notrack helper set ftp zone set 3 event set new expectation event set new'],
    ['mark set 1', '-j MARK --set-xmark 0x1/0xffffffff', 'mark set 0x1'],
  ]),
  ...cases({ table: 'mangle', chain: 'POSTROUTING' }, [
    ['udp checksum fill', '-p udp -j CHECKSUM --checksum-fill'],
    ['dscp set ef', '-j DSCP --set-dscp 0x2e'],
    ['dscp set 10', '-j DSCP --set-dscp 0x0a', 'dscp set af11'],
    ['tos set 0x10/0x3f', '-j TOS --set-tos 0x10/0x3f'],
    ['tos set 0x10', '-j TOS --set-tos 0x10/0xff', 'tos set 0x10/0xff'],
    ['tos set minimize-delay', '-j TOS --set-tos 0x10/0x3f', 'tos set 0x10/0x3f'],
    ['tos and 0x10', '-j TOS --set-tos 0x00/0xef', 'tos set 0x00/0xef'],
    ['tos or 0x10', '-j TOS --set-tos 0x10/0x10', 'tos set 0x10/0x10'],
    ['tos xor 0x10', '-j TOS --set-tos 0x10/0x00'],
    ['ttl set 64', '-j TTL --ttl-set 64'],
    ['ttl dec 1', '-j TTL --ttl-dec 1'],
    ['ttl inc 2', '-j TTL --ttl-inc 2'],
    ['classify set ffff:ffff', '-j CLASSIFY --set-class ffff:ffff'],
    ['ct mark save nfmask 0xff ctmask 0xff', '-j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff'],
  ]),
  ...cases({ table: 'mangle', chain: 'PREROUTING' }, [
    ['tcp tproxy to :80', '-p tcp -j TPROXY --on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x0/0x0'],
    ['udp tproxy to 1.2.3.4:53 mark 0x1/0x1', '-p udp -j TPROXY --on-port 53 --on-ip 1.2.3.4 --tproxy-mark 0x1/0x1'],
    ['udp tproxy to :80 mark 0x5', '-p udp -j TPROXY --on-port 80 --on-ip 0.0.0.0 --tproxy-mark 0x5/0xffffffff'],
  ]),
  ...cases({ table: 'mangle', chain: 'POSTROUTING', family: 'ipv6' }, [
    ['ttl set 64', '-j HL --hl-set 64'],
    ['ttl dec 1', '-j HL --hl-dec 1'],
    ['dscp set cs1', '-j DSCP --set-dscp 0x08'],
  ]),
  ...cases({ table: 'mangle', chain: 'PREROUTING', family: 'ipv6' }, [
    ['tcp tproxy to [fd00::1]:80', '-p tcp -j TPROXY --on-port 80 --on-ip fd00::1 --tproxy-mark 0x0/0x0'],
    ['tcp tproxy to :80', '-p tcp -j TPROXY --on-port 80 --on-ip :: --tproxy-mark 0x0/0x0'],
  ]),
  ...cases({ table: 'raw', chain: 'OUTPUT', family: 'ipv6' }, [['notrack', '-j NOTRACK']]),
];

/** NAT targets in their chains. */
export const NAT_TARGET_CASES = [
  ...cases({ table: 'nat', chain: 'PREROUTING' }, [
    ['tcp dport 80 dnat to 192.168.18.10:8080', '-p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.18.10:8080'],
    ['tcp dnat to 10.0.0.1-10.0.0.5:80-90 random persistent', '-p tcp -j DNAT --to-destination 10.0.0.1-10.0.0.5:80-90 --random --persistent'],
    ['tcp dnat to :8080', '-p tcp -j DNAT --to-destination :8080'],
    ['dnat to 10.0.0.1', '-j DNAT --to-destination 10.0.0.1'],
    ['tcp redirect to :3128', '-p tcp -j REDIRECT --to-ports 3128'],
    ['tcp redirect to :3128-3130 random', '-p tcp -j REDIRECT --to-ports 3128-3130 --random'],
    ['redirect', '-j REDIRECT'],
    ['netmap to 10.0.0.0/24', '-j NETMAP --to 10.0.0.0/24'],
  ]),
  ...cases({ table: 'nat', chain: 'OUTPUT' }, [['dnat to 10.0.0.1', '-j DNAT --to-destination 10.0.0.1']]),
  ...cases({ table: 'nat', chain: 'POSTROUTING' }, [
    ['masquerade', '-j MASQUERADE'],
    ['oif wan0 masquerade random', '-o wan0 -j MASQUERADE --random'],
    ['tcp masquerade to :1024-65535 random fully-random', '-p tcp -j MASQUERADE --to-ports 1024-65535 --random --random-fully'],
    ['udp masquerade to :1024', '-p udp -j MASQUERADE --to-ports 1024'],
    ['netmap to 10.1.0.0/16', '-j NETMAP --to 10.1.0.0/16'],
    ['snat to 1.2.3.4 fully-random', '-j SNAT --to-source 1.2.3.4 --random-fully'],
  ]),
  ...cases({ table: 'nat', chain: 'PREROUTING', family: 'ipv6' }, [
    ['tcp dnat to [fd00::1]:8080', '-p tcp -j DNAT --to-destination [fd00::1]:8080'],
    ['tcp dnat to [fd00::1-fd00::9]:80', '-p tcp -j DNAT --to-destination [fd00::1-fd00::9]:80'],
    ['dnat to fd00::1-fd00::9', '-j DNAT --to-destination fd00::1-fd00::9'],
    ['tcp redirect to :80', '-p tcp -j REDIRECT --to-ports 80'],
    ['netmap to fd00::/64', '-j NETMAP --to fd00::/64'],
  ]),
  ...cases({ table: 'nat', chain: 'POSTROUTING', family: 'ipv6' }, [['masquerade', '-j MASQUERADE']]),
];
