/*
 * image_resize.c — the resampler of the image stage: a region of an RGB8
 * image to an RGB8 sample of another size, separable, with PIL's
 * triangle ("bilinear") filter: widened by the scale factor when shrinking
 * (each output pixel averages the source pixels it covers, as PIL's
 * Image.resize(BILINEAR) and torchvision's antialias=True), plain bilinear
 * with half-pixel centres when enlarging.  Only the pixels of the region
 * (rounded out to whole pixels) are read.  Results are within 1 of PIL's
 * (which rounds its weights to fixed point differently).
 *
 * It runs on every sample, so it is built for speed.  Vertical pass first:
 * the source rows an output row needs are blended into one float row
 * (contiguous; integer weights, exact sums).  The horizontal pass, which
 * does not vectorise along a row, then runs on output rows only (fewer
 * than source rows when the image shrinks, the common case) and on four
 * rows at once, interleaved, so that one tap of its filter is three
 * 4-wide multiply-adds for four output pixels.  The weights of both axes
 * are computed once per call.  The vector code is SSE2 (every x86-64 has
 * it); elsewhere plain C loops compute the same numbers.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "image.h"

/* The filter of one axis: output i is the sum of weights w[i * stride ..
 * + taps - 1] times source pixels first[i] .. first[i] + taps - 1, counted
 * from the region's first whole pixel.  Every output has the same number
 * of taps (zero weights pad the shorter filters), so that the loops over
 * them always run the same count: a count that changes from one pixel to
 * the next costs a mispredicted branch a pixel, more than the padding. */
typedef struct axis {
	float *w;
	int32_t *first;
	int32_t *count;  /* each filter's own count, while they are made */
	int32_t taps;    /* of every output */
	uint32_t stride; /* weights stored per output (the widest filter) */
	int32_t lo, n;   /* the source pixels read: lo .. lo + n - 1 */
} axis;

/* The filter's reach in source pixels either side of an output centre. */
static double support_of(double in_len, uint32_t out)
{
	double scale = in_len / out;
	return scale > 1.0 ? scale : 1.0;
}

static uint32_t stride_of(double in_len, uint32_t out)
{
	return (uint32_t)ceil(2.0 * support_of(in_len, out)) + 2;
}

/* The source pixels of region [in0, in0 + len): whole pixels covering it. */
static void span_of(double in0, double len, int32_t *lo, int32_t *n)
{
	*lo = (int32_t)floor(in0);
	int32_t hi = (int32_t)ceil(in0 + len);
	*n = hi > *lo ? hi - *lo : 1;
}

/* The triangle filter. */
static double tri(double t)
{
	t = fabs(t);
	return t < 1.0 ? 1.0 - t : 0.0;
}

/* One output's filter (PIL's precompute_coeffs restricted to the region's
 * pixels: weights renormalised at its edges, which equals clamping to the
 * edge pixel), zero weights trimmed from both ends: its weights at k, its
 * first pixel (relative to lo) and count returned. */
static int32_t filter_of(const axis *a, double centre, double support, float *k, int32_t *count)
{
	double inv = 1.0 / support;
	int32_t hi = a->lo + a->n;
	int32_t xmin = (int32_t)floor(centre - support + 0.5);
	int32_t xmax = (int32_t)floor(centre + support + 0.5);
	if (xmin < a->lo)
		xmin = a->lo;
	if (xmax > hi)
		xmax = hi;
	if (xmax - xmin > (int32_t)a->stride)
		xmax = xmin + (int32_t)a->stride;
	double sum = 0;
	int32_t first = -1, last = -1;
	for (int32_t x = xmin; x < xmax; x++) {
		double v = tri((x + 0.5 - centre) * inv);
		k[x - xmin] = (float)v;
		sum += v;
		if (v > 0) {
			if (first < 0)
				first = x;
			last = x;
		}
	}
	if (first < 0) { /* cannot happen for a centre inside the region */
		first = xmin < hi ? xmin : hi - 1;
		k[0] = 1.0f;
		*count = 1;
		return first - a->lo;
	}
	*count = last - first + 1;
	float norm = (float)(1.0 / sum);
	for (int32_t t = 0; t < *count; t++)
		k[t] = k[t + first - xmin] * norm;
	return first - a->lo;
}

static void axis_fill(axis *a, double in0, double len, uint32_t out)
{
	double scale = len / out, support = support_of(len, out);
	int32_t taps = 1;
	for (uint32_t i = 0; i < out; i++) {
		float *k = a->w + (size_t)i * a->stride;
		a->first[i] = filter_of(a, in0 + (i + 0.5) * scale, support, k, &a->count[i]);
		if (a->count[i] > taps)
			taps = a->count[i];
	}
	if (taps > a->n)
		taps = a->n;
	/* pad each filter to `taps`, moved back where it would run past the
	 * last pixel */
	for (uint32_t i = 0; i < out; i++) {
		float *k = a->w + (size_t)i * a->stride;
		int32_t count = a->count[i];
		int32_t first = a->first[i];
		int32_t start = first + taps <= a->n ? first : a->n - taps;
		int32_t shift = first - start;
		memmove(k + shift, k, (size_t)count * sizeof *k);
		for (int32_t t = 0; t < shift; t++)
			k[t] = 0;
		for (int32_t t = shift + count; t < taps; t++)
			k[t] = 0;
		a->first[i] = start;
	}
	a->taps = taps;
}

/* *cap counts floats, not bytes. */
static int grow(float **scratch, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	float *p = realloc(*scratch, need * sizeof **scratch);
	if (!p)
		return IBSTORE_ENOMEM;
	*scratch = p;
	*cap = need;
	return 0;
}

/* The vertical pass in integers: weights in Q14, rounded so that each
 * filter's sum to exactly 1 << 14 (a flat region stays exactly flat), two
 * source rows at a time for SSE2's 16-bit multiply-add: sums of products
 * of bytes and Q14 weights are exact in 32 bits, and the same in the plain
 * C loop, so both give the same floats. */
#define QBITS 14

/* kq[0 .. taps] = k[0 .. taps) in Q14 and one zero (the odd row's pair). */
static void quantise(const float *k, int32_t taps, int16_t *kq)
{
	int32_t sum = 0, big = 0;
	for (int32_t t = 0; t < taps; t++) {
		kq[t] = (int16_t)lrintf(k[t] * (1 << QBITS));
		sum += kq[t];
		if (kq[t] > kq[big])
			big = t;
	}
	kq[big] = (int16_t)(kq[big] + (1 << QBITS) - sum);
	kq[taps] = 0;
}

/* row[0 .. len) = the blend of `taps` source rows `stride` bytes apart. */
static void blend_rows(float *restrict row, const uint8_t *restrict src, size_t stride,
		       const int16_t *restrict kq, int32_t taps, size_t len)
{
	const float unit = 1.0f / (1 << QBITS);
	size_t x = 0;
#if defined(__SSE2__)
	const __m128i zero = _mm_setzero_si128();
	const __m128 vunit = _mm_set1_ps(unit);
	for (; x + 16 <= len; x += 16) {
		__m128i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
		for (int32_t t = 0; t < taps; t += 2) {
			const uint8_t *s = src + (size_t)t * stride + x;
			__m128i p = _mm_loadu_si128((const __m128i *)s);
			__m128i q = t + 1 < taps ? _mm_loadu_si128((const __m128i *)(s + stride)) :
						   zero;
			__m128i w = _mm_set1_epi32((int32_t)((uint32_t)(uint16_t)kq[t] |
							     (uint32_t)(uint16_t)kq[t + 1] << 16));
			__m128i lo = _mm_unpacklo_epi8(p, q), hi = _mm_unpackhi_epi8(p, q);
			a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), w));
			a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), w));
			a2 = _mm_add_epi32(a2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), w));
			a3 = _mm_add_epi32(a3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), w));
		}
		_mm_storeu_ps(row + x, _mm_mul_ps(_mm_cvtepi32_ps(a0), vunit));
		_mm_storeu_ps(row + x + 4, _mm_mul_ps(_mm_cvtepi32_ps(a1), vunit));
		_mm_storeu_ps(row + x + 8, _mm_mul_ps(_mm_cvtepi32_ps(a2), vunit));
		_mm_storeu_ps(row + x + 12, _mm_mul_ps(_mm_cvtepi32_ps(a3), vunit));
	}
#endif
	for (; x < len; x++) {
		int32_t a = 0;
		for (int32_t t = 0; t < taps; t++)
			a += kq[t] * src[(size_t)t * stride + x];
		row[x] = (float)a * unit;
	}
}

/* Output rows are made LANES at a time: their blended rows interleaved,
 * value x of row r at [x * LANES + r], so that one tap of the horizontal
 * filter is 3 * LANES multiply-adds in a row (vector instructions) for
 * LANES output pixels. */
#define LANES 4

/* q[x * LANES + r] = rows[r][x]: a transpose of 4 x 4 blocks, which
 * compilers do not find on their own (SSE here, any x86-64 has it). */
static void interleave(float *restrict q, float *const rows[LANES], size_t len)
{
	size_t x = 0;
#if defined(__SSE2__) && LANES == 4
	for (; x + 4 <= len; x += 4) {
		__m128 a = _mm_loadu_ps(rows[0] + x), b = _mm_loadu_ps(rows[1] + x);
		__m128 c = _mm_loadu_ps(rows[2] + x), d = _mm_loadu_ps(rows[3] + x);
		_MM_TRANSPOSE4_PS(a, b, c, d);
		_mm_storeu_ps(q + x * 4, a);
		_mm_storeu_ps(q + x * 4 + 4, b);
		_mm_storeu_ps(q + x * 4 + 8, c);
		_mm_storeu_ps(q + x * 4 + 12, d);
	}
#endif
	for (; x < len; x++)
		for (int r = 0; r < LANES; r++)
			q[x * LANES + r] = rows[r][x];
}

/* Output pixels of LANES rows (the first `nr` of them written, at row
 * pointers out[r]) from interleaved blended rows, mirrored when `flip`.
 * Values are rounded half up and clamped to 0..255 (weights are positive
 * and sum to 1, so the clamp only guards rounding). */
#if defined(__SSE2__) && LANES == 4
static void filter_rows(uint8_t *const out[LANES], int nr, const float *restrict q, const axis *ax,
			uint32_t dw, int flip)
{
	uint8_t *o[LANES];
	memcpy(o, out, sizeof o);
	const __m128 half = _mm_set1_ps(0.5f);
	const __m128i zero = _mm_setzero_si128();
	/* output columns in increasing order: each pixel is stored as 4
	 * bytes, the 4th overwritten by the next pixel (3 for the last) */
	for (uint32_t i = 0; i < dw; i++) {
		uint32_t j = flip ? dw - 1 - i : i;
		const float *restrict k = ax->w + (size_t)j * ax->stride;
		const float *restrict p = q + (size_t)ax->first[j] * 12;
		__m128 r = _mm_setzero_ps(), g = r, b = r;
		for (int32_t t = 0; t < ax->taps; t++, p += 12) {
			__m128 kt = _mm_set1_ps(k[t]);
			r = _mm_add_ps(r, _mm_mul_ps(kt, _mm_loadu_ps(p)));
			g = _mm_add_ps(g, _mm_mul_ps(kt, _mm_loadu_ps(p + 4)));
			b = _mm_add_ps(b, _mm_mul_ps(kt, _mm_loadu_ps(p + 8)));
		}
		/* r0..r3 g0..g3 b0..b3 as bytes (saturating), then pixel by
		 * pixel: r0 g0 b0 0  r1 g1 b1 0 ... */
		__m128i rg = _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(r, half)),
					     _mm_cvttps_epi32(_mm_add_ps(g, half)));
		__m128i bb = _mm_packs_epi32(_mm_cvttps_epi32(_mm_add_ps(b, half)), zero);
		__m128i bytes = _mm_packus_epi16(rg, bb);
		__m128i rgp = _mm_unpacklo_epi8(bytes, _mm_srli_si128(bytes, 4));
		__m128i b0 = _mm_unpacklo_epi8(_mm_srli_si128(bytes, 8), zero);
		uint32_t px[LANES];
		_mm_storeu_si128((__m128i *)px, _mm_unpacklo_epi16(rgp, b0));
		size_t col = (size_t)i * 3;
		if (i + 1 < dw)
			for (int u = 0; u < nr; u++)
				memcpy(o[u] + col, &px[u], 4);
		else
			for (int u = 0; u < nr; u++)
				memcpy(o[u] + col, &px[u], 3);
	}
}
#else
static void filter_rows(uint8_t *const out[LANES], int nr, const float *restrict q, const axis *ax,
			uint32_t dw, int flip)
{
	uint8_t *o[LANES];
	memcpy(o, out, sizeof o);
	for (uint32_t j = 0; j < dw; j++) {
		const float *restrict k = ax->w + (size_t)j * ax->stride;
		const float *restrict p = q + (size_t)ax->first[j] * 3 * LANES;
		float acc[3 * LANES] = {0};
		for (int32_t t = 0; t < ax->taps; t++, p += 3 * LANES)
			for (int u = 0; u < 3 * LANES; u++)
				acc[u] += k[t] * p[u];
		int v[3 * LANES];
		for (int u = 0; u < 3 * LANES; u++) {
			int x = (int)(acc[u] + 0.5f);
			v[u] = x < 0 ? 0 : x > 255 ? 255 : x;
		}
		size_t col = (size_t)(flip ? dw - 1 - j : j) * 3;
		for (int r = 0; r < nr; r++) {
			o[r][col] = (uint8_t)v[r];
			o[r][col + 1] = (uint8_t)v[LANES + r];
			o[r][col + 2] = (uint8_t)v[2 * LANES + r];
		}
	}
}
#endif

int ib_image_resize(const uint8_t *src, size_t sstride, double sx, double sy, double sw, double sh,
		    uint8_t *dst, uint32_t dw, uint32_t dh, int flip, float **scratch,
		    size_t *scratch_cap)
{
	axis ax = {.stride = stride_of(sw, dw)}, ay = {.stride = stride_of(sh, dh)};
	span_of(sx, sw, &ax.lo, &ax.n);
	span_of(sy, sh, &ay.lo, &ay.n);
	/* weights of both axes, then first and count of both (int32, the same
	 * size as a float), then the vertical weights in Q14 (int16, half a
	 * float), LANES blended rows and their interleaving */
	size_t nwx = (size_t)dw * ax.stride, nwy = (size_t)dh * ay.stride;
	size_t row_len = (size_t)ax.n * 3;
	size_t nq = (nwy + 1) / 2;
	size_t head = nwx + nwy + 2 * ((size_t)dw + dh) + nq;
	if (grow(scratch, scratch_cap, head + 2 * LANES * row_len))
		return IBSTORE_ENOMEM;
	float *s = *scratch;
	ax.w = s;
	ay.w = s + nwx;
	int32_t *ints = (int32_t *)(s + nwx + nwy);
	ax.first = ints;
	ax.count = ints + dw;
	ay.first = ints + 2 * (size_t)dw;
	ay.count = ay.first + dh;
	int16_t *wq = (int16_t *)(s + nwx + nwy + 2 * ((size_t)dw + dh));
	float *rows[LANES];
	for (int r = 0; r < LANES; r++)
		rows[r] = s + head + r * row_len;
	float *q = s + head + LANES * row_len;
	axis_fill(&ax, sx, sw, dw);
	axis_fill(&ay, sy, sh, dh);
	for (uint32_t i = 0; i < dh; i++)
		quantise(ay.w + (size_t)i * ay.stride, ay.taps, wq + (size_t)i * ay.stride);

	const uint8_t *base = src + (size_t)ay.lo * sstride + (size_t)ax.lo * 3;
	for (uint32_t i = 0; i < dh; i += LANES) {
		int nr = dh - i < LANES ? (int)(dh - i) : LANES;
		uint8_t *out[LANES];
		for (int r = 0; r < LANES; r++) {
			/* past the last row: a copy of it, made and not written */
			uint32_t y = i + (uint32_t)(r < nr ? r : nr - 1);
			blend_rows(rows[r], base + (size_t)ay.first[y] * sstride, sstride,
				   wq + (size_t)y * ay.stride, ay.taps, row_len);
			out[r] = dst + (size_t)y * dw * 3;
		}
		interleave(q, rows, row_len);
		filter_rows(out, nr, q, &ax, dw, flip);
	}
	return 0;
}
