package chunker

import (
	"fmt"
	"math/bits"
)

// Bounds on Params checked by Validate. minMin keeps chunks large enough to be
// worth an index entry; maxMax bounds the memory a Chunker allocates (Max + 1 MiB),
// since Params may come from a repository's stored config.
const (
	minMin = 64
	maxMax = 256 << 20
)

// Params sets chunk sizes in bytes. Avg must be a power of two; Min < Avg < Max.
// See the package documentation for how each is used.
type Params struct{ Min, Avg, Max int }

// DefaultParams returns Min 128 KiB, Avg 512 KiB, Max 2 MiB, the sizes new
// repositories use (docs/design.md, section 5.1, says why).
func DefaultParams() Params {
	return Params{Min: 128 << 10, Avg: 512 << 10, Max: 2 << 20}
}

// Validate reports whether p is usable: 64 ≤ Min < Avg < Max ≤ 256 MiB and
// Avg a power of two. The error names the first bad field.
func (p Params) Validate() error {
	switch {
	case p.Min < minMin:
		return fmt.Errorf("chunker params: Min %d is below %d", p.Min, minMin)
	case p.Avg <= p.Min:
		return fmt.Errorf("chunker params: Avg %d is not above Min %d", p.Avg, p.Min)
	case p.Avg&(p.Avg-1) != 0:
		return fmt.Errorf("chunker params: Avg %d is not a power of two", p.Avg)
	case p.Max <= p.Avg:
		return fmt.Errorf("chunker params: Max %d is not above Avg %d", p.Max, p.Avg)
	case p.Max > maxMax:
		return fmt.Errorf("chunker params: Max %d is above %d", p.Max, maxMax)
	}
	return nil
}

// masks returns MaskS and MaskL for a valid p: the top b+2 and b−2 bits,
// where Avg = 2^b.
func (p Params) masks() (small, large uint64) {
	b := bits.TrailingZeros64(uint64(p.Avg))
	return ^uint64(0) << (64 - (b + 2)), ^uint64(0) << (64 - (b - 2))
}
