package keys

import "strings"

// bech32Charset is the BIP 173 alphabet, indexed by 5-bit value.
const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

// bech32Encode encodes data under hrp as Bech32 (BIP 173) without the
// 90-character limit, as age does for its keys. The checksum is computed over
// the lower-case form; an upper-case hrp gives an upper-case result.
//
// age keeps its own encoder internal, and GenerateHybridIdentity draws from
// crypto/rand directly, so this is how a caller-supplied rand reaches age keys:
// read a seed, encode it, and let age parse (and so check) the string.
func bech32Encode(hrp string, data []byte) string {
	upper := strings.ToUpper(hrp) == hrp && strings.ToLower(hrp) != hrp
	hrp = strings.ToLower(hrp)
	values := toFiveBits(data)
	var b strings.Builder
	b.WriteString(hrp)
	b.WriteByte('1')
	for _, v := range values {
		b.WriteByte(bech32Charset[v])
	}
	for _, v := range bech32Checksum(hrp, values) {
		b.WriteByte(bech32Charset[v])
	}
	if upper {
		return strings.ToUpper(b.String())
	}
	return b.String()
}

// toFiveBits regroups bytes into 5-bit values, zero-padding the last group.
func toFiveBits(data []byte) []byte {
	var out []byte
	acc, bits := uint32(0), 0
	for _, d := range data {
		acc = acc<<8 | uint32(d)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if (top>>i)&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

func bech32Checksum(hrp string, values []byte) []byte {
	in := make([]byte, 0, 2*len(hrp)+1+len(values)+6)
	for i := 0; i < len(hrp); i++ {
		in = append(in, hrp[i]>>5)
	}
	in = append(in, 0)
	for i := 0; i < len(hrp); i++ {
		in = append(in, hrp[i]&31)
	}
	in = append(in, values...)
	in = append(in, 0, 0, 0, 0, 0, 0)
	mod := bech32Polymod(in) ^ 1
	sum := make([]byte, 6)
	for i := range sum {
		sum[i] = byte(mod>>(5*(5-i))) & 31
	}
	return sum
}
