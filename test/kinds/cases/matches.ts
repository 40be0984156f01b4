import { cases } from '../support/cases.js';

/** TCP flags and options, ICMP types. */
export const TCP_ICMP_CASES = [
  ...cases({}, [
    ['tcp flags syn / syn,ack,rst,fin', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN', 'tcp flags syn / fin,syn,rst,ack'],
    ['tcp flags != syn/fin,syn,rst,ack', '-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN', 'tcp flags != syn / fin,syn,rst,ack'],
    ['tcp flags none / all', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG NONE', 'tcp flags none / fin,syn,rst,psh,ack,urg'],
    ['tcp flags all / all', '-p tcp -m tcp --tcp-flags FIN,SYN,RST,PSH,ACK,URG FIN,SYN,RST,PSH,ACK,URG', 'tcp flags fin,syn,rst,psh,ack,urg / fin,syn,rst,psh,ack,urg'],
    ['tcp flags syn, ack / syn, ack', '-p tcp -m tcp --tcp-flags SYN,ACK SYN,ACK', 'tcp flags syn,ack / syn,ack'],
    ['tcp dport 22 flags syn / syn,rst', '-p tcp -m tcp --dport 22 --tcp-flags SYN,RST SYN'],
    ['tcp option mss', '-p tcp -m tcp --tcp-option 2'],
    ['tcp option != 5', '-p tcp -m tcp ! --tcp-option 5', 'tcp option != sack'],
    ['tcp dport 22 option 8 flags syn / syn,ack', '-p tcp -m tcp --dport 22 --tcp-option 8 --tcp-flags SYN,ACK SYN', 'tcp dport 22 option timestamp flags syn / syn,ack'],
    ['icmp type echo-request', '-p icmp -m icmp --icmp-type 8'],
    ['icmp type port-unreachable', '-p icmp -m icmp --icmp-type 3/3'],
    ['icmp type 3 code 1', '-p icmp -m icmp --icmp-type 3/1', 'icmp type host-unreachable'],
    ['icmp type destination-unreachable code 42', '-p icmp -m icmp --icmp-type 3/42'],
    ['icmp type != any', '-p icmp -m icmp ! --icmp-type any'],
    ['icmp type 13', '-p icmp -m icmp --icmp-type 13', 'icmp type timestamp-request'],
    ['icmp type 42', '-p icmp -m icmp --icmp-type 42'],
  ]),
  ...cases({ family: 'ipv6' }, [
    ['icmpv6 type echo-request', '-p ipv6-icmp -m icmp6 --icmpv6-type 128'],
    ['icmpv6 type neighbour-solicitation', '-p ipv6-icmp -m icmp6 --icmpv6-type 135'],
    ['icmpv6 type port-unreachable', '-p ipv6-icmp -m icmp6 --icmpv6-type 1/4'],
    ['icmpv6 type != destination-unreachable', '-p ipv6-icmp -m icmp6 ! --icmpv6-type 1'],
    ['icmpv6 type 1 code 4', '-p ipv6-icmp -m icmp6 --icmpv6-type 1/4', 'icmpv6 type port-unreachable'],
    ['tcp flags syn / syn,ack', '-p tcp -m tcp --tcp-flags SYN,ACK SYN'],
  ]),
];

/** MAC, marks, rate limits, recent lists, address types. */
export const STATEFUL_MATCH_CASES = [
  ...cases({}, [
    ['ether saddr 00:11:22:33:44:55', '-m mac --mac-source 00:11:22:33:44:55'],
    ['ether saddr != AA:BB:CC:DD:EE:0F', '-m mac ! --mac-source aa:bb:cc:dd:ee:0f', 'ether saddr != aa:bb:cc:dd:ee:0f'],
    ['mark 0x1', '-m mark --mark 0x1'],
    ['mark != 1/0xff', '-m mark ! --mark 0x1/0xff', 'mark != 0x1/0xff'],
    ['ct mark 5/0xff', '-m connmark --mark 0x5/0xff', 'ct mark 0x5/0xff'],
    ['ct mark != 0x10', '-m connmark ! --mark 0x10'],
    ['limit rate 5/minute', '-m limit --limit 5/min'],
    ['limit rate 120/minute burst 10', '-m limit --limit 2/sec --limit-burst 10', undefined, 'limit rate 2/second burst 10'],
    ['limit rate 3/hour burst 7', '-m limit --limit 3/hour --limit-burst 7'],
    ['limit rate 1/s', '-m limit --limit 1/sec', 'limit rate 1/second'],
    ['limit rate 7/day', '-m limit --limit 7/day'],
    ['limit rate 25/m', '-m limit --limit 25/min', 'limit rate 25/minute'],
    ['hashlimit name h1 upto 10/minute', '-m hashlimit --hashlimit-upto 10/min --hashlimit-burst 5 --hashlimit-name h1'],
    [
      'hashlimit name h2 above 1000/second burst 5 mode srcip expire 31991',
      '-m hashlimit --hashlimit-above 1000/sec --hashlimit-burst 5 --hashlimit-mode srcip --hashlimit-name h2 --hashlimit-htable-expire 31991',
      undefined,
      'hashlimit name h2 above 1000/second mode srcip expire 31991',
    ],
    [
      'hashlimit name h3 upto 120/minute burst 20 mode dstport,srcip srcmask 24 dstmask 16 size 100 max 200 gcinterval 500 expire 3000',
      '-m hashlimit --hashlimit-upto 2/sec --hashlimit-burst 20 --hashlimit-mode srcip,dstport --hashlimit-name h3 --hashlimit-htable-size 100 --hashlimit-htable-max 200 --hashlimit-htable-gcinterval 500 --hashlimit-htable-expire 3000 --hashlimit-srcmask 24 --hashlimit-dstmask 16',
      'hashlimit name h3 upto 120/minute burst 20 mode srcip,dstport srcmask 24 dstmask 16 size 100 max 200 expire 3000 gcinterval 500',
      'hashlimit name h3 upto 2/second burst 20 mode srcip,dstport srcmask 24 dstmask 16 size 100 max 200 expire 3000 gcinterval 500',
    ],
    [
      'hashlimit name h4 upto 120/minute',
      '-m hashlimit --hashlimit-upto 2/sec --hashlimit-burst 5 --hashlimit-name h4 --hashlimit-htable-expire 60000',
      undefined,
      'hashlimit name h4 upto 2/second expire 60000',
    ],
    ['hashlimit name h5 above 2mb/s', '-m hashlimit --hashlimit-above 2mb/s --hashlimit-name h5'],
    ['hashlimit name h6 above 1500b/s', '-m hashlimit --hashlimit-above 1488b/s --hashlimit-name h6', undefined, 'hashlimit name h6 above 1488b/s'],
    [
      'hashlimit name h7 above 1024kb/s burst 10mb',
      '-m hashlimit --hashlimit-above 1mb/s --hashlimit-burst 10mb --hashlimit-name h7',
      undefined,
      'hashlimit name h7 above 1mb/s burst 10mb',
    ],
    [
      'hashlimit name h8 above 5/second rate-match interval 5',
      '-m hashlimit --hashlimit-above 5/sec --hashlimit-burst 5 --hashlimit-name h8 --hashlimit-rate-match --hashlimit-rate-interval 5',
    ],
    ['recent set', '-m recent --set --name DEFAULT --mask 255.255.255.255 --rsource'],
    ['recent check name ssh seconds 60 hitcount 4', '-m recent --rcheck --seconds 60 --hitcount 4 --name ssh --mask 255.255.255.255 --rsource'],
    [
      'recent != update name foo seconds 30 reap hitcount 3 same-ttl mask 255.255.0.0 dest',
      '-m recent ! --update --seconds 30 --reap --hitcount 3 --rttl --name foo --mask 255.255.0.0 --rdest',
    ],
    ['recent remove name x', '-m recent --remove --name x --mask 255.255.255.255 --rsource'],
    ['daddr type local', '-m addrtype --dst-type LOCAL'],
    ['daddr type broadcast,local', '-m addrtype --dst-type LOCAL,BROADCAST', 'daddr type local,broadcast'],
    ['saddr type != local', '-m addrtype ! --src-type LOCAL'],
    ['daddr type local on iif', '-m addrtype --dst-type LOCAL --limit-iface-in'],
    ['saddr type unicast daddr type != multicast', '-m addrtype --src-type UNICAST -m addrtype ! --dst-type MULTICAST'],
  ]),
  ...cases({ chain: 'OUTPUT' }, [['daddr type local on oif', '-m addrtype --dst-type LOCAL --limit-iface-out']]),
  ...cases({ family: 'ipv6' }, [
    ['recent check', '-m recent --rcheck --name DEFAULT --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource'],
    ['daddr type anycast,multicast,unreachable', '-m addrtype --dst-type ANYCAST,MULTICAST,UNREACHABLE'],
    ['ether saddr 00:11:22:33:44:55', '-m mac --mac-source 00:11:22:33:44:55'],
    ['hashlimit name v6 upto 10/second srcmask 64', '-m hashlimit --hashlimit-upto 10/sec --hashlimit-burst 5 --hashlimit-name v6 --hashlimit-srcmask 64'],
  ]),
];
