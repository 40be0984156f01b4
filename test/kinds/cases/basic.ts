import { cases } from '../support/cases.js';

/** Addresses, ports, protocols, interfaces (built-in options, iprange, tcp/udp/multiport). */
export const BASIC_CASES = [
  ...cases({}, [
    ['saddr 10.0.0.0/8', '-s 10.0.0.0/8'],
    ['daddr != 192.168.1.1', '! -d 192.168.1.1/32'],
    ['saddr 10.0.0.1-10.0.0.9', '-m iprange --src-range 10.0.0.1-10.0.0.9'],
    ['daddr != 10.0.0.1-10.0.0.9', '-m iprange ! --dst-range 10.0.0.1-10.0.0.9'],
    ['saddr { 10.0.0.0/8, 192.168.0.0/16 }', ['-s 10.0.0.0/8', '-s 192.168.0.0/16'], undefined, 'saddr 10.0.0.0/8'],
    ['saddr 10.0.0.0/8 daddr 10.1.2.3 iif eth0', '-s 10.0.0.0/8 -d 10.1.2.3/32 -i eth0'],
    ['iif eth+', '-i eth+'],
    ['iif != wan0', '! -i wan0'],
    ['tcp', '-p tcp'],
    ['proto != udp', '! -p udp'],
    ['proto gre', '-p gre', 'gre'],
    ['proto 47', '-p gre', 'gre'],
    ['proto igmp', '-p igmp'],
    ['proto 253', '-p 253'],
    ['udplite', '-p udplite'],
    ['tcp dport 22', '-p tcp -m tcp --dport 22'],
    ['tcp sport 1024-65535 dport 0-1023', '-p tcp -m tcp --sport 1024:65535 --dport 0:1023'],
    ['udp dport != 53', '-p udp -m udp ! --dport 53'],
    ['udp dport { 53, 67-68 }', '-p udp -m multiport --dports 53,67:68'],
    ['udp dport { 53 }', '-p udp -m multiport --dports 53'],
    ['tcp sport != { 1, 2 }', '-p tcp -m multiport ! --sports 1,2'],
    ['udp port != { 53, 67-68 }', '-p udp -m multiport ! --ports 53,67:68'],
    ['udp port 5060', '-p udp -m multiport --ports 5060'],
    ['sctp dport 50000', '-p sctp -m sctp --dport 50000'],
    ['dccp sport 5', '-p dccp -m dccp --sport 5'],
    ['udplite dport 5', '-p udplite -m multiport --dports 5', undefined, 'udplite dport { 5 }'],
    [
      'tcp dport { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 }',
      ['-p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15', '-p tcp -m tcp --dport 16'],
    ],
    ['proto { tcp, udp } dport 53', ['-p tcp -m tcp --dport 53', '-p udp -m udp --dport 53']],
  ]),
  ...cases({ family: 'ipv6' }, [
    ['saddr fd00::/64 daddr ::1', '-s fd00::/64 -d ::1/128'],
    ['saddr fd00::1-fd00::9', '-m iprange --src-range fd00::1-fd00::9'],
    ['icmpv6', '-p ipv6-icmp'],
    ['proto ipv6-route', '-p ipv6-route'],
  ]),
  ...cases({ chain: 'FORWARD' }, [['iif lan0 oif != wan+', '-i lan0 ! -o wan+']]),
];

/** Connection tracking state (conntrack --ctstate and the older state module). */
export const CT_STATE_CASES = cases({}, [
  ['ct state established,related', '-m conntrack --ctstate RELATED,ESTABLISHED', 'ct state related,established'],
  ['ct state != new', '-m conntrack ! --ctstate NEW'],
  ['ct state invalid', '-m conntrack --ctstate INVALID'],
  ['ct state new,snat,dnat', '-m conntrack --ctstate NEW,SNAT,DNAT'],
  ['ct status dnat', '-m conntrack --ctstate DNAT', 'ct state dnat'],
  ['ct state untracked', '-m conntrack --ctstate UNTRACKED'],
  ['state established, related', '-m state --state RELATED,ESTABLISHED', 'state related,established'],
  ['state != new', '-m state ! --state NEW'],
  ['state { invalid, untracked }', '-m state --state INVALID,UNTRACKED', 'state invalid,untracked'],
]);

/** Plain verdicts, jumps, opaque passthrough. */
export const BASIC_TARGET_CASES = [
  ...cases({}, [
    ['accept', '-j ACCEPT'],
    ['tcp dport 22 drop', '-p tcp -m tcp --dport 22 -j DROP'],
    ['jump svc', '-j svc'],
    ['goto svc', '-g svc'],
    ['xt match statistic "--mode nth --every 3 --packet 0" accept', '-m statistic --mode nth --every 3 --packet 0 -j ACCEPT'],
    ['xt match string "--string \\"GET /\\" --algo bm"', '-m string --string "GET /" --algo bm'],
    ['xt target AUDIT "--type drop"', '-j AUDIT --type drop'],
    ['xt match cpu "--cpu 1" xt target AUDIT "--type accept"', '-m cpu --cpu 1 -j AUDIT --type accept'],
  ]),
];

export const SNAT_CASES = [
  ...cases({ table: 'nat', chain: 'POSTROUTING' }, [
    ['snat to 1.2.3.4', '-j SNAT --to-source 1.2.3.4'],
    ['snat to 1.2.3.4-1.2.3.8 persistent', '-j SNAT --to-source 1.2.3.4-1.2.3.8 --persistent'],
    ['tcp snat to 1.2.3.4:1000-2000 random fully-random', '-p tcp -j SNAT --to-source 1.2.3.4:1000-2000 --random --random-fully'],
    [
      'oif wan0 saddr 192.168.18.0/24 tcp snat to 192.168.20.1:450',
      '-s 192.168.18.0/24 -o wan0 -p tcp -j SNAT --to-source 192.168.20.1:450',
      undefined,
      'saddr 192.168.18.0/24 oif wan0 tcp snat to 192.168.20.1:450',
    ],
  ]),
  ...cases({ table: 'nat', chain: 'INPUT' }, [['snat to 1.2.3.4', '-j SNAT --to-source 1.2.3.4']]),
  ...cases({ table: 'nat', chain: 'POSTROUTING', family: 'ipv6' }, [
    ['snat to fd00::1', '-j SNAT --to-source fd00::1'],
    ['tcp snat to [fd00::1]:80', '-p tcp -j SNAT --to-source [fd00::1]:80'],
    ['tcp snat to [fd00::1-fd00::9]:80-90', '-p tcp -j SNAT --to-source [fd00::1-fd00::9]:80-90'],
    ['snat to fd00::1-fd00::9', '-j SNAT --to-source fd00::1-fd00::9'],
  ]),
];

/** The other -m conntrack tests, alone and joined into one match with `with`. */
export const CONNTRACK_CASES = [
  ...cases({}, [
    ['ct status assured', '-m conntrack --ctstatus ASSURED'],
    ['ct status != seen-reply,expected', '-m conntrack ! --ctstatus EXPECTED,SEEN_REPLY', 'ct status != expected,seen-reply'],
    ['ct status none', '-m conntrack --ctstatus NONE'],
    ['ct direction reply', '-m conntrack --ctdir REPLY'],
    ['ct direction original', '-m conntrack --ctdir ORIGINAL'],
    ['ct proto tcp', '-m conntrack --ctproto 6'],
    ['ct proto != 47', '-m conntrack ! --ctproto 47', 'ct proto != gre'],
    ['ct original saddr 10.0.0.0/8', '-m conntrack --ctorigsrc 10.0.0.0/8'],
    ['ct original daddr != 1.2.3.4', '-m conntrack ! --ctorigdst 1.2.3.4'],
    ['ct reply saddr 10.0.0.1/8', '-m conntrack --ctreplsrc 10.0.0.1/8'],
    ['ct reply daddr 5.6.7.8', '-m conntrack --ctrepldst 5.6.7.8'],
    ['ct original sport 10-20', '-m conntrack --ctorigsrcport 10:20'],
    ['ct original dport != 67', '-m conntrack ! --ctorigdstport 67'],
    ['ct reply sport 40', '-m conntrack --ctreplsrcport 40'],
    ['ct reply dport 1024-65535', '-m conntrack --ctrepldstport 1024:65535'],
    ['ct expire 10-20', '-m conntrack --ctexpire 10:20'],
    ['ct expire != 5', '-m conntrack ! --ctexpire 5'],
    ['ct state new with proto tcp with original dport 22', '-m conntrack --ctstate NEW --ctproto 6 --ctorigdstport 22'],
    [
      'ct state new,snat,dnat with direction reply with expire 5-10 with status assured with reply dport 4 with original saddr 1.1.1.1 with proto tcp',
      '-m conntrack --ctstate NEW,SNAT,DNAT --ctproto 6 --ctorigsrc 1.1.1.1 --ctrepldstport 4 --ctstatus ASSURED --ctexpire 5:10 --ctdir REPLY',
      'ct state new,snat,dnat with proto tcp with original saddr 1.1.1.1 with reply dport 4 with status assured with expire 5-10 with direction reply',
    ],
    ['ct state related with proto tcp ct original dport 21', '-m conntrack --ctstate RELATED --ctproto 6 -m conntrack --ctorigdstport 21'],
  ]),
  ...cases({ family: 'ipv6' }, [
    ['ct original saddr fd00::/64 ct reply daddr fd00::1', '-m conntrack --ctorigsrc fd00::/64 -m conntrack --ctrepldst fd00::1'],
    ['ct state established with reply daddr fd00::1', '-m conntrack --ctstate ESTABLISHED --ctrepldst fd00::1'],
  ]),
];
