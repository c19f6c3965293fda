// Package chunker splits a byte stream into content-defined chunks, so that an
// edit to a file changes only the chunks around the edit and the rest
// deduplicate against earlier backups.
//
// The algorithm is FastCDC (Xia et al., USENIX ATC 2016; IEEE TPDS 2020): a gear
// rolling hash, cut-point skipping below the minimum size, and normalized
// chunking at level 2. The gear table is derived from a 32-byte secret key, so
// that someone who knows the algorithm but not the key cannot compute where a
// known file's boundaries fall. This package is pure: it reads only the
// io.Reader its caller supplies and never logs.
//
// # Algorithm (version 1)
//
// This section is normative; docs/design.md refers to it, and an independent
// implementation that follows it produces the same chunks.
//
// Gear table. For j = 0, …, 63 let D_j = HMAC-SHA-256(key, "kalaja chunker
// gear v1" || byte(j)), where the label is the 22 ASCII bytes shown, without
// a terminator. The table has 256 entries of 64 bits: G[4j+k] is the
// little-endian uint64 in bytes 8k … 8k+7 of D_j, for k = 0, …, 3 (see
// [GearTable]).
//
// Parameters. Min, Avg and Max are byte counts with 64 ≤ Min < Avg < Max ≤
// 256 MiB and Avg a power of two, Avg = 2^b (see [Params.Validate]). Normalized
// chunking level 2 uses two masks selecting the most significant bits of the
// 64-bit hash: MaskS has the top b+2 bits set and MaskL the top b−2 bits
// (for the defaults, b = 19: MaskS = 0xFFFFF80000000000 and MaskL =
// 0xFFFF800000000000).
//
// Cut point. Let r be the input not yet returned as chunks. If len(r) ≤ Min,
// r is the last chunk (nothing when r is empty). Otherwise let n = min(len(r),
// Max), set h = 0, and for L = Min, Min+1, …, n in turn:
//
//	h = (h << 1) + G[r[L-1]]   (mod 2^64)
//	M = MaskS if L < Avg, else MaskL
//	if h & M == 0 { the chunk is r[:L]; stop }
//
// If no L matches, the chunk is r[:n]. The first Min−1 bytes of a chunk are
// never hashed, and each chunk starts with h = 0. Thus every chunk except the
// last is between Min and Max bytes long, the last is between 1 and Max, and
// the expected length on random data is about 1.14·Avg when Avg = 4·Min.
//
// # Security
//
// The key hides boundaries from an observer who knows only the algorithm. It
// does not hide them from an attacker who can both place chosen data in a
// backup and observe individual chunk lengths: Truong et al., "Breaking and
// Fixing Content-Defined Chunking" (IACR ePrint 2025/532), recover keyed gear
// tables that way. Layers above this one must not reveal single chunk
// lengths (for example, by how chunks are assigned to packs).
package chunker
