package fib

import (
	"encoding/binary"
	"math/bits"
)

// The kernel hashes a struct flow_keys with SipHash-2-4 keyed by the
// multipath seed (fib_multipath_hash_from_keys). The hashed bytes start
// at flow_keys.basic and end after the address union's used part:
//
//	basic 4 | tags 4 | vlan 8 | cvlan 8 | keyid 4 | ports 4 | icmp 4 | addrs
//
// 44 bytes plus 4 (IPv4, 8 bytes of addresses and 4 of padding) or 36
// (IPv6, 32 bytes of addresses and 4 of padding). Addresses and ports are
// put in a canonical order first (__flow_hash_consistentify), comparing
// their in-memory (network order) bytes as host-endian integers.
const (
	fkBasic = 0
	fkTags  = 4
	fkPorts = 28
	fkAddrs = 36
)

func siphash24(k0, k1 uint64, p []byte) uint64 {
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	n := len(p)
	for len(p) >= 8 {
		m := binary.LittleEndian.Uint64(p)
		v3 ^= m
		round()
		round()
		v0 ^= m
		p = p[8:]
	}
	b := uint64(n) << 56
	for i := len(p) - 1; i >= 0; i-- {
		b |= uint64(p[i]) << (8 * i)
	}
	v3 ^= b
	round()
	round()
	v0 ^= b
	v2 ^= 0xff
	round()
	round()
	round()
	round()
	return v0 ^ v1 ^ v2 ^ v3
}

func (f *FIB) flowHash(buf []byte) uint32 {
	k := uint64(f.mpSeed)<<32 | uint64(f.mpSeed)
	h := uint32(siphash24(k, k, buf))
	if h == 0 {
		h = 1
	}
	return h >> 1
}

func putPorts(buf []byte, sport, dport uint16) {
	// __be16 values; compared as host-endian u16 of their bytes.
	var s, d [2]byte
	binary.BigEndian.PutUint16(s[:], sport)
	binary.BigEndian.PutUint16(d[:], dport)
	if binary.LittleEndian.Uint16(d[:]) < binary.LittleEndian.Uint16(s[:]) {
		s, d = d, s
	}
	copy(buf[fkPorts:], s[:])
	copy(buf[fkPorts+2:], d[:])
}

// mpHash4 is fib_multipath_hash for an IPv4 flow, policies 0-2. route get
// hands the kernel a fake packet, and the hash dissects it: the ports come
// from its TCP or UDP header, an ICMP packet has none.
func (f *FIB) mpHash4(policy int, fl *flow4, q *qflow) uint32 {
	var buf [48]byte
	var s, d [4]byte
	binary.BigEndian.PutUint32(s[:], fl.saddr)
	binary.BigEndian.PutUint32(d[:], fl.daddr)
	if binary.LittleEndian.Uint32(d[:]) < binary.LittleEndian.Uint32(s[:]) {
		s, d = d, s
	}
	copy(buf[fkAddrs:], s[:])
	copy(buf[fkAddrs+4:], d[:])
	if policy == 1 {
		buf[fkBasic+2] = fl.proto
		if fl.proto == protoTCP || fl.proto == protoUDP {
			putPorts(buf[:], fl.sport, fl.dport)
		}
	}
	return f.flowHash(buf[:])
}

// mpHash6 is rt6_multipath_hash for a flow without an skb.
func (f *FIB) mpHash6(fl *flow6) uint32 {
	var buf [72]byte
	s := fl.saddr.As16()
	d := fl.daddr.As16()
	if string(d[:]) < string(s[:]) {
		s, d = d, s
	}
	copy(buf[fkAddrs:], s[:])
	copy(buf[fkAddrs+16:], d[:])
	buf[fkBasic+2] = fl.proto
	if f.mpPolicy6 == 1 {
		putPorts(buf[:], fl.sport, fl.dport)
	}
	// flow label: route get's tos never reaches the label bits.
	return f.flowHash(buf[:])
}
