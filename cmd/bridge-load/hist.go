package main

import (
	"math"
	"math/bits"
	"time"
)

// The histogram is log-linear, in the manner of HdrHistogram: values below
// 2^subBits nanoseconds have a bucket each, and every power of two above is
// split into 2^subBits equal buckets. Any value is therefore recorded within
// 1/2^subBits (0.8 %) of itself, in a fixed array, with no allocation per
// value.
const (
	subBits    = 7
	subCount   = 1 << subBits
	numBuckets = (64 - subBits) * subCount
)

// histogram counts durations. It is not safe for concurrent use.
type histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	min, max int64
}

// bucketOf is the index of the bucket that holds v (v >= 0).
func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 1 - subBits // v>>shift is in [subCount, 2*subCount)
	return (shift+1)*subCount + int(v>>shift) - subCount
}

// bucketHigh is the highest value bucket i holds.
func bucketHigh(i int) int64 {
	tier := i >> subBits
	if tier == 0 {
		return int64(i)
	}
	shift := tier - 1
	sub := int64(i&(subCount-1)) + subCount
	return (sub+1)<<shift - 1
}

// Record adds one value; negative values count as 0.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.n++
}

// Count is the number of values recorded.
func (h *histogram) Count() uint64 { return h.n }

// Max is the largest value recorded, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Percentile returns the value below or at which p percent of the values
// fall (p in [0, 100]): the highest value of the bucket holding that rank,
// kept within the exact minimum and maximum.
func (h *histogram) Percentile(p float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return time.Duration(min(max(bucketHigh(i), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
